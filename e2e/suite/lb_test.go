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
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestLoadBalancerService: on a three-node lab, a LoadBalancer Service gets
// an address from the lab's pool, its EndpointSlice lists the node agent's
// pods, and a pod made unready leaves its ready endpoints.
func TestLoadBalancerService(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	t.Logf("speakers: %v", l.Speakers)
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lab-l2"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(lab.L2PoolNet.String())}}}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	createPods(t, c, "demo", 3)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "demo"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "demo"},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the Service's address from the lab's pool", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return false, err.Error()
		}
		in := svc.Status.LoadBalancer.Ingress
		if len(in) != 1 {
			return false, fmt.Sprintf("%+v", svc.Status)
		}
		ip, err := netip.ParseAddr(in[0].IP)
		return err == nil && lab.L2PoolNet.Contains(ip), in[0].IP
	})

	ready := func() (ready, notReady []string) {
		var slices discoveryv1.EndpointSliceList
		_ = c.List(ctx, &slices, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "demo"})
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ready = append(ready, e.TargetRef.Name)
				} else {
					notReady = append(notReady, e.TargetRef.Name)
				}
			}
		}
		return ready, notReady
	}
	testutil.Eventually(t, "the EndpointSlice to list the three pods", func() (bool, string) {
		r, _ := ready()
		return len(r) == 3, fmt.Sprint(r)
	})
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{lab.ReadyAnnotation: "false"}
	if err := c.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "demo-1 to leave the ready endpoints", func() (bool, string) {
		r, nr := ready()
		return len(r) == 2 && !slices.Contains(r, "demo-1") && slices.Contains(nr, "demo-1"), fmt.Sprintf("ready %v, not ready %v", r, nr)
	})
}
