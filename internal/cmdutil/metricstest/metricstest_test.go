package metricstest

import (
	"strings"
	"testing"
)

func TestCheckConventions(t *testing.T) {
	const build = `ironlb_build_info{goversion="go1.26.1",revision="fedcba",version="unknown"} 1` + "\n"
	for _, tt := range []struct {
		name, body string
		problems   []string // a word of each problem expected
	}{
		{"good", "# HELP x\n" + build + `ironlb_pool_addresses{family="ipv4",pool="p",state="assigned"} 1` + "\n" + `ironlb_l2_owned_addresses{family="ipv6"} 0` + "\n", nil},
		{"no build_info", `ironlb_l2_owned_addresses{family="ipv6"} 0` + "\n", []string{"ironlb_build_info"}},
		{"build_info without a revision", `ironlb_build_info{goversion="go1.26.1",version="v1"} 1` + "\n", []string{"ironlb_build_info"}},
		{"nftables family", build + `ironlb_forwarding_objects{family="ip",object="chains"} 3` + "\n", []string{`"ip"`}},
		{"capitalised family", build + `ironlb_pool_addresses{family="IPv6",pool="p",state="assigned"} 1` + "\n", []string{`"IPv6"`}},
		{"a total beside its parts", build + `ironlb_pool_addresses{family="ipv4",pool="p",state="total"} 1` + "\n", []string{"total"}},
	} {
		got := CheckConventions(tt.body)
		if len(got) != len(tt.problems) {
			t.Errorf("%s: problems %q, want %d", tt.name, got, len(tt.problems))
			continue
		}
		for i, w := range tt.problems {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: problem %q does not mention %s", tt.name, got[i], w)
			}
		}
	}
}
