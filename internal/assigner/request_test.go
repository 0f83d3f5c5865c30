package assigner

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/allocator"
)

func svcWith(mutate func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "shop", Labels: map[string]string{"app": "shop"}},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}},
			Selector:   map[string]string{"app": "shop", "tier": "front"},
		},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func TestHandles(t *testing.T) {
	other, ours := "example.com/other", "ironlb.io/lb"
	tests := []struct {
		name  string
		class Class
		svc   *corev1.Service
		want  bool
	}{
		{"no class", Class{Name: ours}, svcWith(nil), true},
		{"no class, class required", Class{Name: ours, Require: true}, svcWith(nil), false},
		{"our class", Class{Name: ours, Require: true}, svcWith(func(s *corev1.Service) { s.Spec.LoadBalancerClass = &ours }), true},
		{"another class", Class{Name: ours}, svcWith(func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }), false},
		{"not a LoadBalancer", Class{Name: ours}, svcWith(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }), false},
	}
	for _, tt := range tests {
		if got := tt.class.Handles(tt.svc); got != tt.want {
			t.Errorf("%s: Handles = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRequestFor(t *testing.T) {
	dual := corev1.IPFamilyPolicyRequireDualStack
	tests := []struct {
		name string
		svc  *corev1.Service
		// check compares the parts of the request the case is about.
		want    func(*allocator.Request)
		wantErr string
	}{
		{name: "plain", svc: svcWith(nil), want: func(r *allocator.Request) {}},
		{name: "ironlb annotations", svc: svcWith(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "203.0.113.10, 2001:db8::10", "ironlb.io/ip-pool": "gold", "ironlb.io/allow-shared-ip": "k"}
		}), want: func(r *allocator.Request) {
			r.IPs = []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::10")}
			r.Pool, r.SharingKey = "gold", "k"
		}},
		{name: "metallb.io aliases", svc: svcWith(func(s *corev1.Service) {
			s.Annotations = map[string]string{"metallb.io/loadBalancerIPs": "203.0.113.10", "metallb.io/address-pool": "gold", "metallb.io/allow-shared-ip": "k"}
		}), want: func(r *allocator.Request) {
			r.IPs = []netip.Addr{netip.MustParseAddr("203.0.113.10")}
			r.Pool, r.SharingKey = "gold", "k"
		}},
		{name: "metallb.universe.tf aliases agreeing with ours", svc: svcWith(func(s *corev1.Service) {
			s.Annotations = map[string]string{"metallb.universe.tf/address-pool": "gold", "ironlb.io/ip-pool": "gold", "metallb.universe.tf/allow-shared-ip": "k"}
		}), want: func(r *allocator.Request) { r.Pool, r.SharingKey = "gold", "k" }},
		{name: "deprecated spec.loadBalancerIP", svc: svcWith(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "203.0.113.7" }), want: func(r *allocator.Request) {
			r.IPs = []netip.Addr{netip.MustParseAddr("203.0.113.7")}
		}},
		{name: "dual-stack, Local, status", svc: svcWith(func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			s.Spec.IPFamilyPolicy = &dual
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "2001:db8::5"}, {Hostname: "lb.example"}}
		}), want: func(r *allocator.Request) {
			r.Families = []allocator.Family{allocator.IPv6, allocator.IPv4}
			r.Policy = allocator.RequireDualStack
			r.Local = true
			r.Current = []netip.Addr{netip.MustParseAddr("2001:db8::5")}
		}},

		{name: "malformed address", svc: svcWith(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "203.0.113.300"}
		}),
			wantErr: `annotation ironlb.io/loadBalancerIPs: "203.0.113.300" is not an IP address`},
		{name: "two of one family", svc: svcWith(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "203.0.113.1,203.0.113.2"}
		}),
			wantErr: "more than one IPv4 address"},
		{name: "aliases disagree", svc: svcWith(func(s *corev1.Service) {
			s.Annotations = map[string]string{"ironlb.io/ip-pool": "gold", "metallb.io/address-pool": "silver"}
		}), wantErr: `annotations ironlb.io/ip-pool ("gold") and metallb.io/address-pool ("silver") disagree`},
		{name: "empty annotation", svc: svcWith(func(s *corev1.Service) { s.Annotations = map[string]string{"ironlb.io/allow-shared-ip": " "} }),
			wantErr: "annotation ironlb.io/allow-shared-ip is empty"},
		{name: "spec and annotation disagree", svc: svcWith(func(s *corev1.Service) {
			s.Spec.LoadBalancerIP = "203.0.113.7"
			s.Annotations = map[string]string{"ironlb.io/loadBalancerIPs": "203.0.113.8"}
		}), wantErr: "spec.loadBalancerIP (203.0.113.7) and annotation ironlb.io/loadBalancerIPs (203.0.113.8) disagree"},
		{name: "zone", svc: svcWith(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "fe80::1%eth0" }), wantErr: "spec.loadBalancerIP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestFor(tt.svc, nil)
			if tt.wantErr != "" {
				if err == nil || err.Reason != allocator.ReasonInvalidRequest || !strings.Contains(err.Message, tt.wantErr) {
					t.Fatalf("error = %v, want InvalidRequest containing %q", err, tt.wantErr)
				}
				if !got.KeepOnly || got.Key != "web/shop" {
					t.Errorf("an invalid request must keep what the Service holds: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := allocator.Request{
				Key: "web/shop", Namespace: "web", ServiceLabels: map[string]string{"app": "shop"},
				Families: []allocator.Family{allocator.IPv4}, Ports: []allocator.Port{{Protocol: "TCP", Port: 80}},
				Selector: "app=shop,tier=front",
			}
			tt.want(&want)
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}
