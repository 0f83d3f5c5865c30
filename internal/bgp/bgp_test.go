package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBackoff(t *testing.T) {
	const base, step, most = 5 * time.Second, time.Minute, 2 * time.Minute
	for _, c := range []struct {
		down, want time.Duration
	}{
		{0, base},
		{59 * time.Second, base},
		{time.Minute, 10 * time.Second},
		{2*time.Minute + time.Second, 20 * time.Second},
		{4 * time.Minute, 80 * time.Second},
		{5 * time.Minute, most},
		{24 * time.Hour, most},
	} {
		if got := backoff(base, step, most, c.down); got != c.want {
			t.Errorf("down for %s: retry every %s, want %s", c.down, got, c.want)
		}
	}
}

func TestDiffRoutes(t *testing.T) {
	p := netip.MustParsePrefix
	comm := Route{Communities: []uint32{1}}
	cases := []struct {
		name          string
		have, want    map[netip.Prefix]Route
		is4           bool
		put, withdraw []netip.Prefix
	}{
		{"nothing", nil, nil, true, nil, nil},
		{"new routes, sorted", nil, map[netip.Prefix]Route{p("203.0.113.20/32"): {}, p("203.0.113.10/32"): {}}, true,
			[]netip.Prefix{p("203.0.113.10/32"), p("203.0.113.20/32")}, nil},
		{"unchanged routes stay", map[netip.Prefix]Route{p("203.0.113.10/32"): comm}, map[netip.Prefix]Route{p("203.0.113.10/32"): {Communities: []uint32{1}}}, true, nil, nil},
		{"changed attributes are put again", map[netip.Prefix]Route{p("203.0.113.10/32"): {}}, map[netip.Prefix]Route{p("203.0.113.10/32"): comm}, true,
			[]netip.Prefix{p("203.0.113.10/32")}, nil},
		{"gone routes are withdrawn", map[netip.Prefix]Route{p("2001:db8:ff66::1/128"): {}, p("2001:db8:ff66::/120"): {}}, nil, false,
			nil, []netip.Prefix{p("2001:db8:ff66::/120"), p("2001:db8:ff66::1/128")}},
		{"the other family is never sent", nil, map[netip.Prefix]Route{p("203.0.113.10/32"): {}, p("2001:db8:ff66::1/128"): {}}, false,
			[]netip.Prefix{p("2001:db8:ff66::1/128")}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			put, withdraw := diffRoutes(c.have, c.want, c.is4)
			if diff := cmp.Diff(c.put, put, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("put (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(c.withdraw, withdraw, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("withdraw (-want +got)\n%s", diff)
			}
		})
	}
}
