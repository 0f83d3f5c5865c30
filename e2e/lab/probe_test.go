package lab

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

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/testutil"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc}
	t0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// at is t0 plus tenths of a millisecond, to write records compactly.
func at(tenths int) time.Time { return t0.Add(time.Duration(tenths) * 100 * time.Microsecond) }

// answer and announce are a solicited and an unsolicited reply.
func answer(tenths int, mac net.HardwareAddr) Reply {
	return Reply{At: at(tenths), MAC: mac, Solicited: true}
}
func announce(tenths int, mac net.HardwareAddr) Reply {
	return Reply{At: at(tenths), MAC: mac}
}

func probe(tenths int, rs ...Reply) Probe { return Probe{Sent: at(tenths), Replies: rs} }

func TestAnalyzeFailover(t *testing.T) {
	for _, tt := range []struct {
		name   string
		probes []Probe
		want   Failover
		err    string
	}{{
		name: "clean handover with two silent probes",
		probes: []Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macA)),
			probe(200), probe(300),
			probe(400, answer(406, macB)), probe(500, answer(505, macB)),
		},
		want: Failover{LastOld: at(105), FirstNew: at(406), Gap: 30100 * time.Microsecond, Unanswered: 2},
	}, {
		name: "the new owner's announcement counts as its first answer",
		probes: []Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macA)),
			probe(200, announce(250, macB)), probe(300, answer(305, macB)),
		},
		want: Failover{LastOld: at(105), FirstNew: at(250), Gap: 14500 * time.Microsecond},
	}, {
		name: "two owners for two probes",
		probes: []Probe{
			probe(0, answer(5, macA)),
			probe(100, answer(105, macA), answer(106, macB)),
			probe(200, answer(204, macB), answer(207, macA)),
			probe(300, answer(305, macB)),
		},
		want: Failover{LastOld: at(207), FirstNew: at(305), Gap: 9800 * time.Microsecond, Doubled: 2},
	}, {
		name: "another MAC in between is neither owner",
		probes: []Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macC)), probe(200, answer(205, macB)),
		},
		want: Failover{LastOld: at(5), FirstNew: at(205), Gap: 20 * time.Millisecond, Unanswered: 1},
	}, {
		name: "the old owner came back last",
		probes: []Probe{
			probe(0, answer(5, macA)), probe(100, answer(105, macB)), probe(200, answer(205, macA)),
		},
		err: "no answer from the new owner",
	}, {
		name:   "the old owner never answered",
		probes: []Probe{probe(0), probe(100, answer(105, macB))},
		err:    "no answer from the old owner",
	}, {
		name: "nothing at all",
		err:  "no answer from the old owner",
	}} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AnalyzeFailover(tt.probes, macA, macB)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("AnalyzeFailover = %+v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.From, tt.want.To = macA.String(), macB.String()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AnalyzeFailover (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnanswered(t *testing.T) {
	probes := []Probe{
		probe(0, answer(5, macA)),                    // answered in 0.5ms
		probe(100, answer(140, macA)),                // answered in 4ms
		probe(200, answer(260, macA)),                // answered, but in 6ms
		probe(300, announce(301, macB)),              // only an announcement
		{Sent: at(400), Err: fmt.Errorf("not sent")}, // never sent
		probe(500), // silence
		probe(600, announce(601, macB), answer(602, macB)),
	}
	for _, tt := range []struct {
		within time.Duration
		want   int
	}{
		{time.Millisecond, 5},
		{5 * time.Millisecond, 4},
		{10 * time.Millisecond, 3},
	} {
		if got := Unanswered(probes, tt.within); got != tt.want {
			t.Errorf("Unanswered(within %s) = %d, want %d", tt.within, got, tt.want)
		}
	}
	if got := Unanswered(nil, time.Second); got != 0 {
		t.Errorf("Unanswered(nil) = %d", got)
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // descending: Percentiles must sort
	}
	two := ms(append(hundred, 1000, 2000)...)
	for _, tt := range []struct {
		name              string
		in                []time.Duration
		p50, p99, highest time.Duration
	}{
		{"none", nil, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"two", ms(9, 3), 3 * time.Millisecond, 9 * time.Millisecond, 9 * time.Millisecond},
		{"1 to 100", ms(hundred...), 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
		{"1 to 100 and two outliers", two, 51 * time.Millisecond, 1000 * time.Millisecond, 2000 * time.Millisecond},
	} {
		before := fmt.Sprint(tt.in)
		p50, p99, highest := Percentiles(tt.in)
		if p50 != tt.p50 || p99 != tt.p99 || highest != tt.highest {
			t.Errorf("%s: Percentiles = %s, %s, %s; want %s, %s, %s", tt.name, p50, p99, highest, tt.p50, tt.p99, tt.highest)
		}
		if fmt.Sprint(tt.in) != before {
			t.Errorf("%s: Percentiles reordered its input", tt.name)
		}
	}
}

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
	link, err := h.LinkByName(ifaceInside)
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

func startProbe(t *testing.T, p Plan, target netip.Addr) *Prober {
	t.Helper()
	pr, err := StartProbe(context.Background(), p, p.Client, target, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Stop() })
	return pr
}

