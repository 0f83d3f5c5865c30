package suite

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestBGPBFD: with BFD on the lab's BGPPeers and at the router, BFD
// comes up on every session of both families (at the router and in the
// NodeAnnouncements); a node whose BFD packets are dropped while its TCP
// flows loses its BGP sessions and its paths, and gets them back when BFD
// passes again; a node whose cable is pulled loses its paths. The hold
// time is 3 minutes, beyond every wait of the test, so only BFD can take
// the paths away.
func TestBGPBFD(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	// Hold time 3 minutes: longer than any wait below.
	for _, peer := range lab.ExamplePeers {
		patchPeer(t, c, peer, `{"holdTime":"3m","keepaliveTime":"1m"}`)
	}
	if err := l.EnableBFD(ctx, lab.ExamplePeers...); err != nil {
		t.Fatal(err)
	}
	var all []netip.Addr
	for _, n := range l.Plan.Nodes {
		all = append(all, n.Addr.Addr())
	}
	testutil.Eventually(t, "BFD up on all six sessions in the NodeAnnouncements", func() (bool, string) {
		return bfdStates(ctx, c, "Up", "Established")
	})

	createPods(t, c, "bfd", 3)
	addr := lab.PoolAddr(lab.BGPPoolNet, 110)
	lbService(t, c, "bfd", addr, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "bfd"} })
	pfx := netip.PrefixFrom(addr, 32)
	expectPaths(t, l, c, pfx, all...)

	// BFD cut, TCP fine: the node's sessions close, its path goes.
	n1 := l.Plan.Nodes[0]
	if err := l.CutBFD(n1.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.PortHeal(n1.Name) })
	expectPaths(t, l, c, pfx, all[1:]...)
	testutil.Eventually(t, n1.Name+"'s NodeAnnouncement reporting BFD down and BGP not established", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(ctx, client.ObjectKey{Name: n1.Name}, &na); err != nil {
			return false, err.Error()
		}
		for _, s := range na.Status.BGPSessions {
			if s.Peer == "lab-router" {
				return s.BFD != "Up" && s.State != "Established", fmt.Sprintf("%+v", s)
			}
		}
		return false, fmt.Sprintf("no session with lab-router: %+v", na.Status.BGPSessions)
	})
	if err := l.PortHeal(n1.Name); err != nil {
		t.Fatal(err)
	}
	expectPaths(t, l, c, pfx, all...)

	// A pulled cable: nothing reaches the router from the node, and TCP
	// would wait out the hold time.
	n2 := l.Plan.Nodes[1]
	if err := lab.LinkDown(l.Plan, n2.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.LinkUp(l.Plan, n2.Name) })
	expectPaths(t, l, c, pfx, all[0], all[2])
	if err := lab.LinkUp(l.Plan, n2.Name); err != nil {
		t.Fatal(err)
	}
	expectPaths(t, l, c, pfx, all...)
}

// bfdStates says whether every BGP session in every NodeAnnouncement
// has BFD state bfd and BGP state bgp, and otherwise what they have.
func bfdStates(ctx context.Context, c client.Client, bfd, bgp string) (bool, string) {
	var list v1alpha1.NodeAnnouncementList
	if err := c.List(ctx, &list); err != nil {
		return false, err.Error()
	}
	ok, n := true, 0
	var seen []string
	for _, na := range list.Items {
		for _, s := range na.Status.BGPSessions {
			n++
			seen = append(seen, fmt.Sprintf("%s:%s=%s/BFD %s", na.Name, s.Peer, s.State, s.BFD))
			ok = ok && s.BFD == bfd && s.State == bgp
		}
	}
	return ok && n > 0, fmt.Sprint(seen)
}
