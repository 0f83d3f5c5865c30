package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// RouterPaths returns the next hops of the BGP paths the lab's router
// holds for pfx, sorted; none when it has no route.
func RouterPaths(p Plan, pfx netip.Prefix) ([]netip.Addr, error) {
	afi := "ipv4"
	if pfx.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := Vtysh(p, fmt.Sprintf("show bgp %s unicast %s json", afi, pfx))
	if err != nil {
		return nil, err
	}
	var route struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &route); err != nil {
		return nil, fmt.Errorf("FRR's answer for %s: %w: %s", pfx, err, out)
	}
	var hops []netip.Addr
	for _, path := range route.Paths {
		for _, nh := range path.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// RouterFIB returns the next hops the router's kernel forwards pfx to
// (zebra's installed route), sorted; none when it has no route.
func RouterFIB(p Plan, pfx netip.Prefix) ([]netip.Addr, error) {
	cmd := "show ip route"
	if pfx.Addr().Is6() {
		cmd = "show ipv6 route"
	}
	out, err := Vtysh(p, fmt.Sprintf("%s %s json", cmd, pfx))
	if err != nil {
		return nil, err
	}
	var routes map[string][]struct {
		Protocol  string `json:"protocol"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP  string `json:"ip"`
			FIB bool   `json:"fib"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("FRR's answer for %s: %w: %s", pfx, err, out)
	}
	var hops []netip.Addr
	for _, r := range routes[pfx.String()] {
		if r.Protocol != "bgp" || !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil && nh.FIB {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// RouterPrefixes counts the prefixes the router has received from each
// neighbor, by neighbor address.
func RouterPrefixes(p Plan, ipv6 bool) (map[string]int, error) {
	afi := "ipv4"
	if ipv6 {
		afi = "ipv6"
	}
	out, err := Vtysh(p, fmt.Sprintf("show bgp %s unicast summary json", afi))
	if err != nil {
		return nil, err
	}
	var sum struct {
		Peers map[string]struct {
			State  string `json:"state"`
			PfxRcd int    `json:"pfxRcd"`
		} `json:"peers"`
	}
	if strings.TrimSpace(out) == "{}" {
		return map[string]int{}, nil
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return nil, fmt.Errorf("FRR's summary: %w: %s", err, out)
	}
	m := map[string]int{}
	for addr, peer := range sum.Peers {
		if peer.State == "Established" {
			m[addr] = peer.PfxRcd
		}
	}
	return m, nil
}

// WaitPaths waits until the router holds exactly the next hops want for
// pfx, in BGP and in its kernel's forwarding table.
func (l *Lab) WaitPaths(pfx netip.Prefix, want ...netip.Addr) error {
	want = slices.SortedFunc(slices.Values(want), netip.Addr.Compare)
	what := fmt.Sprintf("the router's paths for %s to be %v", pfx, want)
	return Poll{Every: 50 * time.Millisecond}.Until(context.Background(), what, func() (bool, string) {
		bgp, err1 := RouterPaths(l.Plan, pfx)
		fib, err2 := RouterFIB(l.Plan, pfx)
		ok := err1 == nil && err2 == nil && slices.Equal(bgp, want) && slices.Equal(fib, want)
		return ok, fmt.Sprintf("BGP %v (%v), forwarding %v (%v)", bgp, err1, fib, err2)
	})
}

// RouterPassword sets the TCP MD5 password of the router's sessions with
// every node, of both families ("" removes it). FRR resets a session
// whose password changes.
func RouterPassword(p Plan, password string) error {
	args := []string{"-N", p.Router.NetNS, "-c", "configure terminal", "-c", fmt.Sprintf("router bgp %d", RouterASN)}
	for _, n := range p.Nodes {
		for _, a := range []netip.Addr{n.Addr.Addr(), n.Addr6.Addr()} {
			if password == "" {
				args = append(args, "-c", fmt.Sprintf("no neighbor %s password", a))
			} else {
				args = append(args, "-c", fmt.Sprintf("neighbor %s password %s", a, password))
			}
		}
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vtysh -N %s, setting the neighbours' password: %w: %s", p.Router.NetNS, err, out)
	}
	// vtysh reports a rejected line on its output, not in its status.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "%") && !strings.HasPrefix(line, "% Can't open configuration file") {
			return fmt.Errorf("vtysh -N %s, setting the neighbours' password: %s", p.Router.NetNS, out)
		}
	}
	return nil
}

// RouterSession is what the router tells of its session with one node.
type RouterSession struct {
	State string
	// Established and Dropped count how often the session came up and
	// went down since the router started: a session that flapped between
	// two readings shows in them, however short the flap.
	Established, Dropped int
}

// RouterSessions returns the router's sessions by neighbour address.
func RouterSessions(p Plan) (map[netip.Addr]RouterSession, error) {
	out, err := Vtysh(p, "show bgp neighbors json")
	if err != nil {
		return nil, err
	}
	var raw map[string]struct {
		State       string `json:"bgpState"`
		Established int    `json:"connectionsEstablished"`
		Dropped     int    `json:"connectionsDropped"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("FRR's neighbours: %w: %s", err, out)
	}
	m := map[netip.Addr]RouterSession{}
	for k, v := range raw {
		if a, err := netip.ParseAddr(k); err == nil {
			m[a] = RouterSession{State: v.State, Established: v.Established, Dropped: v.Dropped}
		}
	}
	return m, nil
}
