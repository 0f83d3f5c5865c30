package inspect

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// TestExplain: each case changes the tests' cluster, explains
// default/web and checks who announces it and what the first thing to
// check says (nothing, when want is empty).
func TestExplain(t *testing.T) {
	l2Svc := func(s *Snapshot) {
		s.Services = []corev1.Service{service("web", allocated(`203.0.113.70 from IPPool "l2"`), "203.0.113.70")}
		s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", true, "n1", "n2")}
	}
	bgpSvc := func(s *Snapshot) {
		s.Services = []corev1.Service{service("web", allocated(`203.0.113.100 from IPPool "bgp"`), "203.0.113.100")}
		s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", true, "n1", "n2")}
	}
	for _, tc := range []struct {
		name   string
		setup  func(*Snapshot)
		l2     []string // nodes answering
		bgp    []string // nodes advertising
		expect []string // BGPExpected, when checked
		want   []string // substrings of Next[0]; nil: Next empty
	}{
		{
			name: "pending: pool exhausted",
			setup: func(s *Snapshot) {
				s.Services = []corev1.Service{service("web", &metav1.Condition{Status: metav1.ConditionFalse, Reason: "PoolExhausted", Message: `no IPv4 address left in IPPool "l2"`})}
			},
			want: []string{"PoolExhausted", `no IPv4 address left in IPPool "l2"`, "spec.addresses"},
		},
		{
			name: "pending: no pool allows the Service",
			setup: func(s *Snapshot) {
				s.Services = []corev1.Service{service("web", &metav1.Condition{Status: metav1.ConditionFalse, Reason: "NoMatchingPool", Message: "no IPPool with autoAssign allows Services of namespace \"default\" with these labels"})}
			},
			want: []string{"NoMatchingPool", "spec.allocateTo"},
		},
		{
			name:  "not handled by the controller",
			setup: func(s *Snapshot) { s.Services = []corev1.Service{service("web", nil)} },
			want:  []string{"has not handled it", "kubectl get pods -n ironlb-system"},
		},
		{
			name: "another class",
			setup: func(s *Snapshot) {
				svc := service("web", nil)
				class := "example.com/other"
				svc.Spec.LoadBalancerClass = &class
				s.Services = []corev1.Service{svc}
			},
			want: []string{"--lb-class=example.com/other"},
		},
		{
			name: "not a LoadBalancer",
			setup: func(s *Snapshot) {
				svc := service("web", nil)
				svc.Spec.Type = corev1.ServiceTypeClusterIP
				s.Services = []corev1.Service{svc}
			},
			want: []string{"type ClusterIP", "only Services of type LoadBalancer"},
		},
		{
			name:  "layer 2, answered",
			setup: func(s *Snapshot) { l2Svc(s); announceL2(s, "n2", "203.0.113.70", "default/web") },
			l2:    []string{"n2"},
		},
		{
			name: "layer 2, two nodes answer",
			setup: func(s *Snapshot) {
				l2Svc(s)
				announceL2(s, "n1", "203.0.113.70", "default/web")
				announceL2(s, "n2", "203.0.113.70", "default/web")
			},
			l2:   []string{"n1", "n2"},
			want: []string{"n1, n2 all answer", "handover"},
		},
		{
			name: "layer 2, every eligible speaker fenced or missing",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.NodeAnnouncements[0].Status.Fenced = "sees 1 of 3 known speakers"
				s.NodeAnnouncements[1].Status.Fenced = "sees 1 of 3 known speakers"
				s.NodeAnnouncements = s.NodeAnnouncements[:2]
			},
			want: []string{"no node answers for 203.0.113.70", "n1 is fenced: sees 1 of 3", "n3 has no speaker reporting"},
		},
		{
			name: "layer 2, advertisement selects no node",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.L2Advertisements[0].Spec.NodeSelector = &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"role": "edge"}}
			},
			want: []string{"L2Advertisement l2 selects no Node"},
		},
		{
			name: "layer 2, every selected node excluded",
			setup: func(s *Snapshot) {
				l2Svc(s)
				for i := range s.Nodes {
					s.Nodes[i].Labels = map[string]string{"node.kubernetes.io/exclude-from-external-load-balancers": ""}
				}
			},
			want: []string{"n1, n2, n3", "exclude-from-external-load-balancers"},
		},
		{
			name: "layer 2, Local without a ready endpoint",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.Services[0].Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", false, "n1")}
			},
			want: []string{"externalTrafficPolicy Local", "holds a ready endpoint"},
		},
		{
			name: "no advertisement covers the pool",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.L2Advertisements = nil
			},
			want: []string{"no L2Advertisement or BGPAdvertisement covers IPPool l2", "spec.ipPools: [l2]"},
		},
		{
			name: "address in an invalid pool",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.IPPools = append(s.IPPools, pool("late", "203.0.113.64/28"))
				s.IPPools[0].CreationTimestamp = metav1.Unix(1, 0)
				s.IPPools[2].CreationTimestamp = metav1.Unix(2, 0)
				// l2 overlaps late and is older: late is invalid, l2 holds the address.
				s.Services[0].Status.LoadBalancer.Ingress[0].IP = "203.0.113.65"
				announceL2(s, "n3", "203.0.113.65", "default/web")
			},
			l2: []string{"n3"},
		},
		{
			name: "address in no pool",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.Services[0].Status.LoadBalancer.Ingress[0].IP = "203.0.113.10"
			},
			want: []string{"203.0.113.10 is in no IPPool"},
		},
		{
			name: "BGP, advertised by every node",
			setup: func(s *Snapshot) {
				bgpSvc(s)
				for _, n := range []string{"n1", "n2", "n3"} {
					announceBGP(s, n, "203.0.113.100/32", "default/web")
				}
			},
			bgp:    []string{"n1", "n2", "n3"},
			expect: []string{"n1", "n2", "n3"},
		},
		{
			name: "BGP, one session down",
			setup: func(s *Snapshot) {
				bgpSvc(s)
				for _, n := range []string{"n1", "n2", "n3"} {
					announceBGP(s, n, "203.0.113.100/32", "default/web")
				}
				s.NodeAnnouncements[1].Status.BGPSessions = sessions("Active")
			},
			bgp:    []string{"n1", "n2", "n3"},
			expect: []string{"n1", "n2", "n3"},
			want:   []string{"node n2 advertises 203.0.113.100/32 to BGPPeer router", "is Active"},
		},
		{
			name: "BGP, a node that should advertise does not",
			setup: func(s *Snapshot) {
				bgpSvc(s)
				announceBGP(s, "n1", "203.0.113.100/32", "default/web")
				announceBGP(s, "n2", "203.0.113.100/32", "default/web")
			},
			bgp:    []string{"n1", "n2"},
			expect: []string{"n1", "n2", "n3"},
			want:   []string{"node n3 should advertise 203.0.113.100"},
		},
		{
			name: "BGP, aggregate covering the address",
			setup: func(s *Snapshot) {
				bgpSvc(s)
				agg := int32(27)
				s.BGPAdvertisements[0].Spec.AggregationLength = &agg
				for _, n := range []string{"n1", "n2", "n3"} {
					announceBGP(s, n, "203.0.113.96/27", "default/web")
				}
			},
			bgp:    []string{"n1", "n2", "n3"},
			expect: []string{"n1", "n2", "n3"},
		},
		{
			name: "BGP, no ready endpoint",
			setup: func(s *Snapshot) {
				bgpSvc(s)
				s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", false, "n1")}
			},
			expect: []string{},
			want:   []string{"no ready endpoint", "advertised only while"},
		},
		{
			name: "BGP, IPv6 address without an IPv6 peer",
			setup: func(s *Snapshot) {
				s.Services = []corev1.Service{service("web", allocated(""), "2001:db8:66::5")}
				s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", true, "n1")}
			},
			expect: []string{},
			want:   []string{"no BGPPeer with an IPv6 peerAddress"},
		},
		{
			name: "layer 2 answered, no endpoints at all",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.EndpointSlices = nil
				announceL2(s, "n2", "203.0.113.70", "default/web")
			},
			l2:   []string{"n2"},
			want: []string{"no EndpointSlice", "app=web"},
		},
		{
			name: "layer 2 answered, endpoints not ready",
			setup: func(s *Snapshot) {
				l2Svc(s)
				s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", false, "n1", "n2")}
				announceL2(s, "n2", "203.0.113.70", "default/web")
			},
			l2:   []string{"n2"},
			want: []string{"none of the Service's 2 endpoints is ready"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := cluster()
			tc.setup(s)
			e, err := Explain(s, "default", "web")
			if err != nil {
				t.Fatal(err)
			}
			var l2, bgp []string
			var expect []string
			for _, a := range e.Addresses {
				for _, o := range a.Layer2 {
					l2 = append(l2, o.Node)
				}
				for _, b := range a.BGP {
					bgp = append(bgp, b.Node)
				}
				expect = a.BGPExpected
			}
			if diff := cmp.Diff(tc.l2, l2); diff != "" {
				t.Errorf("layer 2 owners (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tc.bgp, bgp); diff != "" {
				t.Errorf("BGP advertisers (-want +got)\n%s", diff)
			}
			if tc.expect != nil {
				if diff := cmp.Diff(tc.expect, expect); diff != "" {
					t.Errorf("nodes expected to advertise (-want +got)\n%s", diff)
				}
			}
			if tc.want == nil {
				if len(e.Next) > 0 {
					t.Errorf("nothing to check expected, got %q", e.Next)
				}
				return
			}
			if len(e.Next) == 0 {
				t.Fatalf("got nothing to check, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Next[0], w) {
					t.Errorf("the first thing to check, %q, does not say %q (all: %q)", e.Next[0], w, e.Next)
				}
			}
		})
	}
}

func TestExplainNotFound(t *testing.T) {
	_, err := Explain(cluster(), "default", "web")
	if !errors.Is(err, ErrServiceNotFound) || err.Error() != "service default/web not found" {
		t.Errorf("got %v, want service default/web not found", err)
	}
}

// TestExplainText: the text names the allocation, the pool, the node and
// protocol, the endpoints and what to check.
func TestExplainText(t *testing.T) {
	s := cluster()
	s.Services = []corev1.Service{service("web", allocated(`203.0.113.70 from IPPool "l2", 2001:db8:64::7 from IPPool "l2"`), "203.0.113.70", "2001:db8:64::7")}
	s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("web", true, "n1")}
	announceL2(s, "n2", "203.0.113.70", "default/web")
	e, err := Explain(s, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteExplanation(&b, e); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Service default/web",
		"ironlb.io/IPAllocated=True, reason Allocated",
		"address 203.0.113.70 from IPPool l2 (valid: True)",
		"layer 2: node n2 answers ARP on eth0",
		"address 2001:db8:64::7 from IPPool l2",
		"announced by no node",
		"1 ready, 0 not ready",
		"no node answers for 2001:db8:64::7",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the text lacks %q:\n%s", want, b.String())
		}
	}
}
