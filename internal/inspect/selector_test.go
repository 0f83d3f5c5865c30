package inspect

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// TestExplainServiceSelector: explain says when the advertisements of
// the Service's pool leave it out by their serviceSelector, and whether
// its address is announced anyway for a Service sharing it.
func TestExplainServiceSelector(t *testing.T) {
	web := &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"tier": "web"}}
	for _, tc := range []struct {
		name  string
		setup func(*Snapshot)
		want  []string // substrings of Next[0]
	}{{
		name: "layer 2: not selected",
		setup: func(s *Snapshot) {
			s.L2Advertisements[0].Spec.ServiceSelector = web
			s.Services = []corev1.Service{service("db", allocated(`203.0.113.70 from IPPool "l2"`), "203.0.113.70")}
			s.Services[0].Labels = map[string]string{"tier": "db"}
			s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("db", true, "n1")}
		},
		want: []string{"L2Advertisement l2 (spec.serviceSelector tier=web)", "labels tier=db", "none of them announces 203.0.113.70"},
	}, {
		name: "BGP: not selected, but a Service sharing the address is",
		setup: func(s *Snapshot) {
			s.BGPAdvertisements[0].Spec.ServiceSelector = web
			s.Services = []corev1.Service{service("db", allocated(`203.0.113.100 from IPPool "bgp"`), "203.0.113.100"),
				service("web", allocated(`203.0.113.100 from IPPool "bgp"`), "203.0.113.100")}
			s.Services[1].Labels = map[string]string{"tier": "web"}
			s.EndpointSlices = []discoveryv1.EndpointSlice{endpoints("db", true, "n1"), endpoints("web", true, "n1")}
			for _, n := range []string{"n1", "n2", "n3"} {
				announceBGP(s, n, "203.0.113.100/32", "default/web")
			}
		},
		want: []string{"BGPAdvertisement bgp (spec.serviceSelector tier=web)", "which has no labels", "announced anyway for default/web"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := cluster()
			tc.setup(s)
			e, err := Explain(s, "default", "db")
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Next) == 0 {
				t.Fatalf("nothing to check; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Next[0], w) {
					t.Errorf("Next[0] = %q, want it to hold %q", e.Next[0], w)
				}
			}
		})
	}
}
