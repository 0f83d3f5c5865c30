package inspect

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// The Write functions print a report as plain text for a terminal. They
// return the first write error.

// errWriter remembers the first write error, so the printing code need
// not check every call.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// validText writes a Valid condition in one word, with the reason when false.
func validText(c *Condition) string {
	switch {
	case c == nil:
		return "Unknown"
	case c.Status == "True":
		return "True"
	}
	return c.Status + " (" + c.Reason + ")"
}

func usageText(u *Usage) string {
	if u == nil {
		return "-"
	}
	return u.Assigned + "/" + u.Available + "/" + u.Total
}

// WriteStatus prints a StatusReport.
func WriteStatus(w io.Writer, r StatusReport) error {
	ew := &errWriter{w: w}
	ew.printf("IP POOLS\n")
	if len(r.Pools) == 0 {
		ew.printf("  (none)\n")
	} else {
		tw := table(ew)
		fmt.Fprintf(tw, "  NAME\tVALID\tAUTO\tIPV4 ASSIGNED/AVAILABLE/TOTAL\tIPV6 ASSIGNED/AVAILABLE/TOTAL\tADDRESSES\n")
		for _, p := range r.Pools {
			fmt.Fprintf(tw, "  %s\t%s\t%t\t%s\t%s\t%s\n", p.Name, validText(p.Valid), p.AutoAssign, usageText(p.IPv4), usageText(p.IPv6), strings.Join(p.Addresses, ","))
		}
		tw.Flush()
		for _, p := range r.Pools {
			if p.Valid != nil && p.Valid.Status != "True" {
				ew.printf("  %s: %s\n", p.Name, p.Valid.Message)
			}
		}
	}

	ew.printf("\nSPEAKERS\n")
	if len(r.Speakers) == 0 {
		ew.printf("  (none)\n")
	} else {
		tw := table(ew)
		fmt.Fprintf(tw, "  NODE\tMEMBERS\tKNOWN\tFENCED\tLAYER2\tBGP PREFIXES\n")
		for _, s := range r.Speakers {
			if !s.Reporting {
				fmt.Fprintf(tw, "  %s\t-\t-\t-\t(no speaker reporting)\t\n", s.Node)
				continue
			}
			fenced := "no"
			if s.Fenced != "" {
				fenced = "yes"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\n", s.Node, s.Members, s.KnownSpeakers, fenced, countedList(s.Layer2, s.Layer2Count), countedList(s.BGP, s.BGPCount))
		}
		tw.Flush()
	}

	ew.printf("\nBGP SESSIONS\n")
	if len(r.Sessions) == 0 {
		ew.printf("  (none)\n")
	} else {
		tw := table(ew)
		fmt.Fprintf(tw, "  NODE\tPEER\tADDRESS\tSTATE\tSINCE\tADVERTISED\tMESSAGE\n")
		for _, s := range r.Sessions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Node, s.Peer, s.Address, s.State, dash(s.Since), s.Advertised, s.Message)
		}
		tw.Flush()
	}
	if len(r.Notes) > 0 {
		ew.printf("\nTO CHECK\n")
		for _, n := range r.Notes {
			ew.printf("  - %s\n", n)
		}
	}
	return ew.err
}

// countedList writes listed entries, and how many more there are.
func countedList(s []string, count int32) string {
	out := list(s)
	if int(count) > len(s) {
		out += fmt.Sprintf(" (+%d more)", int(count)-len(s))
	}
	return out
}

// WriteExplanation prints an Explanation.
func WriteExplanation(w io.Writer, e *Explanation) error {
	ew := &errWriter{w: w}
	ew.printf("Service %s\n", e.Service)
	ew.printf("  type %s, externalTrafficPolicy %s, loadBalancerClass %s\n", e.Type, dash(e.ExternalTrafficPolicy), dash(e.LoadBalancerClass))
	if c := e.Allocation; c != nil {
		ew.printf("  allocation: %s=%s, reason %s", ConditionIPAllocated, c.Status, c.Reason)
		if c.Message != "" {
			ew.printf(": %s", c.Message)
		}
		ew.printf("\n")
	} else {
		ew.printf("  allocation: no %s condition\n", ConditionIPAllocated)
	}
	if len(e.Addresses) == 0 {
		ew.printf("  addresses: none\n")
	}
	for _, a := range e.Addresses {
		pool := "in no IPPool"
		if a.Pool != "" {
			pool = "from IPPool " + a.Pool + " (valid: " + validText(a.PoolValid) + ")"
		}
		ew.printf("  address %s %s\n", a.Address, pool)
		writeAnnouncers(ew, "    ", a.Announcers)
		if a.Layer2Eligible != nil {
			ew.printf("    layer 2: nodes that may answer: %s\n", list(a.Layer2Eligible))
		}
		if a.BGPExpected != nil {
			ew.printf("    BGP: nodes that should advertise: %s\n", list(a.BGPExpected))
		}
	}
	ready := e.Ready
	ew.printf("  endpoints: %d ready, %d not ready\n", ready, len(e.Endpoints)-ready)
	for _, ep := range e.Endpoints {
		state := "ready"
		if !ep.Ready {
			state = "not ready"
		}
		if ep.Terminating {
			state += ", terminating"
		}
		ew.printf("    %s on node %s (pod %s): %s\n", ep.Address, dash(ep.Node), dash(ep.Pod), state)
	}
	if len(e.Next) == 0 {
		ew.printf("Nothing looks wrong.\n")
	} else {
		ew.printf("To check:\n")
		for _, n := range e.Next {
			ew.printf("  - %s\n", n)
		}
	}
	return ew.err
}

func writeAnnouncers(ew *errWriter, indent string, a Announcers) {
	for _, l := range a.Layer2 {
		ew.printf("%slayer 2: node %s answers %s on %s", indent, l.Node, l.Protocol, list(l.Interfaces))
		if l.Since != "" {
			ew.printf(" since %s", l.Since)
		}
		ew.printf("\n")
	}
	for _, b := range a.BGP {
		var peers []string
		for _, p := range b.Peers {
			s := p.Peer
			if p.Address != "" {
				s += " " + p.Address
			}
			peers = append(peers, s+" "+p.State)
		}
		ew.printf("%sBGP: node %s advertises %s to %s\n", indent, b.Node, b.Prefix, strings.Join(peers, ", "))
	}
	if len(a.Layer2) == 0 && len(a.BGP) == 0 {
		ew.printf("%sannounced by no node\n", indent)
	}
}

// WriteWhoHas prints a WhoHasReport.
func WriteWhoHas(w io.Writer, r WhoHasReport) error {
	ew := &errWriter{w: w}
	ew.printf("Address %s\n", r.Address)
	if r.Pool != "" {
		ew.printf("  pool: IPPool %s (valid: %s)\n", r.Pool, validText(r.PoolValid))
	} else {
		ew.printf("  pool: none\n")
	}
	ew.printf("  services: %s\n", list(r.Services))
	writeAnnouncers(ew, "  ", r.Announcers)
	for _, n := range r.Notes {
		ew.printf("  - %s\n", n)
	}
	return ew.err
}
