package suite

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestLayer2Spread proves that the addresses of one pool spread over the
// nodes: each of 18 addresses is answered, as the client's ARP and the
// NodeAnnouncements see it, by the node election.Winner ranks first under
// ClaimV2, and every node answers for some. It then proves that a crash
// moves only the crashed node's addresses, each to the next node in its
// ranking: every other address keeps its owner, and the client hears no
// one else for it meanwhile.
func TestLayer2Spread(t *testing.T) {
	l, c := startLab(t, 3)
	applyExample(t, l)
	addrs := spreadServices(t, c)
	probers := startProbers(t, l, addrs)
	nodes := nodeNames(l.Plan)

	want := winners(election.ClaimV2, addrs, nodes)
	waitOwners(t, l, c, probers, marks(probers), want, nodes)
	counts := ownedCounts(want)
	t.Logf("owners of %d addresses under ClaimV2: %s", len(addrs), perNode(want, nodes))
	for _, n := range nodes {
		if counts[n] == 0 {
			t.Errorf("%s owns none of the %d addresses: %v", n, len(addrs), want)
		}
	}

	victim := nodes[0]
	for _, n := range nodes {
		if counts[n] > counts[victim] {
			victim = n
		}
	}
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == victim })
	t0, since := time.Now(), marks(probers)
	if err := l.KillSpeaker(victim); err != nil {
		t.Fatal(err)
	}
	// Exactly the victim's addresses move, each to the next in its
	// ranking; every other one keeps its owner.
	after := map[netip.Addr]string{}
	for _, a := range addrs {
		after[a] = want[a]
		if want[a] == victim {
			after[a] = election.Winner(election.ClaimV2, a, rest)
		}
	}
	waitOwners(t, l, c, probers, since, after, rest)
	t.Logf("%s killed: its %d addresses moved; owners now %s", victim, counts[victim], perNode(after, rest))
	for _, a := range addrs {
		if want[a] != victim {
			reportFaults(t, l, "kill "+victim, a, probers[a].ProbesSince(since[a]), t0, want[a])
		}
	}
}

// TestLayer2MixedClaimVersions proves that a rolling upgrade from
// speakers that know only ClaimV1 never gives an address two owners
// because of the claim: the lab starts old speakers (--claim-version=1),
// then kills and restarts them one by one as new ones. While any old
// speaker is alive every speaker ranks with ClaimV1; when the last old one
// is gone the new ones switch to ClaimV2, break before make. For every
// address no restarted node owns before or after a step, no probe during
// the step gets answers from two nodes, and every answer names its owner
// (the old one, then for an address the switch moves, the new one).
// Handoff and leave-grace are off, so two answerers could come from
// nothing but a disagreement on the ranking.
func TestLayer2MixedClaimVersions(t *testing.T) {
	quick := []string{"--handoff=0", "--leave-grace=0"}
	l, c := startLab(t, 3, append([]string{"--claim-version=1"}, quick...)...)
	applyExample(t, l)
	addrs := spreadServices(t, c)
	probers := startProbers(t, l, addrs)
	nodes := nodeNames(l.Plan)

	version := map[string]election.ClaimVersion{}
	for _, n := range nodes {
		version[n] = election.ClaimV1
	}
	// agreed is the version speakers rank with: ClaimV1 while an old
	// speaker lives.
	agreed := func(live []string) election.ClaimVersion {
		if slices.ContainsFunc(live, func(n string) bool { return version[n] == election.ClaimV1 }) {
			return election.ClaimV1
		}
		return election.ClaimV2
	}
	owners := winners(election.ClaimV1, addrs, nodes)
	waitOwners(t, l, c, probers, marks(probers), owners, nodes)
	t.Logf("step 0, all at ClaimV1: owners %s", perNode(owners, nodes))

	for i, r := range slices.Backward(nodes) {
		step := fmt.Sprintf("step %d (%s killed, restarted at ClaimV2)", len(nodes)-i, r)
		t0, since := time.Now(), marks(probers)
		if err := l.KillSpeaker(r); err != nil {
			t.Fatal(err)
		}
		// The others notice the death (their NodeAnnouncements count
		// one member less) and take over r's addresses; when r was the
		// last old speaker, they switch to ClaimV2 too.
		live := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == r })
		waitOwners(t, l, c, probers, since, winners(agreed(live), addrs, live), live)
		version[r] = election.ClaimV2
		if err := l.StartSpeaker(r, append([]string{"--claim-version=2"}, quick...)...); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the speaker of "+r+" to be ready", func() (bool, string) {
			err := l.SpeakerReady(r)
			return err == nil, fmt.Sprint(err)
		})
		after := winners(agreed(nodes), addrs, nodes)
		waitOwners(t, l, c, probers, marks(probers), after, nodes)

		var bystanders, moved int
		for _, a := range addrs {
			if owners[a] == r || after[a] == r {
				continue // r's own addresses overlap as r joins; another issue
			}
			bystanders++
			if owners[a] != after[a] {
				moved++
			}
			reportFaults(t, l, step, a, probers[a].ProbesSince(since[a]), t0, owners[a], after[a])
		}
		t.Logf("%s: ClaimV%d, owners %s; %d bystanders checked, %d of them changed owner", step, agreed(nodes), perNode(after, nodes), bystanders, moved)
		owners = after
	}
}

