package dataplane

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestTraceSourceRanges follows new connections to restricted frontends
// through the rules: a client inside the ranges of the frontend's family
// reaches the backends, one outside is dropped (not refused) before any
// DNAT, from the network and from the node itself, in both families.
func TestTraceSourceRanges(t *testing.T) {
	out4 := netip.MustParseAddr("198.51.100.7")
	out6 := netip.MustParseAddr("2001:db8:5200::7")
	both := AllowOnly(netip.PrefixFrom(client4, 32), pfx("2001:db8:5100::/48"))
	fes := []Frontend{
		{Addr: lb4, Protocol: TCP, Port: 80, Backends: []Backend{backend(local4, false), backend(remote4, true)}, SourceRanges: both},
		// Another port of the same address, not restricted.
		{Addr: lb4, Protocol: UDP, Port: 53, Backends: []Backend{backend(local4, false)}},
		// Restricted, without backends: a client it accepts is refused, one
		// it does not is dropped, so that it learns nothing.
		{Addr: lb4, Protocol: TCP, Port: 443, SourceRanges: both},
		// Ranges that cannot be read: nobody.
		{Addr: lb4, Protocol: TCP, Port: 8000, Backends: []Backend{backend(local4, false)}, SourceRanges: AllowOnly()},
		// Ranges of the other family only: nobody of this one.
		{Addr: lb4, Protocol: TCP, Port: 8001, Backends: []Backend{backend(local4, false)}, SourceRanges: AllowOnly(pfx("2001:db8::/32"))},
		// 0.0.0.0/0 opens the family, as kube-proxy reads it.
		{Addr: lb4, Protocol: TCP, Port: 8002, Backends: []Backend{backend(local4, false)}, SourceRanges: AllowOnly(pfx("0.0.0.0/0"), pfx("2001:db8:5100::200/128"))},
		// Nested, repeated and host-bit prefixes: one interval, the widest.
		{Addr: lb4, Protocol: TCP, Port: 8003, Backends: []Backend{backend(local4, false)}, SourceRanges: AllowOnly(
			pfx("198.51.100.192/26"), pfx("198.51.100.77/24"), pfx("198.51.100.0/24"), pfx("198.51.100.200/32"))},
		// Affinity: a dropped client is not remembered.
		{Addr: lb4, Protocol: TCP, Port: 8443, Affinity: time.Hour, Backends: []Backend{backend(local4, false), backend(remote4, true)}, SourceRanges: both},
		{Addr: lb6, Protocol: TCP, Port: 80, Backends: []Backend{backend(local6, false), backend(remote6, true)}, SourceRanges: both},
		{Addr: lb6, Protocol: UDP, Port: 80, Backends: []Backend{backend(local6, false)}, SourceRanges: AllowOnly(pfx("2001:db8:5100::200/128"))},
		{Addr: lb6, Protocol: TCP, Port: 8000, Backends: []Backend{backend(local6, false)}, SourceRanges: AllowOnly()},
	}
	d, fs := fakes(t)
	if err := d.Sync(context.Background(), fes); err != nil {
		t.Fatal(err)
	}
	first := func(int) int { return 0 }
	for _, tc := range []struct {
		name string
		p    packet
		hook string
		want string
	}{
		{"IPv4 allowed", packet{client4, lb4, TCP, 80}, chainPrerouting, "dnat 203.0.113.10:8080"},
		{"IPv4 outside the ranges", packet{out4, lb4, TCP, 80}, chainPrerouting, "drop"},
		{"IPv4 neighbour of the allowed /32", packet{other4, lb4, TCP, 80}, chainPrerouting, "drop"},
		{"IPv4 from the node, outside", packet{out4, lb4, TCP, 80}, chainOutput, "drop"},
		{"IPv4 from the node, allowed", packet{client4, lb4, TCP, 80}, chainOutput, "dnat 203.0.113.10:8080"},
		{"unrestricted port of a restricted address", packet{out4, lb4, UDP, 53}, chainPrerouting, "dnat 203.0.113.10:8080"},
		{"unexposed port of a restricted address", packet{out4, lb4, TCP, 22}, chainPrerouting, "reject"},
		{"no backends, allowed", packet{client4, lb4, TCP, 443}, chainPrerouting, "reject"},
		{"no backends, outside", packet{out4, lb4, TCP, 443}, chainPrerouting, "drop"},
		{"unreadable ranges", packet{client4, lb4, TCP, 8000}, chainPrerouting, "drop"},
		{"unreadable ranges, from the node", packet{client4, lb4, TCP, 8000}, chainOutput, "drop"},
		{"ranges of the other family only", packet{client4, lb4, TCP, 8001}, chainPrerouting, "drop"},
		{"0.0.0.0/0", packet{out4, lb4, TCP, 8002}, chainPrerouting, "dnat 203.0.113.10:8080"},
		{"nested ranges, inside", packet{other4, lb4, TCP, 8003}, chainPrerouting, "dnat 203.0.113.10:8080"},
		{"nested ranges, outside", packet{netip.MustParseAddr("198.51.101.1"), lb4, TCP, 8003}, chainPrerouting, "drop"},
		{"IPv6 allowed", packet{client6, lb6, TCP, 80}, chainPrerouting, "dnat [2001:db8:10::10]:8080"},
		{"IPv6 outside the ranges", packet{out6, lb6, TCP, 80}, chainPrerouting, "drop"},
		{"IPv6 from the node, outside", packet{out6, lb6, TCP, 80}, chainOutput, "drop"},
		{"IPv6 UDP, allowed /128", packet{client6, lb6, UDP, 80}, chainPrerouting, "dnat [2001:db8:10::10]:8080"},
		{"IPv6 UDP, outside the /128", packet{client6.Next(), lb6, UDP, 80}, chainPrerouting, "drop"},
		{"IPv6 unreadable ranges", packet{client6, lb6, TCP, 8000}, chainPrerouting, "drop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fam := fs[knftables.IPv4Family]
			if tc.p.dst.Is6() {
				fam = fs[knftables.IPv6Family]
			}
			if got := newTracer(t, fam, first).trace(tc.p, tc.hook); got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}

	t.Run("a dropped client is not remembered", func(t *testing.T) {
		tr := newTracer(t, fs[knftables.IPv4Family], first)
		if got := tr.trace(packet{out4, lb4, TCP, 8443}, chainPrerouting); !got.drop {
			t.Fatalf("got %s, want drop", got)
		}
		if len(tr.clients) != 0 {
			t.Errorf("affinity sets hold %v after a dropped connection", tr.clients)
		}
		if got := tr.trace(packet{client4, lb4, TCP, 8443}, chainPrerouting); got.dnat != local4 {
			t.Errorf("allowed client: %s", got)
		}
	})

	t.Run("one interval for nested ranges", func(t *testing.T) {
		var got []string
		for _, e := range fs[knftables.IPv4Family].Table.Sets[setAllowed].Elements {
			if e.Key[2] == "8003" {
				got = append(got, strings.Join(e.Key, " . "))
			}
		}
		if diff := cmp.Diff([]string{"203.0.113.100 . tcp . 8003 . 198.51.100.0/24"}, got); diff != "" {
			t.Errorf("allowed elements of port 8003 (-want +got):\n%s", diff)
		}
	})
}

// TestSourceRangesChange: changing one frontend's ranges among many
// writes only that frontend's elements of the two sets, and the tracer
// sees the new ranges at once.
func TestSourceRangesChange(t *testing.T) {
	var fes []Frontend
	for i := range 100 {
		fes = append(fes, Frontend{Addr: lb4, Protocol: TCP, Port: uint16(1000 + i),
			Backends:     []Backend{backend(local4, false)},
			SourceRanges: AllowOnly(pfx("198.51.100.0/25"), pfx("2001:db8:5100::/48"))})
	}
	d, fs := fakes(t)
	ctx := context.Background()
	if err := d.Sync(ctx, fes); err != nil {
		t.Fatal(err)
	}
	fs[knftables.IPv6Family].LastTransaction = nil
	tr := func() *tracer { return newTracer(t, fs[knftables.IPv4Family], func(int) int { return 0 }) }
	if got := tr().trace(packet{client4, lb4, TCP, 1007}, chainPrerouting); !got.drop {
		t.Fatalf("before the change, %s (outside 198.51.100.0/25): %s, want drop", client4, got)
	}

	steps := []struct {
		name   string
		ranges *SourceRanges
		want   []string
		// client4 after the change
		verdict string
	}{
		{"ranges changed", AllowOnly(pfx("198.51.100.128/25"), pfx("2001:db8:5100::/48")), []string{
			"delete element ip ironlb allowed { 203.0.113.100 . tcp . 1007 . 198.51.100.0/25 }",
			"add element ip ironlb allowed { 203.0.113.100 . tcp . 1007 . 198.51.100.128/25 }",
		}, "dnat 203.0.113.10:8080"},
		{"restriction lifted", nil, []string{
			"delete element ip ironlb restricted { 203.0.113.100 . tcp . 1007 }",
			"delete element ip ironlb allowed { 203.0.113.100 . tcp . 1007 . 198.51.100.128/25 }",
		}, "dnat 203.0.113.10:8080"},
		{"closed to everyone", AllowOnly(), []string{
			"add element ip ironlb restricted { 203.0.113.100 . tcp . 1007 }",
		}, "drop"},
		{"opened to one", AllowOnly(netip.PrefixFrom(client4, 32)), []string{
			"add element ip ironlb allowed { 203.0.113.100 . tcp . 1007 . 198.51.100.200/32 }",
		}, "dnat 203.0.113.10:8080"},
	}
	for _, st := range steps {
		fes = slices.Clone(fes)
		fes[7].SourceRanges = st.ranges
		if err := d.Sync(ctx, fes); err != nil {
			t.Fatal(err)
		}
		tx := fs[knftables.IPv4Family].LastTransaction.String()
		if diff := cmp.Diff(st.want, strings.Split(strings.TrimSpace(tx), "\n")); diff != "" {
			t.Errorf("%s: transaction (-want +got):\n%s", st.name, diff)
		}
		if got := tr().trace(packet{client4, lb4, TCP, 1007}, chainPrerouting); got.String() != st.verdict {
			t.Errorf("%s: %s got %s, want %s", st.name, client4, got, st.verdict)
		}
		// The neighbours keep their ranges.
		if got := tr().trace(packet{client4, lb4, TCP, 1008}, chainPrerouting); !got.drop {
			t.Errorf("%s: port 1008, untouched, let %s in: %s", st.name, client4, got)
		}
	}
	// IPv6 ranges are not the IPv4 table's business: it was not written.
	if tx := fs[knftables.IPv6Family].LastTransaction; tx != nil {
		t.Errorf("the IPv6 table, which has no frontend, was written: %s", tx)
	}
}

func TestSourceRangesForFamily(t *testing.T) {
	for _, tc := range []struct {
		name       string
		s          *SourceRanges
		v4         bool
		restricted bool
		want       []netip.Prefix
	}{
		{"nil", nil, true, false, nil},
		{"empty", AllowOnly(), true, true, nil},
		{"other family only", AllowOnly(pfx("2001:db8::/32")), true, true, nil},
		{"zero prefix", AllowOnly(pfx("198.51.100.0/24"), pfx("0.0.0.0/0")), true, false, nil},
		{"zero prefix of the other family", AllowOnly(pfx("198.51.100.0/24"), pfx("::/0")), true, true, []netip.Prefix{pfx("198.51.100.0/24")}},
		{"host bits", AllowOnly(pfx("198.51.100.7/24")), true, true, []netip.Prefix{pfx("198.51.100.0/24")}},
		{"nested and repeated", AllowOnly(pfx("198.51.100.128/25"), pfx("198.51.100.200/32"), pfx("198.51.100.0/24"), pfx("198.51.100.0/24"), pfx("203.0.113.0/24")),
			true, true, []netip.Prefix{pfx("198.51.100.0/24"), pfx("203.0.113.0/24")}},
		{"adjacent", AllowOnly(pfx("198.51.100.128/25"), pfx("198.51.100.0/25")), true, true, []netip.Prefix{pfx("198.51.100.0/25"), pfx("198.51.100.128/25")}},
		{"IPv6", AllowOnly(pfx("198.51.100.0/24"), pfx("2001:db8:1::/48"), pfx("2001:db8:1:2::/64"), pfx("2001:db8:2::1/128")),
			false, true, []netip.Prefix{pfx("2001:db8:1::/48"), pfx("2001:db8:2::1/128")}},
		{"invalid prefix", &SourceRanges{Allowed: []netip.Prefix{{}}}, true, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restricted, got := tc.s.forFamily(tc.v4)
			if restricted != tc.restricted || !slices.Equal(got, tc.want) {
				t.Errorf("forFamily = %v %v, want %v %v", restricted, got, tc.restricted, tc.want)
			}
		})
	}
	// forFamily must not reorder the caller's prefixes.
	s := AllowOnly(pfx("198.51.100.128/25"), pfx("198.51.100.0/24"))
	before := slices.Clone(s.Allowed)
	s.forFamily(true)
	if !slices.Equal(before, s.Allowed) {
		t.Errorf("forFamily changed its input: %v, was %v", s.Allowed, before)
	}
}
