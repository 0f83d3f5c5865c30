package dataplane

// The network tests send real traffic through node1's Dataplane (see
// netns_test.go for the topology): a pod on the node keeps the client's
// address, one on the other node sees node1's, because node1 masquerades.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/testutil"
)

const lbPort = 80

// local is pod1's who server, on node1; remote is pod2's, behind node2.
func (f netFamily) local() Backend  { return Backend{netip.AddrPortFrom(f.pod1, whoPort), false} }
func (f netFamily) remote() Backend { return Backend{netip.AddrPortFrom(f.pod2, whoPort), true} }

// frontends makes, for both families and each protocol, a frontend on
// the LB address and lbPort with the backends bs gives.
func frontends(protos []Protocol, affinity time.Duration, bs func(netFamily) []Backend) []Frontend {
	var fes []Frontend
	for _, f := range netFamilies {
		for _, p := range protos {
			fes = append(fes, Frontend{Addr: f.lb, Protocol: p, Port: lbPort, Backends: bs(f), Affinity: affinity})
		}
	}
	return fes
}

var tcpUDP = []Protocol{TCP, UDP}

// eachPath runs a subtest per family and protocol.
func eachPath(t *testing.T, protos []Protocol, test func(t *testing.T, f netFamily, p Protocol)) {
	t.Helper()
	for _, f := range netFamilies {
		for _, p := range protos {
			t.Run(fmt.Sprintf("%s/%s", p, f.name), func(t *testing.T) { test(t, f, p) })
		}
	}
}

// answeredBy checks that the answers came from exactly the hosts in saw,
// each having seen the client address saw gives.
func answeredBy(t *testing.T, as []answer, saw map[string]netip.Addr) {
	t.Helper()
	counts := map[string]int{}
	wrong := map[string]netip.Addr{}
	for _, a := range as {
		counts[a.host]++
		if a.saw != saw[a.host] {
			wrong[a.host] = a.saw
		}
	}
	if got, want := slices.Sorted(maps.Keys(counts)), slices.Sorted(maps.Keys(saw)); !slices.Equal(got, want) {
		t.Errorf("%d connections answered by %v, want each of %v", len(as), counts, want)
	}
	for host, addr := range wrong {
		t.Errorf("%s saw the client as %s, want %s", host, addr, saw[host])
	}
}

// mustRefuse checks that a new connection from namespace from to dst is
// refused: a TCP reset, or ICMP port unreachable for UDP.
func (c *cluster) mustRefuse(t *testing.T, from string, p Protocol, dst netip.AddrPort) {
	t.Helper()
	as, err := c.ask(from, p, dst, 1)
	switch {
	case err == nil:
		t.Errorf("%s %s answered by %s, want it refused", p, dst, as[0].host)
	case !refused(err):
		t.Errorf("%s %s: %v, want ECONNREFUSED", p, dst, err)
	}
}