// spreadServices creates 18 IPv4 LoadBalancer Services, spread-0 onwards,
// asking for 203.0.113.72 to .89 of the lab's layer 2 pool, and returns
// those addresses.
func spreadServices(t *testing.T, c client.Client) []netip.Addr {
	t.Helper()
	var addrs []netip.Addr
	for i, a := 0, lab.PoolAddr(lab.L2PoolNet, 72); i < 18; i, a = i+1, a.Next() {
		if !lab.L2PoolNet.Contains(a) {
			t.Fatalf("%s is outside the layer 2 pool %s", a, lab.L2PoolNet)
		}
		lbService(t, c, fmt.Sprintf("spread-%d", i), a, nil)
		addrs = append(addrs, a)
	}
	return addrs
}

// startProbers asks for every address from the client every 10 ms until
// the test ends.
func startProbers(t *testing.T, l *lab.Lab, addrs []netip.Addr) map[netip.Addr]*traffic.Prober {
	t.Helper()
	probers, err := traffic.StartProbes(context.Background(), l.Plan, l.Plan.Client, addrs, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pr := range probers {
			pr.Stop()
		}
	})
	return probers
}

// marks notes where each prober's record stands, to read it from there.
func marks(probers map[netip.Addr]*traffic.Prober) map[netip.Addr]int {
	out := map[netip.Addr]int{}
	for a, pr := range probers {
		out[a] = pr.Len()
	}
	return out
}

// winners maps each address to the node that ranks first for it under v
// among nodes.
func winners(v election.ClaimVersion, addrs []netip.Addr, nodes []string) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, a := range addrs {
		out[a] = election.Winner(v, a, nodes)
	}
	return out
}

// ownedCounts is how many addresses each node owns.
func ownedCounts(owners map[netip.Addr]string) map[string]int {
	out := map[string]int{}
	for _, n := range owners {
		out[n]++
	}
	return out
}

// perNode prints how many addresses each node owns, in the nodes' order.
func perNode(owners map[netip.Addr]string, nodes []string) string {
	counts := ownedCounts(owners)
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %d", nameOr(n, "nobody alone"), counts[n]))
	}
	return strings.Join(parts, ", ")
}

// waitOwners waits until, for every address, the client hears want alone
// in the probes since the mark (measure.SettledSince), and the speakers of
// live agree: each one's NodeAnnouncement counts len(live) members, and
// lists exactly the addresses want gives it. A killed speaker's NodeAnnouncement
// keeps its last status (no one else writes it), so it is not read.
func waitOwners(t *testing.T, l *lab.Lab, c client.Client, probers map[netip.Addr]*traffic.Prober, since map[netip.Addr]int, want map[netip.Addr]string, live []string) {
	t.Helper()
	addrs := slices.SortedFunc(maps.Keys(want), netip.Addr.Compare)
	testutil.Eventually(t, "every address answered by its owner alone", func() (bool, string) {
		var wrong []string
		hears := map[netip.Addr]string{}
		for _, a := range addrs {
			if err := probers[a].Err(); err != nil {
				t.Fatalf("prober of %s: %v", a, err)
			}
			hears[a] = measure.SettledSince(l, probers[a], since[a])
			if hears[a] != want[a] {
				recent := probers[a].ProbesSince(probers[a].Len() - 100)
				wrong = append(wrong, fmt.Sprintf("%s: the client hears %s, want %s alone; answers in the last second: %s", a, nameOr(hears[a], "no one node alone"), want[a], timeline(l, recent)))
			}
		}
		var list v1alpha1.NodeAnnouncementList
		if err := c.List(context.Background(), &list); err != nil {
			return false, err.Error()
		}
		by := map[netip.Addr][]string{}
		reported := 0
		for _, na := range list.Items {
			if !slices.Contains(live, na.Name) {
				continue
			}
			reported++
			if int(na.Status.Members) != len(live) {
				wrong = append(wrong, fmt.Sprintf("%s's NodeAnnouncement counts %d members, want %d", na.Name, na.Status.Members, len(live)))
			}
			for _, l2 := range na.Status.Layer2 {
				if a, err := netip.ParseAddr(l2.Address); err == nil {
					by[a] = append(by[a], na.Name)
				}
			}
		}
		if reported != len(live) {
			wrong = append(wrong, fmt.Sprintf("%d of the NodeAnnouncements of %v exist", reported, live))
		}
		for _, a := range addrs {
			if len(by[a]) != 1 || by[a][0] != want[a] {
				wrong = append(wrong, fmt.Sprintf("%s: announced by %v, want %s", a, by[a], want[a]))
			}
		}
		return len(wrong) == 0, fmt.Sprintf("%d wrong (the client hears %s):\n%s", len(wrong), perNode(hears, append(slices.Clone(live), "")), strings.Join(wrong, "\n"))
	})
}

