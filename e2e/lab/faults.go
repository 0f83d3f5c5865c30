package lab

// This file holds the faults of issue 16 and what a test needs to judge a
// speaker under them: cutting one node's memberlist traffic (PortCut),
// freezing the API server (FreezeAPIServer), long-lived connections
// through a Service (HoldConns), the speakers' own count of members
// (SpeakerMembers, WatchMembers), a password on the router's sessions
// (RouterPassword, RouterSessions) and the memberlist key's Secret
// (MemberlistSecret). The analysis (DualAnswers, AnswersFrom,
// ProbesBetween, MembersBelow) is pure.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// faultTable is the nftables table (family inet, so both IPv4 and IPv6)
// that PortCut adds to a node's namespace. It is the lab's alone: the
// speaker's own tables are called ironlb and never touch it.
const faultTable = "ironlb_lab_fault"

// MemberlistPort is the speakers' memberlist port, TCP and UDP, as the
// chart sets it (memberlist.port).
const MemberlistPort = 7947

// portCutRules drops every packet to or from port, TCP or UDP, either
// family, coming in or going out. A filter base chain's drop is final
// whatever other tables accept, so the speaker's own rules cannot undo it.
func portCutRules(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", faultTable)
	for _, hook := range []string{"input", "output"} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority -300; policy accept;\n", hook, hook)
		for _, proto := range []string{"tcp", "udp"} {
			fmt.Fprintf(&b, "\t\t%s dport %d drop\n\t\t%s sport %d drop\n", proto, port, proto, port)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// PortCut cuts one node off from the other speakers' memberlist while
// leaving it on the LAN: inside the node's namespace, an nftables table of
// the lab's own drops the memberlist port's traffic (TCP and UDP, IPv4 and
// IPv6, in and out). The API server, BGP, ARP/NDP and the Services'
// traffic still flow. The table lives in the node's namespace, so it goes
// when the lab does; PortHeal removes it before that.
func (l *Lab) PortCut(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if err := l.nft(n.NetNS, portCutRules(MemberlistPort), "-f", "-"); err != nil {
		return fmt.Errorf("cutting %s's memberlist port: %w", node, err)
	}
	return nil
}

// PortHeal undoes PortCut: it deletes the lab's table from the node's
// namespace. A node that was not cut is left alone.
func (l *Lab) PortHeal(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	tables, err := l.NFTTables(node)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, "inet "+faultTable) {
		return nil
	}
	if err := l.nft(n.NetNS, "", "delete", "table", "inet", faultTable); err != nil {
		return fmt.Errorf("healing %s's memberlist port: %w", node, err)
	}
	return nil
}

// nft runs nft with args inside namespace ns, stdin as its input.
func (l *Lab) nft(ns, stdin string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Env = append(cmd.Environ(), l.speakerEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), ns, err, out)
	}
	return nil
}

// FreezeAPIServer stops the lab's kube-apiserver with SIGSTOP: it keeps
// its sockets, so clients connect and wait for answers that do not come,
// as with an API server that hangs, not one that is gone. etcd and
// kube-controller-manager keep running. ThawAPIServer resumes it; Close
// resumes it too, so a test that fails mid-freeze still tears down quickly.
func (l *Lab) FreezeAPIServer() error { return l.signalAPIServer(syscall.SIGSTOP) }

// ThawAPIServer resumes an API server FreezeAPIServer stopped; on a
// running one it does nothing.
func (l *Lab) ThawAPIServer() error { return l.signalAPIServer(syscall.SIGCONT) }

func (l *Lab) signalAPIServer(sig syscall.Signal) error {
	if l.CP == nil {
		return errors.New("the lab has no control plane")
	}
	for _, pr := range l.CP.procs {
		if pr.Name != "kube-apiserver" {
			continue
		}
		if exited, err := pr.Exited(); exited {
			return fmt.Errorf("kube-apiserver has exited (%v)", err)
		}
		// Its process group: `ip netns exec` became the API server.
		if err := syscall.Kill(-pr.cmd.Process.Pid, sig); err != nil {
			return fmt.Errorf("kube-apiserver (%d): %s: %w", pr.cmd.Process.Pid, sig, err)
		}
		return nil
	}
	return errors.New("the lab runs no kube-apiserver")
}

