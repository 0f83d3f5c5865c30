package lab

// This file builds the lab's LoadBalancer Services (LBService), the one
// shape the suite and the measurements create.

import (
	"context"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// LoadBalancerIPs is the annotation a Service asks ironlb for its
// addresses with.
const LoadBalancerIPs = "ironlb.io/loadBalancerIPs"

// LBService is a LoadBalancer Service in the default namespace, of addr's
// family only, asking for addr, with port 80 forwarded to the lab pods'
// PodPort on the pods that selector picks (nil: none, for endpoints
// written by hand). Callers change what else they need before creating
// it.
func LBService(name string, addr netip.Addr, selector map[string]string) *corev1.Service {
	fam := corev1.IPv4Protocol
	if addr.Is6() {
		fam = corev1.IPv6Protocol
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{LoadBalancerIPs: addr.String()}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{fam}, Selector: selector,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(PodPort)}},
		},
	}
}

// DefaultServiceAccount waits until the default namespace has its
// ServiceAccount, which creating a Pod needs.
func DefaultServiceAccount(ctx context.Context, cs kubernetes.Interface) error {
	return (Poll{Every: 100 * time.Millisecond}).Until(ctx, "the default ServiceAccount", func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, Why(err, "")
	})
}
