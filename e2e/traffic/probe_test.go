package traffic_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/testutil"
)

// addAddr gives a lab host's LAN interface one more address.
func addAddr(t *testing.T, ns string, a netip.Prefix) {
	t.Helper()
	if err := changeAddr(ns, a, true); err != nil {
		t.Fatal(err)
	}
}

func delAddr(t *testing.T, ns string, a netip.Prefix) {
	t.Helper()
	if err := changeAddr(ns, a, false); err != nil {
		t.Fatal(err)
	}
}

func changeAddr(ns string, a netip.Prefix, add bool) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(lab.InsideIface)
	if err != nil {
		return err
	}
	na := &netlink.Addr{IPNet: ipNet(a)}
	if a.Addr().Is6() {
		na.Flags = unix.IFA_F_NODAD
	}
	if add {
		return h.AddrAdd(link, na)
	}
	return h.AddrDel(link, na)
}

func startProbe(t *testing.T, p lab.Plan, target netip.Addr) *traffic.Prober {
	t.Helper()
	pr, err := traffic.StartProbe(context.Background(), p, p.Client, target, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Stop() })
	return pr
}

// answers counts the solicited answers from mac in probes.
func answers(probes []traffic.Probe, mac net.HardwareAddr) int {
	n := 0
	for _, pb := range probes {
		for _, r := range pb.Replies {
			if r.Solicited && bytes.Equal(r.MAC, mac) {
				n++
			}
		}
	}
	return n
}

// proberState says how many probes went out, the last one's send error
// and the reader's.
func proberState(pr *traffic.Prober) string {
	probes := pr.Probes()
	var last error
	if len(probes) > 0 {
		last = probes[len(probes)-1].Err
	}
	return fmt.Sprintf("%d probes, last send error %v, reader error %v", len(probes), last, pr.Err())
}

func nodeMAC(t *testing.T, p lab.Plan, node string) net.HardwareAddr {
	t.Helper()
	mac, err := lab.NodeMAC(p, node)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// TestProbeFailover moves a spare address of each family, which the
// nodes' kernels answer ARP and NDP for, from node1 to node2 while the
// client probes it, and reads the handover from the record.
func TestProbeFailover(t *testing.T) {
	p := upLab(t, 2)
	mac1, mac2 := nodeMAC(t, p, "node1"), nodeMAC(t, p, "node2")
	if len(mac1) != 6 || bytes.Equal(mac1, mac2) {
		t.Fatalf("node MACs %s and %s should be two Ethernet addresses", mac1, mac2)
	}
	for _, spare := range []netip.Prefix{
		netip.PrefixFrom(lab.L2PoolNet.Addr().Next().Next(), 32),   // 203.0.113.66
		netip.PrefixFrom(lab.L2PoolNet6.Addr().Next().Next(), 128), // 2001:db8:ff64::2
	} {
		t.Run(spare.Addr().String(), func(t *testing.T) {
			addAddr(t, p.Nodes[0].NetNS, spare)
			pr := startProbe(t, p, spare.Addr())
			testutil.Eventually(t, "node1 to answer 5 probes", func() (bool, string) {
				n := answers(pr.Probes(), mac1)
				return n >= 5, fmt.Sprintf("%d answers; %s", n, proberState(pr))
			})
			delAddr(t, p.Nodes[0].NetNS, spare)
			addAddr(t, p.Nodes[1].NetNS, spare)
			testutil.Eventually(t, "node2 to answer 5 probes", func() (bool, string) {
				n := answers(pr.Probes(), mac2)
				return n >= 5, fmt.Sprintf("%d answers; %s", n, proberState(pr))
			})
			rec := pr.Stop()
			if err := pr.Err(); err != nil {
				t.Fatalf("the prober stopped reading: %v", err)
			}
			f, err := measure.AnalyzeFailover(rec, mac1, mac2)
			if err != nil {
				t.Fatal(err)
			}
			if f.From != mac1.String() || f.To != mac2.String() || f.Gap <= 0 || !f.FirstNew.After(f.LastOld) || f.Doubled != 0 {
				t.Errorf("failover %+v: want from node1 %s to node2 %s with a positive gap and never both", f, mac1, mac2)
			}
			// Only the two nodes answered, and node1 never after node2.
			for i, pb := range rec {
				for _, r := range pb.Replies {
					if !bytes.Equal(r.MAC, mac1) && !bytes.Equal(r.MAC, mac2) {
						t.Errorf("probe %d: answer from %s, neither node", i, r.MAC)
					}
				}
			}
			if back, err := measure.AnalyzeFailover(rec, mac2, mac1); err == nil {
				t.Errorf("node1 answered after node2 took over: %+v", back)
			}
			t.Logf("%d probes, gap %s, %d unanswered in it, %d unanswered within 5ms overall",
				len(rec), f.Gap, f.Unanswered, measure.Unanswered(rec, 5*time.Millisecond))
		})
	}
}

// TestProbeTimesByArrival: a prober whose reader is kept waiting (a busy
// machine) still times each answer by when it reached the client, so a
// stall of the client is not taken for a silence of the nodes. (Not every
// probe is answered: the lab's first probe sometimes goes unanswered.)
func TestProbeTimesByArrival(t *testing.T) {
	p := upLab(t, 2)
	mac1 := nodeMAC(t, p, "node1")
	const delay = 100 * time.Millisecond
	for _, spare := range []netip.Prefix{
		netip.PrefixFrom(lab.L2PoolNet.Addr().Next().Next(), 32),
		netip.PrefixFrom(lab.L2PoolNet6.Addr().Next().Next(), 128),
	} {
		t.Run(spare.Addr().String(), func(t *testing.T) {
			addAddr(t, p.Nodes[0].NetNS, spare)
			pr, err := traffic.StartProbeSlowReader(context.Background(), p, p.Client, spare.Addr(), delay)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pr.Stop() })
			testutil.Eventually(t, "node1's answers to 5 probes read", func() (bool, string) {
				n := answers(pr.Probes(), mac1)
				return n >= 5, fmt.Sprintf("%d answers; %s", n, proberState(pr))
			})
			rec := pr.Stop()
			// The reader's first read came a delay after the first
			// probe, and each next one a delay later; the answers it
			// read must be timed by their arrival, mostly before that.
			early, first := 0, rec[0].Sent
			var times []string
			for _, pb := range rec {
				for _, r := range pb.Replies {
					times = append(times, r.At.Sub(first).String())
					if r.At.Sub(first) < delay {
						early++
					}
				}
			}
			if early < 3 {
				t.Errorf("%d answers timed within %s of the first probe, want at least 3 of the first read: the reader read them %s late each, and timed them at (from the first probe) %v", early, delay, delay, times)
			}
		})
	}
}