// Interval is a stretch of time, From included, To not.
type Interval struct{ From, To time.Time }

// Duration is how long the interval lasts.
func (i Interval) Duration() time.Duration { return i.To.Sub(i.From) }

// solicitedMACs returns the distinct MACs of a probe's solicited answers.
func solicitedMACs(p Probe) []string {
	var out []string
	for _, r := range p.Replies {
		if m := r.MAC.String(); r.Solicited && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// DualAnswers finds the stretches of a prober's record during which the
// client had two owners: probes that got solicited answers from two or
// more different MACs. Each such probe stands for the time until the next
// probe was sent (the last one of the record, until its last answer);
// stretches that touch are merged. It returns them in order, and their
// total length.
func DualAnswers(probes []Probe) (time.Duration, []Interval) {
	var spans []Interval
	for i, p := range probes {
		if len(solicitedMACs(p)) < 2 {
			continue
		}
		end := p.Sent
		if i+1 < len(probes) {
			end = probes[i+1].Sent
		} else {
			for _, r := range p.Replies {
				if r.At.After(end) {
					end = r.At
				}
			}
		}
		if n := len(spans); n > 0 && !spans[n-1].To.Before(p.Sent) {
			if end.After(spans[n-1].To) {
				spans[n-1].To = end
			}
			continue
		}
		spans = append(spans, Interval{From: p.Sent, To: end})
	}
	var total time.Duration
	for _, s := range spans {
		total += s.Duration()
	}
	return total, spans
}

// Answers counts what one MAC answered in a prober's record.
type Answers struct {
	// Solicited and Unsolicited count its answers of each kind (see Reply).
	Solicited, Unsolicited int
	// First and Last are when the first and the last of them were read;
	// zero when there was none.
	First, Last time.Time
}

// Total is how many answers there were, of either kind.
func (a Answers) Total() int { return a.Solicited + a.Unsolicited }

// AnswersFrom counts the answers, solicited or not, that carry mac.
func AnswersFrom(probes []Probe, mac net.HardwareAddr) Answers {
	var a Answers
	for _, p := range probes {
		for _, r := range p.Replies {
			if !bytes.Equal(r.MAC, mac) {
				continue
			}
			if r.Solicited {
				a.Solicited++
			} else {
				a.Unsolicited++
			}
			if a.First.IsZero() || r.At.Before(a.First) {
				a.First = r.At
			}
			if r.At.After(a.Last) {
				a.Last = r.At
			}
		}
	}
	return a
}

// RepliesBetween keeps, of a prober's record, the answers read from
// `from` until `to` (From included, To not), each under its probe; probes
// left without an answer are dropped. It judges answers by when they
// came, whenever their probe was sent.
func RepliesBetween(probes []Probe, from, to time.Time) []Probe {
	var out []Probe
	for _, p := range probes {
		var rs []Reply
		for _, r := range p.Replies {
			if !r.At.Before(from) && r.At.Before(to) {
				rs = append(rs, r)
			}
		}
		if len(rs) > 0 {
			p.Replies = rs
			out = append(out, p)
		}
	}
	return out
}

// ProbesBetween returns the probes sent from `from` until `to` (From
// included, To not), with all their answers.
func ProbesBetween(probes []Probe, from, to time.Time) []Probe {
	var out []Probe
	for _, p := range probes {
		if !p.Sent.Before(from) && p.Sent.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

// HoldInterval is how often a held connection exchanges a request and
// its answer.
const HoldInterval = 100 * time.Millisecond

// HeldConn is one long-lived connection and what became of it.
type HeldConn struct {
	Target netip.AddrPort
	// Local is the client's end of it.
	Local netip.AddrPort
	// Opened is when it was dialled.
	Opened time.Time
	// Pod answered its first exchange; every later one must come from it.
	Pod string
	// Exchanges counts the requests answered on it.
	Exchanges int
	// Broken is when an exchange failed (zero while it holds), Err why:
	// a reset, the server closing it, an answer from another pod, or no
	// answer within the holder's timeout.
	Broken time.Time
	Err    error
}

// Held reports whether the connection never broke.
func (c HeldConn) Held() bool { return c.Broken.IsZero() }

// Holder keeps connections open to an address, each exchanging a small
// HTTP request and its answer (keep-alive) every interval until it
// breaks or the holder stops. A broken connection is not dialled again:
// the record tells which broke, when and why.
type Holder struct {
	interval, timeout time.Duration
	quit              chan struct{}
	wg                sync.WaitGroup
	stop              sync.Once

	// mu guards conns.
	mu    sync.Mutex
	conns []HeldConn
}

// HoldConns opens k connections from namespace ns to target, a lab pod's
// HTTP server behind a Service, and checks each with a first exchange; it
// fails, closing what it opened, if any cannot be opened or answered
// within timeout. Then each exchanges a request every interval (0 means
// HoldInterval), an exchange that takes longer than timeout breaking it,
// until ctx ends or Stop is called.
func HoldConns(ctx context.Context, ns string, target netip.AddrPort, k int, interval, timeout time.Duration) (*Holder, error) {
	if interval <= 0 {
		interval = HoldInterval
	}
	h := &Holder{interval: interval, timeout: timeout, quit: make(chan struct{})}
	type opened struct {
		c  net.Conn
		rd *bufio.Reader
	}
	var open []opened
	for range k {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		c, err := DialFrom(dctx, ns, "tcp", target.String())
		cancel()
		if err != nil {
			for _, o := range open {
				o.c.Close()
			}
			return nil, fmt.Errorf("holding a connection from %s to %s: %w", ns, target, err)
		}
		hc := HeldConn{Target: target, Opened: start}
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			hc.Local = a.AddrPort()
		}
		rd := bufio.NewReader(c)
		pod, err := exchange(c, rd, target, timeout)
		if err != nil {
			c.Close()
			for _, o := range open {
				o.c.Close()
			}
			return nil, fmt.Errorf("first exchange on a connection from %s to %s: %w", ns, target, err)
		}
		hc.Pod, hc.Exchanges = pod, 1
		h.conns = append(h.conns, hc)
		open = append(open, opened{c, rd})
	}
	for i, o := range open {
		h.wg.Go(func() { h.hold(ctx, i, o.c, o.rd) })
	}
	return h, nil
}

// hold runs connection i until it breaks, ctx ends or the holder stops.
func (h *Holder) hold(ctx context.Context, i int, c net.Conn, rd *bufio.Reader) {
	defer c.Close()
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.quit:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		hc := h.conns[i]
		h.mu.Unlock()
		pod, err := exchange(c, rd, hc.Target, h.timeout)
		if err == nil && pod != hc.Pod {
			err = fmt.Errorf("answered by %s, but the connection's first answer came from %s", pod, hc.Pod)
		}
		h.mu.Lock()
		if err != nil {
			h.conns[i].Broken, h.conns[i].Err = time.Now(), err
		} else {
			h.conns[i].Exchanges++
		}
		h.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// exchange sends one keep-alive request on c and reads its answer,
// returning the pod that gave it.
func exchange(c net.Conn, rd *bufio.Reader, target netip.AddrPort, timeout time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(c, "GET /held HTTP/1.1\r\nHost: %s\r\n\r\n", target); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return "", fmt.Errorf("answered %s (close %t)", resp.Status, resp.Close)
	}
	pod := resp.Header.Get(PodHeader)
	if pod == "" {
		return "", errors.New("an answer without " + PodHeader)
	}
	return pod, nil
}

// Conns returns a copy of the record so far.
func (h *Holder) Conns() []HeldConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.conns)
}

// Stop closes every connection and returns the record; closing is not
// breaking. Safe to call twice.
func (h *Holder) Stop() []HeldConn {
	h.stop.Do(func() { close(h.quit) })
	h.wg.Wait()
	return h.Conns()
}

// membersMetric is the speaker's gauge of the memberlist members it sees
// alive, itself included, 0 before it has joined.
const membersMetric = "ironlb_memberlist_members"

// metricsClient reads the speakers' metrics from the control plane's
// namespace, over the LAN as Prometheus would (HTTPS, with the token of a
// scraper the chart's reader role binds), on a new connection each time
// (a speaker may have been restarted since the last read).
func (l *Lab) metricsClient(timeout time.Duration) *http.Client {
	return ScrapeClient(l.Plan.ControlPlane.NetNS, l.metricsToken, timeout)
}

// SpeakerMembers reads, from a node's speaker's metrics, how many
// speakers it sees alive in memberlist (itself included; 0 until it has
// joined). It fails when the speaker does not answer (stopped, or its
// node cut off).
func (l *Lab) SpeakerMembers(node string) (int, error) {
	return l.speakerMembers(l.metricsClient(2*time.Second), node)
}

func (l *Lab) speakerMembers(c *http.Client, node string) (int, error) {
	url, err := l.SpeakerMetricsURL(node)
	if err != nil {
		return 0, err
	}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s's metrics: %s", node, resp.Status)
	}
	return parseGauge(string(body), membersMetric)
}