// answers counts the solicited answers from mac in probes.
func answers(probes []Probe, mac net.HardwareAddr) int {
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
func proberState(pr *Prober) string {
	probes := pr.Probes()
	var last error
	if len(probes) > 0 {
		last = probes[len(probes)-1].Err
	}
	return fmt.Sprintf("%d probes, last send error %v, reader error %v", len(probes), last, pr.Err())
}

func nodeMAC(t *testing.T, p Plan, node string) net.HardwareAddr {
	t.Helper()
	mac, err := NodeMAC(p, node)
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
		netip.PrefixFrom(L2PoolNet.Addr().Next().Next(), 32),   // 203.0.113.66
		netip.PrefixFrom(L2PoolNet6.Addr().Next().Next(), 128), // 2001:db8:ff64::2
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
			f, err := AnalyzeFailover(rec, mac1, mac2)
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
			if back, err := AnalyzeFailover(rec, mac2, mac1); err == nil {
				t.Errorf("node1 answered after node2 took over: %+v", back)
			}
			t.Logf("%d probes, gap %s, %d unanswered in it, %d unanswered within 5ms overall",
				len(rec), f.Gap, f.Unanswered, Unanswered(rec, 5*time.Millisecond))
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
	var probers []*Prober
	for _, a := range node1.Addrs() {
		probers = append(probers, startProbe(t, p, a.Addr()))
	}
	answeredSince := func(pr *Prober, from int) func() (bool, string) {
		return func() (bool, string) {
			probes := pr.Probes()
			n := answers(probes[min(from, len(probes)):], mac1)
			return n > 0, fmt.Sprintf("%d answers from node1; %s", n, proberState(pr))
		}
	}
	for _, pr := range probers {
		testutil.Eventually(t, "node1 to answer "+pr.target.String(), answeredSince(pr, 0))
	}

	if err := LinkDown(p, node1.Name); err != nil {
		t.Fatal(err)
	}
	h, err := handle(node1.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName(ifaceInside)
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
		if probes := pr.Probes()[from:]; Unanswered(probes, time.Second) != len(probes) {
			t.Errorf("%s: node1 answered after its cable was pulled", pr.target)
		}
	}
	for _, a := range node1.Addrs() {
		cmd := exec.Command("ip", "netns", "exec", node2.NetNS, "ping", "-c1", "-W1", a.Addr().String())
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("node2 reached node1 at %s with the cable pulled:\n%s", a.Addr(), out)
		}
	}

	if err := LinkUp(p, node1.Name); err != nil {
		t.Fatal(err)
	}
	for _, pr := range probers {
		testutil.Eventually(t, "node1 to answer "+pr.target.String()+" again", answeredSince(pr, len(pr.Probes())))
	}
	for _, a := range node1.Addrs() {
		ping(t, node2.NetNS, a.Addr().String())
	}
}

func TestStartProbeRefuses(t *testing.T) {
	p, err := NewPlan("ilb", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		host   Host
		target string
		want   string
	}{
		{p.Remote, "203.0.113.66", "no leg on the LAN"},
		{p.Client, "ff02::1", "not a unicast address"},
		{p.Client, "fe80::1%eth0", "not a unicast address"},
	} {
		if _, err := StartProbe(ctx, p, tt.host, netip.MustParseAddr(tt.target), 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("StartProbe from %s for %s = %v, want an error containing %q", tt.host.NetNS, tt.target, err, tt.want)
		}
	}
	if _, err := StartProbe(ctx, p, p.Client, netip.Addr{}, 0); err == nil {
		t.Error("StartProbe of no address succeeded")
	}
}