// TestLinkDown pulls node1's cable: its interface loses carrier but stays
// up, and neither the client's probes nor node2 reach it until the cable
// is back.
func TestLinkDown(t *testing.T) {
	p := upLab(t, 2)
	node1, node2 := p.Nodes[0], p.Nodes[1]
	mac1 := nodeMAC(t, p, node1.Name)
	var probers []*traffic.Prober
	for _, a := range node1.Addrs() {
		probers = append(probers, startProbe(t, p, a.Addr()))
	}
	answeredSince := func(pr *traffic.Prober, from int) func() (bool, string) {
		return func() (bool, string) {
			probes := pr.Probes()
			n := answers(probes[min(from, len(probes)):], mac1)
			return n > 0, fmt.Sprintf("%d answers from node1; %s", n, proberState(pr))
		}
	}
	for _, pr := range probers {
		testutil.Eventually(t, "node1 to answer "+pr.Target().String(), answeredSince(pr, 0))
	}

	if err := lab.LinkDown(p, node1.Name); err != nil {
		t.Fatal(err)
	}
	h, err := handle(node1.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(lab.InsideIface)
	if err != nil {
		t.Fatal(err)
	}
	if a := eth0.Attrs(); a.OperState == netlink.OperUp || a.Flags&net.FlagUp == 0 {
		t.Errorf("node1's eth0 after the cable pull: state %s, flags %s; want it administratively up without carrier", a.OperState, a.Flags)
	}
	// Probes sent after the pull (and one more, for an answer in flight)
	// go unanswered.
	for _, pr := range probers {
		from := len(pr.Probes()) + 1
		testutil.Eventually(t, "20 probes after the pull", func() (bool, string) {
			n := len(pr.Probes())
			return n >= from+20, fmt.Sprint(n)
		})
		if probes := pr.Probes()[from:]; measure.Unanswered(probes, time.Second) != len(probes) {
			t.Errorf("%s: node1 answered after its cable was pulled", pr.Target())
		}
	}
	for _, a := range node1.Addrs() {
		cmd := exec.Command("ip", "netns", "exec", node2.NetNS, "ping", "-c1", "-W1", a.Addr().String())
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("node2 reached node1 at %s with the cable pulled:\n%s", a.Addr(), out)
		}
	}

	if err := lab.LinkUp(p, node1.Name); err != nil {
		t.Fatal(err)
	}
	for _, pr := range probers {
		testutil.Eventually(t, "node1 to answer "+pr.Target().String()+" again", answeredSince(pr, len(pr.Probes())))
	}
	for _, a := range node1.Addrs() {
		if out, err := exec.Command("ip", "netns", "exec", node2.NetNS, "ping", "-c1", "-W2", a.Addr().String()).CombinedOutput(); err != nil {
			t.Errorf("ping %s from node2 with the cable back: %v\n%s", a.Addr(), err, out)
		}
	}
}

func TestStartProbeRefuses(t *testing.T) {
	p, err := lab.NewPlan("ilb", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		host   lab.Host
		target string
		want   string
	}{
		{p.Remote, "203.0.113.66", "no leg on the LAN"},
		{p.Client, "ff02::1", "not a unicast address"},
		{p.Client, "fe80::1%eth0", "not a unicast address"},
	} {
		if _, err := traffic.StartProbe(ctx, p, tt.host, netip.MustParseAddr(tt.target), 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("StartProbe from %s for %s = %v, want an error containing %q", tt.host.NetNS, tt.target, err, tt.want)
		}
	}
	if _, err := traffic.StartProbe(ctx, p, p.Client, netip.Addr{}, 0); err == nil {
		t.Error("StartProbe of no address succeeded")
	}
}
