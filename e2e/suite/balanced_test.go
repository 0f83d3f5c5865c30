package suite

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestLayer2Balanced proves balanced placement on real speakers: with the
// lab's layer 2 advertisement set to placement Balanced, 30 addresses on
// 3 nodes are answered 10 by each node, as the client's ARP and the
// NodeAnnouncements see it, where the hash ranking would give 11, 11 and
// 8. It then kills the speaker of node1 and checks that the survivors
// answer as election.Balanced places the addresses over them: node1's 10
// addresses move, and each other address keeps its owner unless the
// placement moves it (here one, which the limit had pushed off its first
// node and which goes back now that each node may hold 15), so at most
// ⌈K/N⌉+1 addresses move. The client never hears another node, or two
// nodes, for an address that keeps its owner; an address moved between
// two survivors may be answered by both for a moment (logged).
func TestLayer2Balanced(t *testing.T) {
	l, c := startLab(t, 3)
	applyExample(t, l)
	setPlacement(t, c, "lab-l2", v1alpha1.L2PlacementBalanced)
	addrs := balancedServices(t, c)
	// 30 addresses probed every 25 ms: 1,200 ARP requests a second, fewer
	// than the 1,800 of TestLayer2Spread's 18 every 10 ms.
	probers, err := traffic.StartProbes(context.Background(), l.Plan, l.Plan.Client, addrs, 25*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pr := range probers {
			pr.Stop()
		}
	})
	nodes := nodeNames(l.Plan)

	hash := winners(election.ClaimV3, addrs, nodes)
	want := election.Balanced(election.ClaimV3, addrs, nodes)
	t.Logf("owners of %d addresses: by hash %s; balanced %s", len(addrs), perNode(hash, nodes), perNode(want, nodes))
	if c := ownedCounts(hash); max(c["node1"], c["node2"], c["node3"]) <= election.Capacity(len(addrs), len(nodes)) {
		t.Fatalf("the hash ranking already spreads these addresses evenly (%s): the test would not tell the placements apart", perNode(hash, nodes))
	}
	for n, k := range ownedCounts(want) {
		if k != len(addrs)/len(nodes) {
			t.Errorf("balanced placement gives %s %d addresses, want %d", n, k, len(addrs)/len(nodes))
		}
	}
	waitOwners(t, l, c, probers, marks(probers), want, nodes)

	victim := "node1"
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == victim })
	after := election.Balanced(election.ClaimV3, addrs, rest)
	var moved, bystanders []netip.Addr
	for _, a := range addrs {
		if after[a] != want[a] {
			moved = append(moved, a)
			if want[a] != victim {
				bystanders = append(bystanders, a)
			}
		}
	}
	if limit := election.Capacity(len(addrs), len(nodes)) + 1; len(moved) > limit {
		t.Errorf("killing %s moves %d addresses, more than ⌈K/N⌉+1 = %d", victim, len(moved), limit)
	}
	t0, since := time.Now(), marks(probers)
	if err := l.KillSpeaker(victim); err != nil {
		t.Fatal(err)
	}
	waitOwners(t, l, c, probers, since, after, rest)
	t.Logf("%s killed: %d addresses moved, %d of them not its own %v; owners now %s", victim, len(moved), len(bystanders), bystanders, perNode(after, rest))
	for _, a := range addrs {
		switch {
		case want[a] == victim:
		case slices.Contains(bystanders, a):
			// The survivors hear of the death a few gossip rounds
			// apart: the new owner may start answering before the old
			// one stops (as when a node joins), so overlap is allowed,
			// and reported.
			both := 0
			for _, p := range probers[a].ProbesSince(since[a]) {
				if distinctMACs(p) > 1 {
					both++
				}
			}
			t.Logf("%s moved from %s to %s though neither died; probes answered by both: %d; timeline: %s", a, want[a], after[a], both, timeline(l, probers[a].ProbesSince(since[a])))
		default:
			reportFaults(t, l, "kill "+victim, a, probers[a].ProbesSince(since[a]), t0, want[a])
		}
	}
}

// distinctMACs counts the link-layer addresses that answered a probe.
func distinctMACs(p traffic.Probe) int {
	var seen []string
	for _, r := range p.Replies {
		if m := r.MAC.String(); !slices.Contains(seen, m) {
			seen = append(seen, m)
		}
	}
	return len(seen)
}

// setPlacement sets spec.placement of an L2Advertisement.
func setPlacement(t *testing.T, c client.Client, name string, p v1alpha1.L2Placement) {
	t.Helper()
	testutil.Eventually(t, "placement "+string(p)+" on L2Advertisement "+name, func() (bool, string) {
		var adv v1alpha1.L2Advertisement
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &adv); err != nil {
			return false, err.Error()
		}
		adv.Spec.Placement = p
		if err := c.Update(context.Background(), &adv); err != nil {
			return false, err.Error() // a conflict with a status write: again
		}
		return true, ""
	})
}

// balancedServices creates 30 IPv4 LoadBalancer Services, balanced-0
// onwards, asking for every address of the lab's layer 2 pool from .64
// to .95 but .67 and .69, and returns those addresses. On the lab's nodes
// the hash ranking gives them out 11, 11 and 8.
func balancedServices(t *testing.T, c client.Client) []netip.Addr {
	t.Helper()
	var addrs []netip.Addr
	for last := 64; last < 96; last++ {
		if last == 67 || last == 69 {
			continue
		}
		a := lab.PoolAddr(lab.L2PoolNet, last)
		if !lab.L2PoolNet.Contains(a) {
			t.Fatalf("%s is outside the layer 2 pool %s", a, lab.L2PoolNet)
		}
		lbService(t, c, fmt.Sprintf("balanced-%d", len(addrs)), a, nil)
		addrs = append(addrs, a)
	}
	return addrs
}
