package suite

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// expectPaths waits until the router holds exactly these next hops for
// pfx, in BGP and in its kernel's forwarding table.
func expectPaths(t *testing.T, l *lab.Lab, c client.Client, pfx netip.Prefix, want ...netip.Addr) {
	t.Helper()
	slices.SortFunc(want, netip.Addr.Compare)
	testutil.Eventually(t, fmt.Sprintf("the router's paths for %s via %v", pfx, want), func() (bool, string) {
		bgp, err1 := lab.RouterPaths(l.Plan, pfx)
		fib, err2 := lab.RouterFIB(l.Plan, pfx)
		return err1 == nil && err2 == nil && slices.Equal(bgp, want) && slices.Equal(fib, want),
			fmt.Sprintf("BGP %v (%v), forwarding %v (%v); nodes advertise %v", bgp, err1, fib, err2, advertisedBy(c, pfx))
	})
}

// advertisedBy returns the nodes whose NodeAnnouncement lists pfx.
func advertisedBy(c client.Client, pfx netip.Prefix) []string {
	var list v1alpha1.NodeAnnouncementList
	if err := c.List(context.Background(), &list); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, na := range list.Items {
		for _, b := range na.Status.BGP {
			if b.Prefix == pfx.String() {
				out = append(out, na.Name)
			}
		}
	}
	return out
}

// TestBGP: every node's speaker peers with the lab's FRR router over IPv4
// and IPv6; a Service with externalTrafficPolicy Cluster is reachable
// through all three nodes (three ECMP paths, installed, for an IPv4 and an
// IPv6 address, each over its own family's sessions), one with Local only through
// the node holding its pod; a node whose speaker stops gracefully drops
// out, and comes back when it starts again; deleting a Service, or its
// last endpoint turning unready, withdraws its route everywhere.
func TestBGP(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	var all, all6 []netip.Addr
	nodeAddr := map[string]netip.Addr{}
	for _, n := range l.Plan.Nodes {
		all = append(all, n.Addr.Addr())
		all6 = append(all6, n.Addr6.Addr())
		nodeAddr[n.Name] = n.Addr.Addr()
	}

	testutil.Eventually(t, "every node's session established, in its NodeAnnouncement", func() (bool, string) {
		var list v1alpha1.NodeAnnouncementList
		if err := c.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		up := 0
		var seen []string
		for _, na := range list.Items {
			for _, s := range na.Status.BGPSessions {
				seen = append(seen, na.Name+":"+s.Peer+"="+s.State)
				if s.State == "Established" {
					up++
				}
			}
		}
		return up == 2*len(l.Plan.Nodes), fmt.Sprint(seen)
	})

	createPods(t, c, "bgp", 3)
	cluster := lab.PoolAddr(lab.BGPPoolNet, 100)
	clusterSvc := lbService(t, c, "bgp-cluster", cluster, func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "bgp"} })
	expectPaths(t, l, c, netip.PrefixFrom(cluster, 32), all...)
	// The lab's pods have no IPv6 address: the IPv6 Service's endpoint is
	// written by hand.
	cluster6 := lab.PoolAddr(lab.BGPPoolNet6, 0x100)
	lbService(t, c, "bgp-cluster6", cluster6, nil)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "bgp-cluster6-1", Labels: map[string]string{discoveryv1.LabelServiceName: "bgp-cluster6"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{lab.PoolAddr(lab.HandEndpointNet6, 1).String()}, NodeName: &l.Plan.Nodes[0].Name}},
	}
	if err := c.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	expectPaths(t, l, c, netip.PrefixFrom(cluster6, 128), all6...)

	createPods(t, c, "single", 1)
	local := lab.PoolAddr(lab.BGPPoolNet, 101)
	lbService(t, c, "bgp-local", local, func(s *corev1.Service) {
		s.Spec.Selector = map[string]string{"app": "single"}
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	var pod corev1.Pod
	testutil.Eventually(t, "the single pod bound to a node", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "single-0"}, &pod)
		return err == nil && pod.Spec.NodeName != "", fmt.Sprint(err)
	})
	expectPaths(t, l, c, netip.PrefixFrom(local, 32), nodeAddr[pod.Spec.NodeName])

	// A graceful stop withdraws that node's paths; a start brings them back.
	stopped := l.Plan.Nodes[0]
	if err := l.StopSpeaker(stopped.Name); err != nil {
		t.Fatal(err)
	}
	var rest []netip.Addr
	for _, a := range all {
		if a != stopped.Addr.Addr() {
			rest = append(rest, a)
		}
	}
	expectPaths(t, l, c, netip.PrefixFrom(cluster, 32), rest...)
	if err := l.StartSpeaker(stopped.Name); err != nil {
		t.Fatal(err)
	}
	expectPaths(t, l, c, netip.PrefixFrom(cluster, 32), all...)

	// Deleting the Service withdraws its route from every node.
	if err := c.Delete(ctx, clusterSvc); err != nil {
		t.Fatal(err)
	}
	expectPaths(t, l, c, netip.PrefixFrom(cluster, 32))
	expectPaths(t, l, c, netip.PrefixFrom(local, 32), nodeAddr[pod.Spec.NodeName])

	// The Local Service's last endpoint turns unready: withdrawn.
	if err := c.Get(ctx, client.ObjectKeyFromObject(&pod), &pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{lab.ReadyAnnotation: "false"}
	if err := c.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	expectPaths(t, l, c, netip.PrefixFrom(local, 32))
}
