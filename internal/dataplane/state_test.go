package dataplane

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"
)

// canonical is a Fake's dump with the elements sorted: the kernel keeps
// no order among a set's elements, but it does among a chain's rules.
func canonical(fs map[knftables.Family]*knftables.Fake) string {
	var out []string
	for _, f := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		var elems []string
		for _, l := range strings.Split(fs[f].Dump(), "\n") {
			if strings.HasPrefix(l, "add element ") {
				elems = append(elems, l)
			} else if l != "" {
				out = append(out, l)
			}
		}
		slices.Sort(elems)
		out = append(out, elems...)
	}
	return strings.Join(out, "\n")
}

// randomFrontends draws a set of frontends from a small space, so that
// successive draws share, change and drop frontends and backends.
func randomFrontends(r *rand.Rand) []Frontend {
	var fes []Frontend
	for _, addr := range []netip.Addr{lb4, netip.MustParseAddr("203.0.113.101"), lb6} {
		for _, proto := range protocols {
			for _, port := range []uint16{80, 443} {
				if r.IntN(3) == 0 {
					continue
				}
				fe := Frontend{Addr: addr, Protocol: proto, Port: port}
				if r.IntN(4) == 0 {
					fe.Affinity = time.Duration(1+r.IntN(2)) * time.Minute
				}
				if r.IntN(3) == 0 {
					fe.SourceRanges = randomRanges(r)
				}
				for i := range r.IntN(5) {
					var b netip.AddrPort
					if addr.Is4() {
						b = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i + r.IntN(3))}), 8080)
					} else {
						b = netip.AddrPortFrom(netip.MustParseAddr("2001:db8:10::10").Next(), uint16(8080+i+r.IntN(3)))
					}
					if !slices.ContainsFunc(fe.Backends, func(x Backend) bool { return x.AddrPort == b }) {
						fe.Backends = append(fe.Backends, Backend{b, r.IntN(2) == 0})
					}
				}
				fes = append(fes, fe)
			}
		}
	}
	r.Shuffle(len(fes), func(i, j int) { fes[i], fes[j] = fes[j], fes[i] })
	return fes
}

// randomRanges draws source ranges from a few prefixes of both families
// that nest, repeat and cover everything, or none.
func randomRanges(r *rand.Rand) *SourceRanges {
	pool := []string{"198.51.100.0/24", "198.51.100.0/25", "198.51.100.200/32", "0.0.0.0/0",
		"2001:db8:5100::/48", "2001:db8:5100::200/128", "::/0"}
	s := AllowOnly()
	for range r.IntN(4) {
		s.Allowed = append(s.Allowed, netip.MustParsePrefix(pool[r.IntN(len(pool))]))
	}
	return s
}

// TestPartialEqualsFull applies random desired states one after another,
// each written as a difference from the one before, and checks after
// every step that the tables hold exactly what a full write of that state
// gives. A restarted Dataplane over the final tables must change nothing
// that matters either.
func TestPartialEqualsFull(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		d, fs := fakes(t)
		ctx := context.Background()
		var partials int
		var fes []Frontend
		for step := range 30 {
			fes = randomFrontends(r)
			if err := d.Sync(ctx, fes); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			if step > 0 && fs[knftables.IPv4Family].LastTransaction.String() != "" &&
				!strings.Contains(fs[knftables.IPv4Family].LastTransaction.String(), "delete table") {
				partials++
			}
			fresh, freshFakes := fakes(t)
			if err := fresh.Sync(ctx, fes); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canonical(freshFakes), canonical(fs)); diff != "" {
				t.Fatalf("seed %d step %d: written in part, the tables differ from a full write (-full +partial):\n%s", seed, step, diff)
			}
		}
		if partials == 0 {
			t.Fatalf("seed %d: no step was written in part", seed)
		}
		// A new process takes the tables over whole, and ends with the
		// same.
		before := canonical(fs)
		restarted, err := New(Options{NFT: map[knftables.Family]knftables.Interface{
			knftables.IPv4Family: fs[knftables.IPv4Family], knftables.IPv6Family: fs[knftables.IPv6Family]}})
		if err != nil {
			t.Fatal(err)
		}
		if err := restarted.Sync(ctx, fes); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, canonical(fs)); diff != "" {
			t.Fatalf("seed %d: a restart changed the tables:\n%s", seed, diff)
		}
	}
}

// TestPartialIsSmall checks that changing one backend of one frontend
// among many writes only that frontend's elements.
func TestPartialIsSmall(t *testing.T) {
	var fes []Frontend
	for i := range 200 {
		fe := Frontend{Addr: lb4, Protocol: TCP, Port: uint16(1000 + i)}
		for j := range 10 {
			fe.Backends = append(fe.Backends, Backend{netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(j)}), uint16(2000+i)), j%2 == 0})
		}
		fes = append(fes, fe)
	}
	d, fs := fakes(t)
	ctx := context.Background()
	if err := d.Sync(ctx, fes); err != nil {
		t.Fatal(err)
	}
	changed := slices.Clone(fes)
	changed[7].Backends = slices.Clone(changed[7].Backends)
	changed[7].Backends[9].AddrPort = netip.MustParseAddrPort("203.0.113.99:2007")
	if err := d.Sync(ctx, changed); err != nil {
		t.Fatal(err)
	}
	tx := fs[knftables.IPv4Family].LastTransaction.String()
	// The old backend's element goes, the new one comes, and the new
	// backend (on this node, as odd j are) gets its hairpin element; the
	// old one's stays, as other frontends use its address.
	want := []string{
		"delete element ip ironlb backends-tcp { 203.0.113.100 . 1007 . 9 }",
		"add element ip ironlb hairpin { 203.0.113.99 . 203.0.113.99 }",
		"add element ip ironlb backends-tcp { 203.0.113.100 . 1007 . 9 : 203.0.113.99 . 2007 }",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(tx), "\n")); diff != "" {
		t.Errorf("transaction (-want +got):\n%s", diff)
	}
	// Nothing changed: nothing written.
	fs[knftables.IPv4Family].LastTransaction = nil
	if err := d.Sync(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if tx := fs[knftables.IPv4Family].LastTransaction; tx != nil {
		t.Errorf("an unchanged state wrote %s", tx)
	}
}
