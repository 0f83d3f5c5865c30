package bgp

import (
	"fmt"
	"net/netip"
	"slices"
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
		// Comparing every prefix, and comparing only the prefixes named
		// (all of them here), must agree.
		all := map[netip.Prefix]bool{}
		for pfx := range c.have {
			all[pfx] = true
		}
		for pfx := range c.want {
			all[pfx] = true
		}
		for _, only := range []map[netip.Prefix]bool{nil, all} {
			t.Run(fmt.Sprintf("%s/only=%d", c.name, len(only)), func(t *testing.T) {
				put, withdraw := diffRoutes(c.have, c.want, c.is4, only)
				checkDiff(t, c.put, put, c.withdraw, withdraw)
			})
		}
	}
}

func TestDiffRoutesOnly(t *testing.T) {
	p := netip.MustParsePrefix
	have := map[netip.Prefix]Route{p("203.0.113.10/32"): {}, p("203.0.113.11/32"): {}}
	want := map[netip.Prefix]Route{p("203.0.113.11/32"): {Communities: []uint32{1}}, p("203.0.113.12/32"): {}, p("203.0.113.13/32"): {}}
	// Only the named prefixes are looked at; 203.0.113.13 is new but not
	// named, and a named prefix neither had nor wanted is nothing.
	only := map[netip.Prefix]bool{p("203.0.113.10/32"): true, p("203.0.113.11/32"): true, p("203.0.113.12/32"): true, p("203.0.113.99/32"): true}
	put, withdraw := diffRoutes(have, want, true, only)
	checkDiff(t, []netip.Prefix{p("203.0.113.11/32"), p("203.0.113.12/32")}, put, []netip.Prefix{p("203.0.113.10/32")}, withdraw)
	// A named prefix of the other family is withdrawn, never put.
	have6 := map[netip.Prefix]Route{p("2001:db8:ff66::1/128"): {}}
	put, withdraw = diffRoutes(have6, have6, true, map[netip.Prefix]bool{p("2001:db8:ff66::1/128"): true})
	checkDiff(t, nil, put, []netip.Prefix{p("2001:db8:ff66::1/128")}, withdraw)
}

func checkDiff(t *testing.T, wantPut, put, wantWithdraw, withdraw []netip.Prefix) {
	t.Helper()
	if diff := cmp.Diff(wantPut, put, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("put (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff(wantWithdraw, withdraw, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("withdraw (-want +got)\n%s", diff)
	}
}

func TestDesiredApply(t *testing.T) {
	p := netip.MustParsePrefix
	comm := Route{Communities: []uint32{7}}
	d := Desired{Peers: []Peer{
		{Name: "a", Routes: map[netip.Prefix]Route{p("203.0.113.10/32"): {}, p("203.0.113.11/32"): {}}},
		{Name: "b"},
	}}
	var touched []string
	d.Apply(Changes{
		p("203.0.113.10/32"): {"b": comm},           // moves from a to b
		p("203.0.113.12/32"): {"a": comm, "zz": {}}, // zz is no peer of d
	}, func(peer string, pfx netip.Prefix) { touched = append(touched, peer+" "+pfx.String()) })
	want := []Peer{
		{Name: "a", Routes: map[netip.Prefix]Route{p("203.0.113.11/32"): {}, p("203.0.113.12/32"): comm}},
		{Name: "b", Routes: map[netip.Prefix]Route{p("203.0.113.10/32"): comm}},
	}
	if diff := cmp.Diff(want, d.Peers, cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})); diff != "" {
		t.Errorf("peers after Apply (-want +got)\n%s", diff)
	}
	slices.Sort(touched)
	wantTouched := []string{"a 203.0.113.10/32", "a 203.0.113.12/32", "b 203.0.113.10/32", "b 203.0.113.12/32"}
	if !slices.Equal(touched, wantTouched) {
		t.Errorf("touched %q, want %q", touched, wantTouched)
	}
}