// TestForwarding sends TCP and UDP over IPv4 and IPv6 from the client to
// the LB address through node1, and from node1 itself, through the
// states the speaker asks for. The subtests share one cluster and one
// Dataplane, each Syncing what it needs.
func TestForwarding(t *testing.T) {
	testutil.NeedNet(t, "ip", "nft")
	t.Parallel()
	c := newCluster(t)
	dp := startHelper(t, c.node1)
	both := func(f netFamily) []Backend { return []Backend{f.local(), f.remote()} }

	// Cluster: new connections spread over both pods; pod1, on this
	// node, sees the client; pod2 sees node1, which masquerades.
	t.Run("Cluster", func(t *testing.T) {
		dp.sync(frontends(tcpUDP, 0, both)...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.client, p, netip.AddrPortFrom(f.lb, lbPort), 60)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"pod1": f.client, "pod2": f.node1})
		})
	})

	// Local (externalTrafficPolicy: Local): only the local pod, which
	// sees the client.
	t.Run("Local", func(t *testing.T) {
		dp.sync(frontends(tcpUDP, 0, func(f netFamily) []Backend { return []Backend{f.local()} })...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.client, p, netip.AddrPortFrom(f.lb, lbPort), 20)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"pod1": f.client})
		})
	})

	// A backend removed by a later Sync gets no new connections; without
	// backends, and on a port no frontend names, connections are refused.
	t.Run("BackendRemoved", func(t *testing.T) {
		dp.sync(frontends(tcpUDP, 0, both)...)
		dp.sync(frontends(tcpUDP, 0, func(f netFamily) []Backend { return []Backend{f.remote()} })...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.client, p, netip.AddrPortFrom(f.lb, lbPort), 30)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"pod2": f.node1})
		})
		t.Run("NoBackends", func(t *testing.T) {
			dp.sync(frontends(tcpUDP, 0, func(netFamily) []Backend { return nil })...)
			eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
				c.mustRefuse(t, c.client, p, netip.AddrPortFrom(f.lb, lbPort))
				c.mustRefuse(t, c.client, p, netip.AddrPortFrom(f.lb, lbPort+1))
			})
		})
	})

	// sessionAffinity: ClientIP: every connection of the client goes
	// where its first went.
	t.Run("Affinity", func(t *testing.T) {
		dp.sync(frontends(tcpUDP, 30*time.Second, both)...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.client, p, netip.AddrPortFrom(f.lb, lbPort), 30)
			if err != nil {
				t.Fatal(err)
			}
			saw := map[string]netip.Addr{"pod1": f.client, "pod2": f.node1}
			answeredBy(t, as, map[string]netip.Addr{as[0].host: saw[as[0].host]})
		})
	})

	// A backend that is node1's own address, as for a NodePort: the
	// connection is delivered to node1 with the client's address.
	t.Run("NodePort", func(t *testing.T) {
		dp.sync(frontends([]Protocol{TCP}, 0, func(f netFamily) []Backend {
			return []Backend{{netip.AddrPortFrom(f.node1, nodePort), false}}
		})...)
		eachPath(t, []Protocol{TCP}, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.client, p, netip.AddrPortFrom(f.lb, lbPort), 10)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"node1": f.client})
		})
	})

	// Connections node1 makes itself go through the output hook: DNATed
	// alike, with node1's address (masqueraded towards pod2); refused
	// alike.
	t.Run("FromTheNode", func(t *testing.T) {
		dp.sync(frontends(tcpUDP, 0, both)...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.node1, p, netip.AddrPortFrom(f.lb, lbPort), 40)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"pod1": f.node1Client, "pod2": f.node1})
			c.mustRefuse(t, c.node1, p, netip.AddrPortFrom(f.lb, lbPort+1))
		})
	})

	// A pod reaching its own Service: sent to itself, it must see node1's
	// address, or its reply would go straight back to itself without the
	// NAT being undone; sent to pod2, node1's too.
	t.Run("Hairpin", func(t *testing.T) {
		dp.sync(frontends(tcpUDP, 0, both)...)
		gateway := map[string]netip.Addr{"IPv4": mustAddr("203.0.113.1"), "IPv6": mustAddr("2001:db8:11::1")}
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.pod1, p, netip.AddrPortFrom(f.lb, lbPort), 40)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"pod1": gateway[f.name], "pod2": f.node1})
		})
	})

	t.Run("SCTP", func(t *testing.T) {
		serveSCTP(t, c.pod1, "pod1", net4.pod1, net6.pod1)
		serveSCTP(t, c.pod2, "pod2", net4.pod2, net6.pod2)
		dp.sync(frontends([]Protocol{SCTP}, 0, both)...)
		eachPath(t, []Protocol{SCTP}, func(t *testing.T, f netFamily, p Protocol) {
			as, err := c.ask(c.client, p, netip.AddrPortFrom(f.lb, lbPort), 40)
			if err != nil {
				t.Fatal(err)
			}
			answeredBy(t, as, map[string]netip.Addr{"pod1": f.client, "pod2": f.node1})
		})
	})
}

