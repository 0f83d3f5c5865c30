package layer2

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/testutil"
)

// podVeths is how many pod interfaces TestDefaultInterfaces gives the node.
const podVeths = 200

// goroutineSlack is how many more goroutines the speaker may run after
// the pods came: netlink may have to subscribe again after the burst of
// events overflowed its socket. A responder costs two per interface and
// family, so answering on the pods' veths would add hundreds.
const goroutineSlack = 10

// TestDefaultInterfaces: on a node with 200 pod veths, a bridge with tap
// ports, a vxlan and an ifb beside its uplink (itself a veth holding the
// node's addresses, as in kind or the lab), an address wanted on every
// interface is answered on the uplink only, with real packets, while the
// speaker's goroutines stay as many as before the pods came; ARP and NDP
// asked from a pod get no answer; a pod veth named explicitly is used.
func TestDefaultInterfaces(t *testing.T) {
	needNet(t)
	t.Parallel()
	tp := newTopo(t)
	client := tp.client()
	node := tp.host("a", macA, "198.51.100.11/24", "2001:db8:100::11/64")
	pods := tp.netns("pods")
	// No duplicate address detection for the pods' link-local addresses,
	// so they are usable at once (the node's veths are set below).
	testutil.Run(t, "ip", "netns", "exec", pods, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	testutil.Run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")

	sp := startSpeaker(t, node)
	every := map[netip.Addr][]string{lb4a: nil, lb6a: nil}
	uplinkOnly := map[netip.Addr][]string{lb4a: {"eth0"}, lb6a: {"eth0"}}
	sp.mustSet(every)
	sp.waitAnnounced(uplinkOnly)
	before := sp.state().Goroutines

	// The pods: veths whose node ends are in the node's namespace, with
	// no address there (as Calico's and Cilium's are; the pod end holds
	// the pod's address), made in one batch.
	var batch strings.Builder
	for i := range podVeths {
		fmt.Fprintf(&batch, "link add pod%d type veth peer name eth%d netns %s\nlink set pod%d up\n", i, i, pods, i)
	}
	ipBatch(t, node, batch.String())
	batch.Reset()
	for i := range podVeths {
		fmt.Fprintf(&batch, "link set eth%d up\n", i)
	}
	ipBatch(t, pods, batch.String())
	// A pod's address and routes, to ask from it.
	testutil.Run(t, "ip", "-n", pods, "addr", "add", "203.0.113.100/32", "dev", "eth0")
	testutil.Run(t, "ip", "-n", pods, "route", "add", "203.0.113.64/27", "dev", "eth0")
	testutil.Run(t, "ip", "-n", pods, "-6", "route", "add", "2001:db8:ff00::/40", "dev", "eth0")

	// A bridge whose ports are taps (virtual machines' interfaces), named
	// like a CNI's; a vxlan and an ifb with names no list knows.
	testutil.Run(t, "ip", "-n", node, "link", "add", "cni0", "type", "bridge")
	testutil.Run(t, "ip", "-n", node, "addr", "add", "203.0.113.1/28", "dev", "cni0")
	for i := range 3 {
		tap := fmt.Sprintf("tap%d", i)
		testutil.Run(t, "ip", "-n", node, "tuntap", "add", tap, "mode", "tap")
		testutil.Run(t, "ip", "-n", node, "link", "set", tap, "master", "cni0", "up")
	}
	testutil.Run(t, "ip", "-n", node, "link", "set", "cni0", "up")
	// ifb rather than dummy: these kernels have no dummy module; both
	// are NOARP devices with an Ethernet address.
	testutil.Run(t, "ip", "-n", node, "link", "add", "ovl0", "type", "ifb")
	testutil.Run(t, "ip", "-n", node, "link", "set", "ovl0", "up")
	skipped := []string{"pod0", "pod199", "cni0", "tap0", "ovl0"}
	if out, err := exec.Command("ip", "-n", node, "link", "add", "ovl1", "type", "vxlan", "id", "42", "dstport", "4789", "dev", "eth0").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("adding a vxlan: %v: %s", err, out)
		}
		t.Logf("no vxlan on this kernel (%v: %s); going on without", err, out)
	} else {
		testutil.Run(t, "ip", "-n", node, "link", "set", "ovl1", "up")
		skipped = append(skipped, "ovl1")
	}

	// Set lists the interfaces itself: once it returns, the announcer has
	// seen every one of them.
	r := sp.set(every)
	if r.Err != "" {
		t.Fatalf("Set: %s", r.Err)
	}
	if diff := cmp.Diff(uplinkOnly, r.Announced, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("answered on (-want +got):\n%s", diff)
	}
	st := sp.state()
	if st.Goroutines > before+goroutineSlack {
		t.Errorf("goroutines: %d with %d pod veths, %d before; want at most %d more", st.Goroutines, podVeths, before, goroutineSlack)
	}
	for _, s := range st.Series {
		if !strings.Contains(s, "{eth0/") {
			t.Errorf("metric series for an interface other than eth0: %s", s)
		}
	}
	for _, name := range skipped {
		if !strings.Contains(testutil.Run(t, "ip", "-n", node, "link", "show", name), name) {
			t.Errorf("%s is not there: the test did not build the node it meant to", name)
		}
	}

	// Real packets: the LAN client is answered by the uplink's MAC, and
	// a pod asking on its own interface gets nothing.
	kernelResolves(t, client, lb4a, macA)
	kernelResolves(t, client, lb6a, macA)
	answeredOnlyBy(t, client, lb4a, macA)
	for _, lb := range []netip.Addr{lb4a, lb6a} {
		counts, out := askOn(pods, "eth0", lb)
		if len(counts) != 0 {
			t.Errorf("%s asked from a pod on its veth was answered: %v\n%s", lb, counts, out)
		}
	}

	// Named explicitly, a pod's veth is used: the operator decides.
	sp.mustSet(map[netip.Addr][]string{lb4a: {"pod0"}, lb6a: nil})
	sp.waitAnnounced(map[netip.Addr][]string{lb4a: {"pod0"}, lb6a: {"eth0"}})
	counts, out := askOn(pods, "eth0", lb4a)
	if len(counts) != 1 {
		t.Errorf("%s on the named pod0, asked from its pod: answers %v, want one MAC\n%s", lb4a, counts, out)
	}
}

// ipBatch runs ip -batch in a namespace.
func ipBatch(t *testing.T, ns, commands string) {
	t.Helper()
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(commands)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s -batch: %v\n%s", ns, err, out)
	}
}

// askOn resolves lb from ns on ifname, like ask, and counts the answers
// per MAC.
func askOn(ns, ifname string, lb netip.Addr) (map[string]int, string) {
	var out, marker string
	if lb.Is4() {
		out, marker = try(ns, "arping", "-c", "3", "-I", ifname, lb.String()), "bytes from"
	} else {
		out, marker = try(ns, "ndisc6", "-m", "-n", "-r", "3", lb.String(), ifname), "Target link-layer address"
	}
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, marker) {
			if m := macRe.FindString(line); m != "" {
				counts[strings.ToLower(m)]++
			}
		}
	}
	return counts, out
}
