package iprange

import (
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
		size        int64
		str         string
		err         string // substring; empty means valid
	}{
		{in: "198.51.100.0/24", first: "198.51.100.0", last: "198.51.100.255", size: 256, str: "198.51.100.0/24"},
		{in: "203.0.113.16/28", first: "203.0.113.16", last: "203.0.113.31", size: 16, str: "203.0.113.16/28"},
		{in: "203.0.113.7/32", first: "203.0.113.7", last: "203.0.113.7", size: 1, str: "203.0.113.7"},
		{in: "2001:db8::/126", first: "2001:db8::", last: "2001:db8::3", size: 4, str: "2001:db8::/126"},
		{in: "2001:db8:1::/48", first: "2001:db8:1::", last: "2001:db8:1:ffff:ffff:ffff:ffff:ffff", str: "2001:db8:1::/48"},
		{in: "198.51.100.10-198.51.100.20", first: "198.51.100.10", last: "198.51.100.20", size: 11, str: "198.51.100.10-198.51.100.20"},
		{in: "198.51.100.0-198.51.100.255", first: "198.51.100.0", last: "198.51.100.255", size: 256, str: "198.51.100.0/24"},
		{in: "198.51.100.9-198.51.100.9", first: "198.51.100.9", last: "198.51.100.9", size: 1, str: "198.51.100.9"},
		{in: "2001:db8::a-2001:db8::1:0", first: "2001:db8::a", last: "2001:db8::1:0", size: 65527, str: "2001:db8::a-2001:db8::1:0"},
		{in: "203.0.113.5", first: "203.0.113.5", last: "203.0.113.5", size: 1, str: "203.0.113.5"},
		{in: "2001:db8::5", first: "2001:db8::5", last: "2001:db8::5", size: 1, str: "2001:db8::5"},
		{in: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255", size: 1 << 32, str: "0.0.0.0/0"},

		{in: "198.51.100.1/24", err: "the network address is 198.51.100.0/24"},
		{in: "2001:db8::1/64", err: "the network address is 2001:db8::/64"},
		{in: "198.51.100.20-198.51.100.10", err: "must not be above the last"},
		{in: "2001:db8::2-2001:db8::1", err: "must not be above the last"},
		{in: "198.51.100.1-2001:db8::1", err: "must not mix IPv4 and IPv6"},
		{in: "198.51.100.1 - 198.51.100.2", err: "two addresses joined by '-'"},
		{in: "198.51.100.1-198.51.100.2-198.51.100.3", err: "two addresses joined by '-'"},
		{in: "198.51.100.0/24-198.51.100.9", err: "two addresses joined by '-'"},
		{in: "198.51.100.0/33", err: "invalid address entry"},
		{in: "198.51.100", err: "must be a CIDR"},
		{in: "", err: "must be a CIDR"},
		{in: "::ffff:198.51.100.1", err: "IPv4-mapped"},
		{in: "::ffff:198.51.100.0/120", err: "IPv4-mapped"},
		{in: "fe80::1%eth0", err: "zone"},
		{in: "198.051.100.1", err: "must be a CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tt.in, r, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			want := Range{netip.MustParseAddr(tt.first), netip.MustParseAddr(tt.last)}
			if r != want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, r, want)
			}
			if tt.size != 0 && r.Size().Cmp(big.NewInt(tt.size)) != 0 {
				t.Errorf("Size() = %v, want %d", r.Size(), tt.size)
			}
			if got := r.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
		})
	}
}

func TestOverlapsAndContains(t *testing.T) {
	r := func(s string) Range { return mustParse(t, s) }
	tests := []struct {
		a, b string
		want bool
	}{
		{"198.51.100.0/24", "198.51.100.255", true},
		{"198.51.100.0/24", "198.51.101.0", false},
		{"198.51.100.0/25", "198.51.100.128/25", false},
		{"198.51.100.10-198.51.100.20", "198.51.100.20-198.51.100.30", true},
		{"198.51.100.10-198.51.100.20", "198.51.100.0/28", true},
		{"2001:db8::/64", "2001:db8::ffff-2001:db8:0:1::", true},
		{"2001:db8::/64", "2001:db8:0:1::/64", false},
		// IPv4 and IPv6 never overlap, even where their bytes would.
		{"0.0.0.0/0", "::/0", false},
	}
	for _, tt := range tests {
		a, b := r(tt.a), r(tt.b)
		if got := a.Overlaps(b); got != tt.want {
			t.Errorf("%s overlaps %s = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := b.Overlaps(a); got != tt.want {
			t.Errorf("%s overlaps %s = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
	if c := r("198.51.100.0/24"); !c.Contains(netip.MustParseAddr("198.51.100.77")) || c.Contains(netip.MustParseAddr("198.51.101.0")) || c.Contains(netip.MustParseAddr("::c633:644d")) {
		t.Error("Contains is wrong for 198.51.100.0/24")
	}
}

func mustParse(t *testing.T, s string) Range {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// FuzzParse checks that whatever Parse accepts is a well-formed range whose
// printed form parses back to the same range.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"198.51.100.0/24", "2001:db8::/64", "198.51.100.1-198.51.100.9", "2001:db8::1-2001:db8::ff", "203.0.113.1", "1.2.3.4/0", "::/0", "a-b", "-", "1.1.1.1-", "::ffff:1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if !r.First.IsValid() || !r.Last.IsValid() || r.First.Is4() != r.Last.Is4() || r.Last.Less(r.First) {
			t.Fatalf("Parse(%q) = %v: not a well-formed range", s, r)
		}
		// A prefix such as ::/80 may end in the IPv4-mapped block, as the
		// API server allows; addresses the user wrote may not be mapped.
		if r.First.Zone() != "" || r.First.Is4In6() || (strings.Contains(s, "-") && r.Last.Is4In6()) {
			t.Fatalf("Parse(%q) = %v: accepted a zone or an IPv4-mapped address", s, r)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("Parse(%q) = %v, printed %q, parsed back as %v, %v", s, r, r.String(), back, err)
		}
		if !r.Contains(r.First) || !r.Contains(r.Last) || !r.Overlaps(r) {
			t.Fatalf("range %v does not contain its own ends", r)
		}
	})
}

func TestPrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"198.51.100.0/24", "198.51.100.0/24"},
		{"198.51.100.7", "198.51.100.7/32"},
		{"198.51.100.10-198.51.100.20", "198.51.100.10/31 198.51.100.12/30 198.51.100.16/30 198.51.100.20/32"},
		{"2001:db8::ffff-2001:db8::1:1", "2001:db8::ffff/128 2001:db8::1:0/127"},
		{"0.0.0.0-255.255.255.255", "0.0.0.0/0"},
		{"255.255.255.254-255.255.255.255", "255.255.255.254/31"},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range mustParse(t, tt.in).Prefixes() {
			got = append(got, p.String())
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("Prefixes(%s) = %s, want %s", tt.in, g, tt.want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	in := []string{"203.0.113.0/24", "2001:db8::/64", "203.0.113.10-203.0.113.20", "2001:db8::a-2001:db8::1:0"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Parse(in[i%len(in)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