// serveSCTP runs SCTP who servers in namespace ns on addrs until the test
// ends, or skips the test when the kernel lacks SCTP.
func serveSCTP(t *testing.T, ns, name string, addrs ...netip.Addr) {
	t.Helper()
	var ls []net.Listener
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, l := range ls {
			l.Close()
		}
		wg.Wait()
	})
	err := testutil.InNetNS(ns, func() error {
		for _, a := range addrs {
			l, err := listenSCTP(netip.AddrPortFrom(a, whoPort))
			if err != nil {
				return err
			}
			ls = append(ls, l)
			wg.Go(func() { acceptLoop(l, whoTCP(name), &wg) })
		}
		return nil
	})
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) {
		t.Skipf("the kernel cannot make SCTP sockets: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestart: a new process's first Sync over the table an earlier one
// left writes exactly what was there, and a table written by partial
// Syncs matches what a full Sync of the same state writes; Cleanup
// leaves no table behind.
func TestRestart(t *testing.T) {
	testutil.NeedNet(t, "ip", "nft")
	t.Parallel()
	c := newNode(t)
	s1, s2, s3 := restartStates()

	a := startHelper(t, c.node1)
	a.sync(s1...)
	a1 := a.list()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(a1.Table) != 2 {
		t.Fatalf("after the first Sync, nft list tables shows:\n%s", a1.Tables)
	}

	b := startHelper(t, c.node1)
	b.sync(s1...)
	b1 := b.list()
	for _, f := range []string{"ip", "ip6"} {
		if diff := cmp.Diff(withoutHandles(a1.Table[f]), withoutHandles(b1.Table[f])); diff != "" {
			t.Errorf("table %s after a restart and the same Sync (-before +after):\n%s", f, diff)
		}
	}
	b.sync(s2...) // partial
	b2 := b.list()
	b.sync(s3...) // partial
	b3 := b.list()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	// The full Sync of s2 replaces a table holding s3, then a partial one
	// goes to s3 again: every state is written both ways.
	cc := startHelper(t, c.node1)
	cc.sync(s2...)
	c2 := cc.list()
	cc.sync(s3...)
	c3 := cc.list()
	for _, st := range []struct {
		name          string
		partial, full helperReply
	}{{"s2", b2, c2}, {"s3", c3, b3}} {
		for _, f := range []string{"ip", "ip6"} {
			if diff := cmp.Diff(canonicalTable(st.full.Table[f]), canonicalTable(st.partial.Table[f])); diff != "" {
				t.Errorf("table %s holding %s (-full sync +partial sync):\n%s", f, st.name, diff)
			}
		}
	}

	cc.mustDo(helperCommand{Op: "cleanup"})
	if after := cc.list(); strings.Contains(after.Tables, tableName) {
		t.Errorf("after Cleanup, nft list tables shows:\n%s", after.Tables)
	}
}

// TestAffinitySurvivesRestart: the clients an affinity set holds are
// still there after a new process's first (full) Sync.
func TestAffinitySurvivesRestart(t *testing.T) {
	testutil.NeedNet(t, "ip", "nft")
	t.Parallel()
	c := newCluster(t)
	fes := frontends([]Protocol{TCP}, time.Hour, func(f netFamily) []Backend { return []Backend{f.local(), f.remote()} })
	a := startHelper(t, c.node1)
	a.sync(fes...)
	for _, f := range netFamilies {
		if _, err := c.ask(c.client, TCP, netip.AddrPortFrom(f.lb, lbPort), 1); err != nil {
			t.Fatal(err)
		}
	}
	before := a.list()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	b := startHelper(t, c.node1)
	b.sync(fes...)
	after := b.list()
	for _, f := range netFamilies {
		fam := map[string]string{"IPv4": "ip", "IPv6": "ip6"}[f.name]
		if !strings.Contains(before.Table[fam], f.client.String()) {
			t.Fatalf("%s: the client is in no affinity set after its connection:\n%s", f.name, before.Table[fam])
		}
		if !strings.Contains(after.Table[fam], f.client.String()) {
			t.Errorf("%s: the client's affinity is gone after a restart:\n%s", f.name, after.Table[fam])
		}
	}
}

// restartStates are three states of the tables, each changing much of
// the one before: backends, their counts, affinity, protocols, addresses.
func restartStates() (s1, s2, s3 []Frontend) {
	lb2 := mustAddr("203.0.113.101")
	be := func(s string, masq bool) Backend { return Backend{netip.MustParseAddrPort(s), masq} }
	b4 := []Backend{be("203.0.113.2:8080", false), be("203.0.113.6:8080", true), be("203.0.113.10:8080", true), be("203.0.113.14:8443", true)}
	b6 := []Backend{be("[2001:db8:11::2]:8080", false), be("[2001:db8:12::2]:8080", true), be("[2001:db8:13::2]:8080", true)}
	fe := func(a netip.Addr, p Protocol, port uint16, aff time.Duration, bs ...Backend) Frontend {
		return Frontend{Addr: a, Protocol: p, Port: port, Backends: bs, Affinity: aff}
	}
	s1 = []Frontend{
		fe(net4.lb, TCP, 80, 0, b4[0], b4[1]),
		fe(net4.lb, UDP, 80, 0, b4[0], b4[1]),
		fe(net4.lb, TCP, 443, 0, b4[1], b4[2], b4[3]),
		fe(net4.lb, UDP, 53, 0),
		fe(lb2, TCP, 80, 3*time.Hour, b4[0], b4[2]),
		fe(lb2, SCTP, 3868, 0, b4[3]),
		fe(net6.lb, TCP, 80, 0, b6[0], b6[1]),
		fe(net6.lb, SCTP, 80, 0, b6[2]),
		fe(net6.lb, UDP, 80, 10*time.Second, b6...),
	}
	s2 = []Frontend{
		fe(net4.lb, TCP, 80, 0, b4[1]),
		fe(net4.lb, UDP, 80, 0, b4[0], b4[1]),
		fe(net4.lb, TCP, 443, 0, b4[0], b4[2], b4[3]),
		fe(lb2, TCP, 80, 30*time.Second, b4[0], b4[2]),
		fe(lb2, TCP, 8080, 0, b4...),
		fe(net6.lb, TCP, 80, 0),
		fe(net6.lb, UDP, 80, 10*time.Second, b6[0], b6[2]),
	}
	s3 = []Frontend{
		fe(lb2, TCP, 80, 0, b4[0], b4[2]),
		fe(lb2, UDP, 80, 0, b4[2]),
		fe(net6.lb, TCP, 443, time.Minute, b6[1]),
		fe(net6.lb, UDP, 80, 0, b6[0], b6[2]),
	}
	// Source ranges that change from state to state, so that the
	// interval set is written in part too: added, changed, lifted,
	// closed to everyone.
	p := netip.MustParsePrefix
	s1[0].SourceRanges = AllowOnly(p("198.51.100.0/24"), p("198.18.0.0/16"), p("2001:db8:1::/64"))
	s1[4].SourceRanges = AllowOnly(p("198.51.100.0/30"))
	s1[6].SourceRanges = AllowOnly(p("2001:db8:1::/64"), p("2001:db8:1::1/128"))
	s2[0].SourceRanges = AllowOnly(p("198.51.100.0/25"), p("198.18.0.0/16"))
	s2[3].SourceRanges = AllowOnly(p("198.51.100.0/30"))
	s2[6].SourceRanges = AllowOnly()
	s3[0].SourceRanges = AllowOnly(p("198.51.100.1/32"))
	s3[3].SourceRanges = AllowOnly(p("2001:db8:1::/48"), p("198.51.100.0/24"))
	return s1, s2, s3
}

var handleRe = regexp.MustCompile(`\s*# handle \d+`)

func withoutHandles(s string) string { return handleRe.ReplaceAllString(s, "") }

// canonicalTable is a listing without handles, its sets, maps and chains
// sorted by name and each set's or map's elements sorted: the kernel
// lists them in the order they were made, and keeps no order among
// elements, but it does among a chain's rules.
func canonicalTable(s string) string {
	var blocks, cur, elems []string
	inElems := false
	for _, l := range strings.Split(withoutHandles(s), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case inElems || strings.HasPrefix(t, "elements = {"):
			inElems = true
			t = strings.TrimPrefix(t, "elements = {")
			end := strings.HasSuffix(t, "}")
			for _, e := range strings.Split(strings.TrimSuffix(t, "}"), ",") {
				if e = strings.TrimSpace(e); e != "" {
					elems = append(elems, e)
				}
			}
			if end {
				slices.Sort(elems)
				cur = append(cur, "elements = { "+strings.Join(elems, ", ")+" }")
				elems, inElems = nil, false
			}
		case t == "" || !strings.HasPrefix(l, "\t"):
			// the table's first and last lines
		case strings.HasPrefix(l, "\t\t"):
			cur = append(cur, t)
		default:
			// A set's, map's or chain's first or last line, or a line of
			// its own (the comment).
			cur = append(cur, t)
			if !strings.HasSuffix(t, "{") {
				blocks = append(blocks, strings.Join(cur, "\n"))
				cur = nil
			}
		}
	}
	slices.Sort(blocks)
	return strings.Join(blocks, "\n\n")
}