// reportFaults fails the test for each probe in ps, the record of one
// address since t0, whose answers (solicited or gratuitous) name two
// nodes, or a node not in owners, or an owner that an owner later in the
// list had already replaced; it prints when and who, and the whole
// timeline.
func reportFaults(t *testing.T, l *lab.Lab, step string, a netip.Addr, ps []traffic.Probe, t0 time.Time, owners ...string) {
	t.Helper()
	owners = slices.Compact(owners)
	var faults []string
	cur := 0 // index in owners of the latest owner heard
	for _, p := range ps {
		var macs []string
		for _, r := range p.Replies {
			m := r.MAC.String()
			if !slices.Contains(macs, m) {
				macs = append(macs, m)
			}
			node := l.NodeOfMAC(r.MAC)
			switch i := slices.Index(owners, node); {
			case i < 0:
				faults = append(faults, fmt.Sprintf("+%s: %s (%s) answered, not %s", r.At.Sub(t0).Round(time.Millisecond), nameOr(node, "an unknown node"), m, strings.Join(owners, " then ")))
			case i < cur:
				faults = append(faults, fmt.Sprintf("+%s: %s (%s) answered again after %s took over", r.At.Sub(t0).Round(time.Millisecond), node, m, owners[cur]))
			default:
				cur = i
			}
		}
		if len(macs) > 1 {
			faults = append(faults, fmt.Sprintf("+%s: one probe answered by %s", p.Sent.Sub(t0).Round(time.Millisecond), answerers(l, p, true)))
		}
	}
	if len(faults) == 0 {
		return
	}
	if len(faults) > 10 {
		faults = append(faults[:10], fmt.Sprintf("and %d more", len(faults)-10))
	}
	t.Errorf("%s: %s, owned by %s, answered wrongly:\n\t%s\n\ttimeline: %s", step, a, strings.Join(owners, " then "), strings.Join(faults, "\n\t"), timeline(l, ps))
}

func nameOr(node, none string) string {
	if node == "" {
		return none
	}
	return node
}

// answerers names the nodes that answered a probe, with their MACs when
// withMAC.
func answerers(l *lab.Lab, p traffic.Probe, withMAC bool) string {
	var who []string
	for _, r := range p.Replies {
		w := nameOr(l.NodeOfMAC(r.MAC), "unknown")
		if withMAC || w == "unknown" {
			w += " (" + r.MAC.String() + ")"
		}
		if !slices.Contains(who, w) {
			who = append(who, w)
		}
	}
	slices.Sort(who)
	if len(who) == 0 {
		return "-"
	}
	return strings.Join(who, " + ")
}

// timeline summarises who answered each probe, solicited or not, as runs:
// "node3 x152, - x200, node2 x300".
func timeline(l *lab.Lab, ps []traffic.Probe) string {
	var runs []string
	prev, n := "", 0
	for i, p := range ps {
		cur := answerers(l, p, false)
		if i > 0 && cur != prev {
			runs = append(runs, fmt.Sprintf("%s x%d", prev, n))
			n = 0
		}
		prev = cur
		n++
	}
	if n > 0 {
		runs = append(runs, fmt.Sprintf("%s x%d", prev, n))
	}
	return strings.Join(runs, ", ")
}
