package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// TestResolveServiceSelector: an advertisement's serviceSelector selects
// Services by their labels; unset or empty selects every Service; a
// malformed one (which only a snapshot that bypassed the schema can hold)
// leaves the advertisement out and names the field.
func TestResolveServiceSelector(t *testing.T) {
	web := &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"tier": "web"}}
	notDB := &v1alpha1.Selector{MatchExpressions: []v1alpha1.SelectorRequirement{{Key: "tier", Operator: "NotIn", Values: []v1alpha1.LabelValue{"db"}}}}
	noValues := &v1alpha1.Selector{MatchExpressions: []v1alpha1.SelectorRequirement{{Key: "tier", Operator: "In"}}}
	badKey := &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"not a key": "x"}}
	services := []labels.Set{{"tier": "web"}, {"tier": "db"}, {}}
	tests := []struct {
		name string
		sel  *v1alpha1.Selector
		// want is, per Service of services, whether it is selected; nil
		// when the advertisement must be invalid.
		want    []bool
		problem string
	}{
		{name: "unset selects every Service", sel: nil, want: []bool{true, true, true}},
		{name: "empty selects every Service", sel: &v1alpha1.Selector{}, want: []bool{true, true, true}},
		{name: "matchLabels", sel: web, want: []bool{true, false, false}},
		{name: "NotIn selects Services without the label too", sel: notDB, want: []bool{true, false, true}},
		{name: "In without values", sel: noValues, problem: "values: Invalid value"},
		{name: "a key that is no label key", sel: badKey, problem: "not a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l2a := l2("l2", "p")
			l2a.Spec.ServiceSelector = tt.sel
			bgpa := bgpAdv("bgp", func(s *v1alpha1.BGPAdvertisementSpec) { s.ServiceSelector = tt.sel })
			cfg, ps := Resolve(Snapshot{
				IPPools: []v1alpha1.IPPool{pool("p", 0, "203.0.113.0/28")}, BGPPeers: []v1alpha1.BGPPeer{peer("edge", "198.51.100.1")},
				L2Advertisements: []v1alpha1.L2Advertisement{l2a}, BGPAdvertisements: []v1alpha1.BGPAdvertisement{bgpa},
			})
			if tt.want == nil {
				got := summarize(cfg, ps)
				if d := cmp.Diff(summary{Pools: []string{"p"}, Peers: []string{"edge"}, Problems: []string{
					"L2Advertisement/l2 spec.serviceSelector", "BGPAdvertisement/bgp spec.serviceSelector"}}, got); d != "" {
					t.Fatalf("(-want +got):\n%s", d)
				}
				for _, p := range ps {
					if !strings.Contains(p.Error(), tt.problem) || !strings.Contains(p.Error(), p.Kind+` "`+p.Name+`": spec.serviceSelector`) {
						t.Errorf("problem %q does not name the object and field or lacks %q", p.Error(), tt.problem)
					}
				}
				return
			}
			if len(ps) > 0 {
				t.Fatalf("problems: %v", ps.Err())
			}
			for i, svc := range services {
				if got := cfg.L2Advertisements[0].SelectsService(svc); got != tt.want[i] {
					t.Errorf("L2Advertisement selects %v: %v, want %v", svc, got, tt.want[i])
				}
				if got := cfg.BGPAdvertisements[0].SelectsService(svc); got != tt.want[i] {
					t.Errorf("BGPAdvertisement selects %v: %v, want %v", svc, got, tt.want[i])
				}
			}
		})
	}
}