// parseGauge finds an unlabelled gauge in Prometheus' text format.
func parseGauge(text, name string) (int, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("no %s among the metrics", name)
}

// MemberSample is one reading of a speaker's member count.
type MemberSample struct {
	Node string
	// At is when the reading was asked for.
	At time.Time
	// Members is what the speaker reported (see SpeakerMembers).
	Members int
	// Err says why there is no reading: the speaker did not answer.
	Err error
}

// MemberWatch reads every speaker's member count at a fixed interval.
type MemberWatch struct {
	quit chan struct{}
	wg   sync.WaitGroup
	stop sync.Once

	// mu guards samples.
	mu      sync.Mutex
	samples []MemberSample
}

// WatchMembers starts reading every node's SpeakerMembers every interval
// (each node on its own, so a silent one does not hold up the others)
// until ctx ends or Stop is called.
func (l *Lab) WatchMembers(ctx context.Context, interval time.Duration) *MemberWatch {
	w := &MemberWatch{quit: make(chan struct{})}
	c := l.metricsClient(min(interval*5, 2*time.Second))
	for _, n := range l.Plan.Nodes {
		w.wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				at := time.Now()
				m, err := l.speakerMembers(c, n.Name)
				w.mu.Lock()
				w.samples = append(w.samples, MemberSample{Node: n.Name, At: at, Members: m, Err: err})
				w.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-w.quit:
					return
				case <-tick.C:
				}
			}
		})
	}
	return w
}

