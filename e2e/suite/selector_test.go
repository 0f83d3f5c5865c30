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
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestServiceSelector: with a serviceSelector on the lab's advertisements
// (tier=web), the FRR router learns the address of a tier=web Service from
// every node and none of a tier=db Service, the client's ARP requests for
// a tier=db Service's layer 2 address go unanswered while those for a
// tier=web one are answered, and relabelling a Service announces or
// withdraws its address.
func TestServiceSelector(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	web := &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"tier": "web"}}
	// The example's advertisements, limited to tier=web Services.
	for _, obj := range []client.Object{&v1alpha1.L2Advertisement{}, &v1alpha1.BGPAdvertisement{}} {
		name := "lab-l2"
		if _, ok := obj.(*v1alpha1.BGPAdvertisement); ok {
			name = "lab-bgp"
		}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
			t.Fatal(err)
		}
		switch o := obj.(type) {
		case *v1alpha1.L2Advertisement:
			o.Spec.ServiceSelector = web
		case *v1alpha1.BGPAdvertisement:
			o.Spec.ServiceSelector = web
		}
		if err := c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	var all []netip.Addr
	for _, n := range l.Plan.Nodes {
		all = append(all, n.Addr.Addr())
	}
	createPods(t, c, "sel", 3)
	service := func(name, tier string, addr netip.Addr) *corev1.Service {
		return lbService(t, c, name, addr, func(s *corev1.Service) {
			s.Labels = map[string]string{"tier": tier}
			s.Spec.Selector = map[string]string{"app": "sel"}
		})
	}
	relabel := func(svc *corev1.Service, tier string) {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			t.Fatal(err)
		}
		svc.Labels = map[string]string{"tier": tier}
		if err := c.Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("BGP", func(t *testing.T) {
		webAddr, dbAddr := lab.PoolAddr(lab.BGPPoolNet, 110), lab.PoolAddr(lab.BGPPoolNet, 111)
		service("sel-bgp-web", "web", webAddr)
		db := service("sel-bgp-db", "db", dbAddr)
		expectPaths(t, l, c, netip.PrefixFrom(webAddr, 32), all...)
		// Once the router has the tier=web route, every speaker has
		// planned both Services: the tier=db one has no path.
		expectPaths(t, l, c, netip.PrefixFrom(dbAddr, 32))
		relabel(db, "web")
		expectPaths(t, l, c, netip.PrefixFrom(dbAddr, 32), all...)
		relabel(db, "db")
		expectPaths(t, l, c, netip.PrefixFrom(dbAddr, 32))
		expectPaths(t, l, c, netip.PrefixFrom(webAddr, 32), all...)
	})

	t.Run("layer 2", func(t *testing.T) {
		webAddr, dbAddr := lab.PoolAddr(lab.L2PoolNet, 80), lab.PoolAddr(lab.L2PoolNet, 81)
		service("sel-l2-web", "web", webAddr)
		db := service("sel-l2-db", "db", dbAddr)
		owner, err := measure.Owner(ctx, l, webAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (tier=web) is answered by %s", webAddr, owner)
		// The tier=db address: no NodeAnnouncement lists it, and 30 ARP
		// requests from the client get no answer.
		if by, err := announcedBy(c, dbAddr); err != nil || len(by) > 0 {
			t.Errorf("%s (tier=db) announced by %v (%v), want nobody", dbAddr, by, err)
		}
		pr, err := traffic.StartProbe(ctx, l.Plan, l.Plan.Client, dbAddr, 0)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "30 ARP requests for "+dbAddr.String(), func() (bool, string) {
			n := len(pr.Probes())
			return n >= 30, fmt.Sprintf("%d sent", n)
		})
		pr.Stop()
		for _, p := range pr.Probes() {
			if len(p.Replies) > 0 {
				t.Fatalf("%s (tier=db) was answered: %+v", dbAddr, p.Replies)
			}
		}
		relabel(db, "web")
		if owner, err := measure.Owner(ctx, l, dbAddr); err != nil {
			t.Fatalf("after relabelling it tier=web: %v", err)
		} else {
			t.Logf("relabelled tier=web, %s is answered by %s", dbAddr, owner)
		}
	})
}
