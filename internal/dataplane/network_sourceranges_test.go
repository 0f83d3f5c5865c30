package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/testutil"
)

// dropWait is how long a connection that must be dropped is given to
// be answered. A dropped connection is never answered, so the wait only
// bounds how long the test takes: it cannot make a correct ruleset fail.
const dropWait = 1500 * time.Millisecond

// askFrom is ask from a source address of the caller's choosing.
func (c *cluster) askFrom(from string, src netip.Addr, proto Protocol, dst netip.AddrPort, n int) ([]answer, error) {
	var as []answer
	err := testutil.InNetNS(from, func() error {
		for range n {
			a, err := who(proto, netip.AddrPortFrom(src, uint16(c.srcPort.Add(1))), dst)
			if err != nil {
				return err
			}
			as = append(as, a)
		}
		return nil
	})
	return as, err
}

// mustDrop checks that a new connection from src in namespace from to
// dst gets nothing back: no answer, and neither a TCP reset nor an ICMP
// error, which would tell the client that something is there.
func (c *cluster) mustDrop(t *testing.T, from string, src netip.Addr, p Protocol, dst netip.AddrPort) {
	t.Helper()
	var a answer
	err := testutil.InNetNS(from, func() (err error) {
		a, err = whoWithin(p, netip.AddrPortFrom(src, uint16(c.srcPort.Add(1))), dst, dropWait)
		return err
	})
	var ne net.Error
	switch {
	case err == nil:
		t.Errorf("%s %s → %s answered by %s, want it dropped", p, src, dst, a.host)
	case refused(err):
		t.Errorf("%s %s → %s refused (%v), want it dropped without a word", p, src, dst, err)
	case !errors.As(err, &ne) || !ne.Timeout():
		t.Errorf("%s %s → %s: %v, want it to time out, dropped", p, src, dst, err)
	}
}

// TestSourceRanges sends TCP and UDP over IPv4 and IPv6 to frontends
// whose source ranges change from one Sync to the next: the client's
// address the ranges hold is answered, with its own address, the
// client's second address is dropped; after a change of ranges the next
// connection follows the new ones; ranges that cannot be read let nobody
// in, not even the node itself; without ranges everyone is back.
func TestSourceRanges(t *testing.T) {
	testutil.NeedNet(t, "ip", "nft")
	t.Parallel()
	c := newCluster(t)
	// A second address of the client, on its link to node1.
	second := map[string]netip.Addr{"IPv4": mustAddr("198.51.100.9"), "IPv6": mustAddr("2001:db8:1::9")}
	testutil.Run(t, "ip", "-n", c.client, "addr", "add", "198.51.100.9/32", "dev", "node1")
	testutil.Run(t, "ip", "-n", c.client, "addr", "add", "2001:db8:1::9/64", "dev", "node1", "nodad")
	testutil.Run(t, "ip", "-n", c.node1, "-4", "route", "add", "198.51.100.9/32", "via", "198.51.100.1")
	dp := startHelper(t, c.node1)

	host := func(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
	restricted := func(rs *SourceRanges) []Frontend {
		fes := frontends(tcpUDP, 0, func(f netFamily) []Backend { return []Backend{f.local()} })
		for i := range fes {
			fes[i].SourceRanges = rs
		}
		return fes
	}
	answered := func(t *testing.T, f netFamily, p Protocol, src netip.Addr) {
		t.Helper()
		as, err := c.askFrom(c.client, src, p, netip.AddrPortFrom(f.lb, lbPort), 5)
		if err != nil {
			t.Fatal(err)
		}
		answeredBy(t, as, map[string]netip.Addr{"pod1": src})
	}

	t.Run("Allowed", func(t *testing.T) {
		dp.sync(restricted(AllowOnly(host(net4.client), host(net6.client)))...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			answered(t, f, p, f.client)
			c.mustDrop(t, c.client, second[f.name], p, netip.AddrPortFrom(f.lb, lbPort))
		})
	})

	// The very next connection after the Sync follows the new ranges.
	t.Run("Changed", func(t *testing.T) {
		dp.sync(restricted(AllowOnly(host(second["IPv4"]), host(second["IPv6"])))...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			c.mustDrop(t, c.client, f.client, p, netip.AddrPortFrom(f.lb, lbPort))
			answered(t, f, p, second[f.name])
		})
	})

	t.Run("Covering", func(t *testing.T) {
		dp.sync(restricted(AllowOnly(netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")))...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			answered(t, f, p, f.client)
			answered(t, f, p, second[f.name])
		})
	})

	// What a Service whose ranges cannot be read gets.
	t.Run("Nobody", func(t *testing.T) {
		dp.sync(restricted(AllowOnly())...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			c.mustDrop(t, c.client, f.client, p, netip.AddrPortFrom(f.lb, lbPort))
			c.mustDrop(t, c.client, second[f.name], p, netip.AddrPortFrom(f.lb, lbPort))
			// From the node: the output hook drops it, which the node's
			// own socket may hear of as EPERM; it is never answered nor
			// refused.
			unspec := netip.IPv4Unspecified()
			if f.lb.Is6() {
				unspec = netip.IPv6Unspecified()
			}
			var a answer
			err := testutil.InNetNS(c.node1, func() (err error) {
				a, err = whoWithin(p, netip.AddrPortFrom(unspec, uint16(c.srcPort.Add(1))), netip.AddrPortFrom(f.lb, lbPort), dropWait)
				return err
			})
			if err == nil || refused(err) {
				t.Errorf("from node1: %+v, %v; want no answer and no refusal", a, err)
			}
		})
	})

	t.Run("Lifted", func(t *testing.T) {
		dp.sync(restricted(nil)...)
		eachPath(t, tcpUDP, func(t *testing.T, f netFamily, p Protocol) {
			answered(t, f, p, f.client)
			answered(t, f, p, second[f.name])
		})
	})
}
