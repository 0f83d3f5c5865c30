package assigner_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// nodeWithAddresses creates a Node with these status addresses (type,
// address, type, address...) and deletes it when the test ends.
func nodeWithAddresses(t *testing.T, name string, kv ...string) *corev1.Node {
	t.Helper()
	c := testenv.Get(t).Client
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
	for i := 0; i < len(kv); i += 2 {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeAddressType(kv[i]), Address: kv[i+1]})
	}
	if err := c.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitPoolCondition waits until the pool's Valid condition has the status and
// reason and its message holds every substring; it returns the pool.
func waitPoolCondition(t *testing.T, name string, status metav1.ConditionStatus, reason string, contains ...string) *v1alpha1.IPPool {
	t.Helper()
	var p v1alpha1.IPPool
	testutil.Eventually(t, fmt.Sprintf("IPPool %s to be Valid=%s %s", name, status, reason), func() (bool, string) {
		if err := testenv.Get(t).Client.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, assigner.ConditionValid)
		if c == nil {
			return false, "no Valid condition"
		}
		ok := c.Status == status && c.Reason == reason && c.ObservedGeneration == p.Generation
		for _, s := range contains {
			ok = ok && strings.Contains(c.Message, s)
		}
		return ok, fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
	})
	return &p
}

// fillPool creates Services in ns until one finds the pool exhausted, and
// returns the addresses the others got.
func fillPool(t *testing.T, ns string, n int) []string {
	t.Helper()
	var got []string
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		create(t, lbService(ns, name))
		if i == n-1 {
			waitCondition(t, ns, name, "PoolExhausted")
			break
		}
		svc := waitCondition(t, ns, name, assigner.ReasonAllocated)
		got = append(got, ingressIPs(svc)...)
	}
	return got
}

// TestNodeAddressesNeverAssigned: a pool holding two addresses of a Node is
// reported Valid=False, and handing out every other address of it never
// gives a Service the Node's; asking for it by name is refused.
func TestNodeAddressesNeverAssigned(t *testing.T) {
	nodeWithAddresses(t, "forbid-n1", "InternalIP", "198.51.100.226", "ExternalIP", "198.51.100.229", "Hostname", "forbid-n1")
	start(t, nil)
	ns := namespace(t, nil)
	p := ippool("forbid-nodes", "198.51.100.224/29")
	p.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{ns}}
	apply(t, p)

	pool := waitPoolCondition(t, p.Name, metav1.ConditionFalse, assigner.ReasonContainsNodeAddress,
		`IPPool "forbid-nodes"`, `198.51.100.226, the InternalIP of Node "forbid-n1"`, `198.51.100.229, the ExternalIP of Node "forbid-n1"`)
	if c := pool.Status.IPv4; c == nil || c.Total != 6 {
		t.Errorf("IPv4 counts %+v, want a total of 6: the Node's addresses are not available", c)
	}

	got := fillPool(t, ns, 7)
	slices.Sort(got)
	want := []string{"198.51.100.224", "198.51.100.225", "198.51.100.227", "198.51.100.228", "198.51.100.230", "198.51.100.231"}
	if !slices.Equal(got, want) {
		t.Errorf("the Services got %v, want %v", got, want)
	}

	create(t, lbService(ns, "asks", annotate("ironlb.io/loadBalancerIPs", "198.51.100.226")))
	svc := waitCondition(t, ns, "asks", "RequestedIPUnavailable")
	if c := meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated); !strings.Contains(c.Message, `the InternalIP of Node "forbid-n1"`) || len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("asking for the Node's address: %s; ingress %v", c.Message, ingressIPs(svc))
	}
}

// TestServiceCIDRNeverAssigned: the cluster's ServiceCIDR object (the test
// API server serves 198.18.0.0/16) and --service-cidrs both keep their
// addresses out of allocation.
func TestServiceCIDRNeverAssigned(t *testing.T) {
	start(t, func(o *assigner.RunOptions) {
		o.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("198.51.100.212/30")}
	})
	ns := namespace(t, nil)
	// Two addresses inside the ServiceCIDR, two outside.
	served := ippool("forbid-served-cidr", "198.18.255.254-198.19.0.1")
	served.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{ns}}
	flagged := ippool("forbid-flag-cidr", "198.51.100.208/29")
	first := int32(1)
	flagged.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{ns}, Priority: &first}
	apply(t, served, flagged)

	waitPoolCondition(t, served.Name, metav1.ConditionFalse, assigner.ReasonContainsServiceCIDR, `addresses in the Service CIDR 198.18.0.0/16 (ServiceCIDR "kubernetes")`)
	waitPoolCondition(t, flagged.Name, metav1.ConditionFalse, assigner.ReasonContainsServiceCIDR, "addresses in the Service CIDR 198.51.100.212/30 (--service-cidrs)")

	got := fillPool(t, ns, 7)
	slices.Sort(got)
	want := []string{"198.19.0.0", "198.19.0.1", "198.51.100.208", "198.51.100.209", "198.51.100.210", "198.51.100.211"}
	if !slices.Equal(got, want) {
		t.Errorf("the Services got %v, want %v", got, want)
	}
}

// TestAddressForbiddenAfterAssignment: a Node that appears with an address
// a Service already holds does not take it from the Service (an assigned
// address never moves silently); the Service's condition and a Warning
// event say so, the pool is Valid=False, and no other Service gets the
// address. When the Node goes, everything is as before.
func TestAddressForbiddenAfterAssignment(t *testing.T) {
	start(t, nil)
	ns := namespace(t, nil)
	p := ippool("forbid-later", "198.51.100.200/30")
	p.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{ns}}
	apply(t, p)
	create(t, lbService(ns, "first"))
	waitIPs(t, ns, "first", "198.51.100.200")
	waitPoolCondition(t, p.Name, metav1.ConditionTrue, "Valid")

	n := nodeWithAddresses(t, "forbid-n2", "InternalIP", "198.51.100.200")
	svc := waitCondition(t, ns, "first", assigner.ReasonAddressForbidden)
	if ips := ingressIPs(svc); !slices.Equal(ips, []string{"198.51.100.200"}) {
		t.Errorf("the Service shows %v, want it to keep 198.51.100.200", ips)
	}
	waitEvent(t, ns, "first", assigner.ReasonAddressForbidden, `198.51.100.200 is the InternalIP of Node "forbid-n2"`)
	waitPoolCondition(t, p.Name, metav1.ConditionFalse, assigner.ReasonContainsNodeAddress, `198.51.100.200, the InternalIP of Node "forbid-n2"`)

	create(t, lbService(ns, "second"))
	waitIPs(t, ns, "second", "198.51.100.201")

	if err := testenv.Get(t).Client.Delete(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "first", assigner.ReasonAllocated)
	waitIPs(t, ns, "first", "198.51.100.200")
	waitPoolCondition(t, p.Name, metav1.ConditionTrue, "Valid")
}
