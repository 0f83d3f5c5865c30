package lab

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/testutil"
)

// needRoot skips outside CI when the test cannot make namespaces, and
// fails in CI, where it must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root to make network namespaces")
}

// labName is unique per test run, so a killed run's leftovers never
// collide with a new one.
func labName() string { return fmt.Sprintf("t%04d", time.Now().UnixNano()%10000) }

func ping(t *testing.T, ns, addr string) {
	t.Helper()
	args := []string{"-c1", "-W2", addr}
	cmd := exec.Command("ping", args...)
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, "ping"}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ping %s from %q: %v\n%s", addr, ns, err, out)
	}
}

// upLab brings up the network of a lab of n nodes for one test, and when
// the test ends removes it and checks nothing is left.
func upLab(t *testing.T, nodes int) Plan {
	t.Helper()
	needRoot(t)
	p, err := NewPlan(labName(), nodes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Down(p.Name); err != nil {
			t.Errorf("Down: %v", err)
		}
		if left := Leftovers(p.Name); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	if err := Up(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTopology(t *testing.T) {
	p := upLab(t, 3)
	// Right after Up, every LAN interface has its link-local address and
	// its IPv6 address ready, none still tentative (no DAD to wait for).
	for _, h := range append(p.lanMembers(), p.HostLeg) {
		ifname := InsideIface
		if h == p.HostLeg {
			ifname = p.HostIface
		}
		checkIPv6Ready(t, h.NetNS, ifname, h.Addr6.Addr())
	}
	for _, family := range []func(Host) netip.Prefix{
		func(h Host) netip.Prefix { return h.Addr },
		func(h Host) netip.Prefix { return h.Addr6 },
	} {
		addr := func(h Host) string { return family(h).Addr().String() }
		// The LAN: everyone reaches everyone.
		for _, h := range []Host{p.Router, p.ControlPlane, p.Nodes[0].Host, p.Nodes[2].Host} {
			ping(t, p.Client.NetNS, addr(h))
		}
		// The host reaches the control plane through its own leg.
		ping(t, "", addr(p.ControlPlane))
		// The remote segment reaches the LAN only through the router.
		ping(t, p.Remote.NetNS, addr(p.Router))
		ping(t, p.Remote.NetNS, addr(p.Nodes[1].Host))
		ping(t, p.Client.NetNS, addr(p.Remote))
	}
	// Pod networks are routed between nodes, in both families, and the
	// client reaches them through their nodes.
	for _, from := range []string{p.Nodes[0].NetNS, p.Client.NetNS} {
		ping(t, from, p.Nodes[2].PodGateway().Addr().String())
		ping(t, from, p.Nodes[2].PodGateway6().Addr().String())
	}
	// Nodes forward both families (ironlb's DNAT relies on it), and the
	// router spreads ECMP by ports.
	for ns, keys := range map[string][]string{
		p.Nodes[1].NetNS: {"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"},
		p.Router.NetNS:   {"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/fib_multipath_hash_policy", "net/ipv6/fib_multipath_hash_policy"},
	} {
		for _, key := range keys {
			var got []byte
			if err := InNetNS(ns, func() (err error) { got, err = os.ReadFile("/proc/sys/" + key); return err }); err != nil || strings.TrimSpace(string(got)) != "1" {
				t.Errorf("%s in %s = %q (%v), want 1", key, ns, got, err)
			}
		}
	}
	// The client and the router find the layer 2 pools' addresses on the
	// LAN (ARP, NDP), the BGP pool's through the router.
	for _, h := range []Host{p.Client, p.Router} {
		for _, pool := range []netip.Prefix{L2PoolNet, L2PoolNet6} {
			checkOnLink(t, h.NetNS, pool.Addr().Next(), true)
		}
	}
	checkOnLink(t, p.Client.NetNS, BGPPoolNet.Addr().Next(), false)
}

// checkIPv6Ready checks an interface has a link-local address and want,
// neither of them tentative.
func checkIPv6Ready(t *testing.T, ns, ifname string, want netip.Addr) {
	t.Helper()
	h, err := handle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var linkLocal, global bool
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			t.Errorf("%s on %s in %q is tentative (flags %#x)", ip, ifname, ns, a.Flags)
			continue
		}
		linkLocal = linkLocal || ip.IsLinkLocalUnicast()
		global = global || ip == want
	}
	if !linkLocal || !global {
		t.Errorf("%s in %q has %v: want a link-local address and %s, ready", ifname, ns, addrs, want)
	}
}

// checkOnLink checks whether ns reaches dst directly on its LAN
// interface, with no gateway.
func checkOnLink(t *testing.T, ns string, dst netip.Addr, want bool) {
	t.Helper()
	h, err := handle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rs, err := h.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		t.Fatalf("route to %s in %q: %v", dst, ns, err)
	}
	link, err := h.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		t.Fatal(err)
	}
	if onLink := rs[0].Gw == nil && link.Attrs().Name == InsideIface; onLink != want {
		t.Errorf("route to %s in %q: via %v dev %s; want on the LAN itself: %t", dst, ns, rs[0].Gw, link.Attrs().Name, want)
	}
}

// TestDownCleansAHalfBuiltLab: a lab killed while coming up leaves some
// namespaces and the host's leg; Down removes them all, and twice is fine.
func TestDownCleansAHalfBuiltLab(t *testing.T) {
	needRoot(t)
	p, err := NewPlan(labName(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(p.Name) })
	for _, ns := range p.Namespaces()[:3] {
		if err := newNetNS(ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: p.HostIface}}); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(p.Name); len(left) != 4 {
		t.Fatalf("the half-built lab should show 3 namespaces and the host leg, shows %v", left)
	}
	if err := Down(p.Name); err != nil {
		t.Fatal(err)
	}
	if err := Down(p.Name); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	if left := Leftovers(p.Name); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestUpFailingHalfwayCleansUp: when Up fails part way (here: the host's
// interface name is taken), it removes what it built.
func TestUpFailingHalfwayCleansUp(t *testing.T) {
	needRoot(t)
	p, err := NewPlan(labName(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(p.Name) })
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: p.HostIface}}); err != nil {
		t.Fatal(err)
	}
	if err := Up(p); err == nil {
		t.Fatal("Up succeeded although the host interface name was taken")
	}
	if left := Leftovers(p.Name); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestRouter(t *testing.T) {
	p := upLab(t, 2)
	procs, err := StartRouter(p, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pr := range procs {
			pr.Stop()
		}
	})
	var out string
	eventualOK := func() (bool, string) {
		out, err = Vtysh(p, "show bgp summary")
		return err == nil && strings.Contains(out, p.Nodes[1].Addr.Addr().String()), out
	}
	testutil.Eventually(t, "FRR to list both nodes as neighbours", eventualOK)
}

// TestOneLabAtATime: a lab refuses to come up while another lab's leg is
// in the host's namespace, and says which lab and what to do.
func TestOneLabAtATime(t *testing.T) {
	needRoot(t)
	first, err := NewPlan(labName(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(first.Name) })
	if err := Up(first); err != nil {
		t.Fatal(err)
	}
	second, err := NewPlan("x"+first.Name[1:], 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(second.Name) })
	err = Up(second)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("another lab, %q, is running", first.Name)) || !strings.Contains(err.Error(), "make lab-down") {
		t.Fatalf("Up of a second lab = %v", err)
	}
	if left := Leftovers(second.Name); len(left) > 0 {
		t.Fatalf("the refused lab left %v", left)
	}
}
