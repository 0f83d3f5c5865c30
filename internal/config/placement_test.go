package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// TestResolvePlacement checks spec.placement of L2Advertisement: unset and
// Hash keep the hash ranking, Balanced asks for balanced placement, and
// any other value (possible from a configuration file, which no CRD schema
// checks) makes the advertisement invalid with an error naming the
// object, the field and the values allowed.
func TestResolvePlacement(t *testing.T) {
	for _, tc := range []struct {
		placement v1alpha1.L2Placement
		balanced  bool
		invalid   bool
	}{
		{placement: ""},
		{placement: v1alpha1.L2PlacementHash},
		{placement: v1alpha1.L2PlacementBalanced, balanced: true},
		{placement: "balanced", invalid: true}, // the enum is case-sensitive, as the CRD's
		{placement: "Even", invalid: true},
	} {
		t.Run(string(tc.placement), func(t *testing.T) {
			adv := l2("adv", "p")
			adv.Spec.Placement = tc.placement
			c, ps := Resolve(Snapshot{IPPools: []v1alpha1.IPPool{pool("p", 0, "203.0.113.0/28")}, L2Advertisements: []v1alpha1.L2Advertisement{adv}})
			if tc.invalid {
				if len(c.L2Advertisements) != 0 || len(ps) != 1 {
					t.Fatalf("want the advertisement rejected with one problem, got %d advertisements, problems %v", len(c.L2Advertisements), ps.Err())
				}
				p := ps[0]
				msg := p.Error()
				if p.Kind != v1alpha1.KindL2Advertisement || p.Name != "adv" || p.Field != "spec.placement" || !errors.Is(p, ErrInvalidValue) ||
					!strings.Contains(msg, "Hash or Balanced") || !strings.Contains(msg, string(tc.placement)) {
					t.Errorf("problem %q: want L2Advertisement adv, field spec.placement, the value and the allowed values", msg)
				}
				return
			}
			if len(ps) != 0 || len(c.L2Advertisements) != 1 {
				t.Fatalf("want the advertisement valid, got problems %v", ps.Err())
			}
			if got := c.L2Advertisements[0].Balanced; got != tc.balanced {
				t.Errorf("Balanced = %v, want %v", got, tc.balanced)
			}
		})
	}
}
