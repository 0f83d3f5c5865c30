package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// fakeForwarder stands in for the dataplane, which has tests of its own
// against the kernel; it keeps what it was last given and how often.
type fakeForwarder struct {
	mu   sync.Mutex
	fes  []dataplane.Frontend
	sets int
}

func (f *fakeForwarder) Set(fes []dataplane.Frontend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fes, f.sets = fes, f.sets+1
}

func expectFrontends(t *testing.T, f *fakeForwarder, want []dataplane.Frontend) {
	t.Helper()
	testutil.Eventually(t, "the frontends", func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		d := cmp.Diff(want, f.fes, cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}), cmpopts.EquateEmpty())
		return d == "", "(-want +got)\n" + d
	})
}

// TestForwarding: the speaker gives its dataplane every port of its
// Services' addresses with the ready endpoints from the EndpointSlices
// (the remote ones masqueraded), the affinity timeout, and follows
// readiness and deletion.
func TestForwarding(t *testing.T) {
	c := testenv.Get(t).Client
	ctx := context.Background()
	create(t, node("fwd-a", nil),
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "fwd"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.176/28"}}})
	ns := namespace(t, "fwd")
	svc := lbService(t, ns, "web", false, "203.0.113.177")
	svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: new(int32(60))}}
	if err := c.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	f := cluster(t, &members{fwd: true}, nil, "fwd-a")["fwd-a"].fwd

	lb := netip.MustParseAddr("203.0.113.177")
	// No endpoints yet: the port is there, and refused.
	expectFrontends(t, f, []dataplane.Frontend{{Addr: lb, Protocol: dataplane.TCP, Port: 80, Affinity: time.Minute}})

	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new(""), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"203.0.113.20"}, NodeName: new("elsewhere")},
			{Addresses: []string{"203.0.113.10"}, NodeName: new("fwd-a")},
			{Addresses: []string{"203.0.113.30"}, NodeName: new("fwd-a"), Conditions: discoveryv1.EndpointConditions{Ready: new(false)}},
		},
	})
	local := dataplane.Backend{AddrPort: netip.MustParseAddrPort("203.0.113.10:8080")}
	remote := dataplane.Backend{AddrPort: netip.MustParseAddrPort("203.0.113.20:8080"), Masquerade: true}
	expectFrontends(t, f, []dataplane.Frontend{{Addr: lb, Protocol: dataplane.TCP, Port: 80, Affinity: time.Minute, Backends: []dataplane.Backend{local, remote}}})

	// The remote endpoint turns unready.
	var slice discoveryv1.EndpointSlice
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-1"}, &slice); err != nil {
		t.Fatal(err)
	}
	slice.Endpoints[0].Conditions.Ready = new(false)
	if err := c.Update(ctx, &slice); err != nil {
		t.Fatal(err)
	}
	expectFrontends(t, f, []dataplane.Frontend{{Addr: lb, Protocol: dataplane.TCP, Port: 80, Affinity: time.Minute, Backends: []dataplane.Backend{local}}})

	// A change that does not touch forwarding (a label) gives the
	// dataplane nothing new.
	f.mu.Lock()
	before := f.sets
	f.mu.Unlock()
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, svc); err != nil {
		t.Fatal(err)
	}
	svc.Labels = map[string]string{"touched": "yes"}
	if err := c.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	expectFrontends(t, f, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sets != before+1 {
		t.Errorf("the dataplane was given %d new states for a label change and a deletion, want 1", f.sets-before)
	}
}

// TestForwardingFirstPlanEmpty: with nothing to forward, the dataplane is
// still given the empty plan, which replaces what an earlier run left.
func TestForwardingFirstPlanEmpty(t *testing.T) {
	create(t, node("fwd-b", nil))
	f := cluster(t, &members{fwd: true}, nil, "fwd-b")["fwd-b"].fwd
	testutil.Eventually(t, "a first, empty plan", func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.sets == 1 && f.fes == nil, fmt.Sprintf("%d plans, last %v", f.sets, f.fes)
	})
}
