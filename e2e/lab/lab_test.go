package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// startFullLab runs lab.Start as make lab does, and checks at the end that
// Close leaves nothing behind.
func startFullLab(t *testing.T, nodes int) (*Lab, client.Client) {
	t.Helper()
	needRoot(t)
	l, err := Start(context.Background(), Options{Name: labName(), Nodes: nodes, Dir: t.TempDir(), Bin: repoBinaries(t), Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := Leftovers(l.Plan.Name); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestLoadBalancerService(t *testing.T) {
	l, c := startFullLab(t, 3)
	ctx := context.Background()
	t.Logf("speakers: %v", l.Speakers)
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lab-l2"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(L2PoolNet.String())}}}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the default ServiceAccount", func() (bool, string) {
		var sa corev1.ServiceAccount
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, &sa)
		return err == nil, fmt.Sprint(err)
	})
	no := false
	for i := range 3 {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("demo-%d", i), Labels: map[string]string{"app": "demo"}},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "demo", Image: "none"}}}}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "demo"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "demo"},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(PodPort)}}}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Service's address from the lab's pool", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return false, err.Error()
		}
		in := svc.Status.LoadBalancer.Ingress
		if len(in) != 1 {
			return false, fmt.Sprintf("%+v", svc.Status)
		}
		ip, err := netip.ParseAddr(in[0].IP)
		return err == nil && L2PoolNet.Contains(ip), in[0].IP
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
	eventually(t, "the EndpointSlice to list the three pods", func() (bool, string) {
		r, _ := ready()
		return len(r) == 3, fmt.Sprint(r)
	})
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{ReadyAnnotation: "false"}
	if err := c.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, "demo-1 to leave the ready endpoints", func() (bool, string) {
		r, nr := ready()
		return len(r) == 2 && !slices.Contains(r, "demo-1") && slices.Contains(nr, "demo-1"), fmt.Sprintf("ready %v, not ready %v", r, nr)
	})
}
