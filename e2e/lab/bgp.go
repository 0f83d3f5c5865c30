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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
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
	return routerNeighbours(p, "setting the neighbours' password", func(a netip.Addr) string {
		if password == "" {
			return fmt.Sprintf("no neighbor %s password", a)
		}
		return fmt.Sprintf("neighbor %s password %s", a, password)
	})
}

// BFDProfile is the router's BFD profile for the nodes (routerConfig):
// 200 ms both ways, down after three missed packets: 600 ms, under the
// second a pulled cable should take.
const BFDProfile = "lab"

// RouterBFD turns BFD on (profile BFDProfile) or off for the router's
// sessions with every node, of both families: with it on, the router
// closes a node's BGP session as soon as the node's BFD session goes
// down.
func RouterBFD(p Plan, on bool) error {
	if on {
		// bgpd hands its BFD sessions to bfdd through zebra; one handed
		// over before bfdd has joined zebra is dropped, not retried.
		err := Poll{Every: 100 * time.Millisecond, Within: 30 * time.Second}.Until(context.Background(), "bfdd joined to the router's zebra", func() (bool, string) {
			out, err := Vtysh(p, "show zebra client summary")
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[0] == "bfd" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("zebra's clients: %s (%v)", out, err)
		})
		if err != nil {
			return err
		}
	}
	return routerNeighbours(p, "setting the neighbours' BFD", func(a netip.Addr) string {
		if !on {
			return fmt.Sprintf("no neighbor %s bfd", a)
		}
		return fmt.Sprintf("neighbor %s bfd profile %s", a, BFDProfile)
	})
}

// routerNeighbours configures, in the router's BGP instance, the line
// line gives for each node's address of each family; what names the
// change in errors.
func routerNeighbours(p Plan, what string, line func(netip.Addr) string) error {
	var lines []string
	for _, n := range p.Nodes {
		for _, a := range []netip.Addr{n.Addr.Addr(), n.Addr6.Addr()} {
			lines = append(lines, line(a))
		}
	}
	return RouterConfigure(p, what, lines...)
}

// RouterConfigure runs configuration lines in the router's BGP instance
// (in "router bgp", which a line such as "address-family ipv4 unicast"
// may leave for a sub-mode); what names the change in errors, which
// carry vtysh's complaint about a line it rejects.
func RouterConfigure(p Plan, what string, lines ...string) error {
	args := []string{"-N", p.Router.NetNS, "-c", "configure terminal", "-c", fmt.Sprintf("router bgp %d", RouterASN)}
	for _, l := range lines {
		args = append(args, "-c", l)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vtysh -N %s, %s: %w: %s", p.Router.NetNS, what, err, out)
	}
	// vtysh reports a rejected line on its output, not in its status.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "%") && !strings.HasPrefix(line, "% Can't open configuration file") {
			return fmt.Errorf("vtysh -N %s, %s: %s", p.Router.NetNS, what, out)
		}
	}
	return nil
}

// BGPPeers is the resource of ironlb's BGPPeers.
var BGPPeers = schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "bgppeers"}

// ExamplePeers are the BGPPeers of the example configuration: the
// router's IPv4 and IPv6 addresses (the IPv6 one's name ends in -v6).
var ExamplePeers = []string{"lab-router", "lab-router-v6"}

// EnableBFD turns BFD on at both ends of the example configuration's
// sessions with the peers named (ExamplePeers for all): the BGPPeers get
// the timers of the router's profile (BFDProfile), the router BFD on its
// neighbours. It waits until the router's BFD sessions with every node
// over the peers' families are up.
func (l *Lab) EnableBFD(ctx context.Context, peers ...string) error {
	dyn, err := l.Dynamic()
	if err != nil {
		return err
	}
	patch := []byte(`{"spec":{"bfd":{"receiveInterval":"200ms","transmitInterval":"200ms","detectMultiplier":3}}}`)
	var want []netip.Addr
	for _, peer := range peers {
		if _, err := dyn.Resource(BGPPeers).Patch(ctx, peer, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("BGPPeer %s: turning BFD on: %w", peer, err)
		}
		for _, n := range l.Plan.Nodes {
			if strings.HasSuffix(peer, "-v6") {
				want = append(want, n.Addr6.Addr())
			} else {
				want = append(want, n.Addr.Addr())
			}
		}
	}
	if err := RouterBFD(l.Plan, true); err != nil {
		return err
	}
	return Poll{Every: 100 * time.Millisecond, Within: time.Minute}.Until(ctx, fmt.Sprintf("the router's BFD sessions with %v up", want), func() (bool, string) {
		state, err := RouterBFDPeers(l.Plan)
		for _, a := range want {
			if err != nil || state[a] != "up" {
				return false, fmt.Sprintf("BFD peers %v (%v)", state, err)
			}
		}
		return true, ""
	})
}

// RouterBFDPeers returns the state of the router's BFD sessions ("up",
// "down", "init"), by the node's address.
func RouterBFDPeers(p Plan) (map[netip.Addr]string, error) {
	out, err := Vtysh(p, "show bfd peers json")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("FRR's BFD peers: %w: %s", err, out)
	}
	m := map[netip.Addr]string{}
	for _, r := range raw {
		if a, err := netip.ParseAddr(r.Peer); err == nil {
			m[a] = r.Status
		}
	}
	return m, nil
}

// RouterSession is what the router tells of its session with one node.
type RouterSession struct {
	State string
	// Established and Dropped count how often the session came up and
	// went down since the router started: a session that flapped between
	// two readings shows in them, however short the flap.
	Established, Dropped int
	// LastReset says why the session last went down, and
	// LastNotification the last NOTIFICATION's reason, as FRR words them.
	LastReset, LastNotification string
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
		LastReset   string `json:"lastResetDueTo"`
		LastNotify  string `json:"lastNotificationReason"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		return nil, fmt.Errorf("FRR's neighbours: %w: %s", err, out)
	}
	m := map[netip.Addr]RouterSession{}
	for k, v := range raw {
		if a, err := netip.ParseAddr(k); err == nil {
			m[a] = RouterSession{State: v.State, Established: v.Established, Dropped: v.Dropped, LastReset: v.LastReset, LastNotification: v.LastNotify}
		}
	}
	return m, nil
}