// Samples returns the readings so far, in the order they were asked for.
func (w *MemberWatch) Samples() []MemberSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.samples)
	slices.SortStableFunc(out, func(a, b MemberSample) int { return a.At.Compare(b.At) })
	return out
}

// Stop ends the readings and returns them all. Safe to call twice.
func (w *MemberWatch) Stop() []MemberSample {
	w.stop.Do(func() { close(w.quit) })
	w.wg.Wait()
	return w.Samples()
}

// MembersBelow returns the readings of joined speakers that counted fewer
// than least members. Readings without an answer (a stopped or cut off
// speaker) and of 0 (a speaker that has not joined yet, or is leaving)
// tell nothing of what a running member sees and are skipped.
func MembersBelow(samples []MemberSample, least int) []MemberSample {
	var out []MemberSample
	for _, s := range samples {
		if s.Err == nil && s.Members > 0 && s.Members < least {
			out = append(out, s)
		}
	}
	return out
}

// LatestMembers returns each node's latest reading that got an answer,
// by node.
func LatestMembers(samples []MemberSample) map[string]MemberSample {
	out := map[string]MemberSample{}
	for _, s := range samples {
		if s.Err == nil && !s.At.Before(out[s.Node].At) {
			out[s.Node] = s
		}
	}
	return out
}

// MemberlistSecret names the Secret the speakers read their memberlist
// key from, as the chart's DaemonSet passes it (--memberlist-secret).
func (l *Lab) MemberlistSecret() (namespace, name string, err error) {
	for _, a := range l.speaker.container().Args {
		if v, ok := strings.CutPrefix(a, "--memberlist-secret="); ok {
			ns, n, ok := strings.Cut(v, "/")
			if !ok {
				return "", "", fmt.Errorf("--memberlist-secret=%s: not namespace/name", v)
			}
			return ns, n, nil
		}
	}
	return "", "", errors.New("the chart's speaker has no --memberlist-secret")
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
