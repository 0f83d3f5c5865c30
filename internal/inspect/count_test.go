package inspect

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

func TestUsageOf(t *testing.T) {
	big6 := pool("big", "2001:db8::/64", "203.0.113.0/28")
	for _, tc := range []struct {
		name   string
		counts *v1alpha1.AddressCounts
		is4    bool
		want   *Usage
	}{
		{"no status", nil, false, nil},
		{"small", &v1alpha1.AddressCounts{Total: 16, Assigned: 2, Available: 14}, true, &Usage{Assigned: "2", Available: "14", Total: "16"}},
		{"texts win", &v1alpha1.AddressCounts{Total: math.MaxInt64, Assigned: 3, Available: math.MaxInt64, TotalText: "2^64", AvailableText: "2^64-3"}, false,
			&Usage{Assigned: "3", Available: "2^64-3", Total: "2^64"}},
		{"saturated without texts: from spec.addresses", &v1alpha1.AddressCounts{Total: math.MaxInt64, Assigned: 3, Available: math.MaxInt64}, false,
			&Usage{Assigned: "3", Available: "2^64-3", Total: "2^64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := big6
			if tc.is4 {
				p.Status.IPv4 = tc.counts
			} else {
				p.Status.IPv6 = tc.counts
			}
			if diff := cmp.Diff(tc.want, usageOf(&p, tc.is4)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
