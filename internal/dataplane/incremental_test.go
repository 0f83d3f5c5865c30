package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestIncrementalEqualsFull walks random sequences of small changes, as
// a cluster makes them: frontends added and removed, a backend changed,
// added or dropped, a port changed, source ranges and affinity set,
// changed or cleared, both families mixed, the list reordered or made
// anew, and now and then a frontend named twice. After every step the
// tables, changed in place by the step's frontends alone, must hold
// exactly what a full write of the same list into empty tables gives.
func TestIncrementalEqualsFull(t *testing.T) {
	ctx := context.Background()
	var inPlace, rebuilt int
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 19))
		d, fs := fakes(t)
		var fes []Frontend
		for range 6 {
			fes = append(fes, randomFrontend(r, randomKey(r)))
		}
		fes = dropDuplicates(fes)
		var log []string
		for step := range 80 {
			var what string
			fes, what = mutate(r, fes)
			log = append(log, what)
			// A step is written in place when the last list was recorded
			// (it named no frontend twice) and this one names none twice.
			wantInPlace := step > 0 && d.fams[0].inStep && d.fams[1].inStep && !hasDuplicates(fes)
			for _, f := range fs {
				f.LastTransaction = nil
			}
			if err := d.Sync(ctx, fes); err != nil {
				t.Fatalf("seed %d step %d (%s): %v", seed, step, what, err)
			}
			for fam, f := range fs {
				if tx := f.LastTransaction; wantInPlace && tx != nil && strings.Contains(tx.String(), "add table") {
					t.Fatalf("seed %d step %d (%s): %s written whole:\n%s", seed, step, what, fam, tx)
				}
			}
			if wantInPlace {
				inPlace++
			} else if step > 0 {
				rebuilt++
			}
			fresh, freshFakes := fakes(t)
			if err := fresh.Sync(ctx, fes); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canonical(freshFakes), canonical(fs)); diff != "" {
				t.Fatalf("seed %d step %d: after %s, the tables differ from a full write (-full +in place):\n%s",
					seed, step, strings.Join(log, "; "), diff)
			}
		}
	}
	t.Logf("%d steps written in place, %d compared whole (a frontend named twice)", inPlace, rebuilt)
	if inPlace == 0 || rebuilt == 0 {
		t.Fatal("the walk did not take both paths")
	}
}

// The key space is small, so that keys come back after they went.
var (
	randomAddrs = []netip.Addr{lb4, netip.MustParseAddr("203.0.113.101"), lb6, netip.MustParseAddr("2001:db8:100::101")}
	randomPorts = []uint16{80, 443, 8443}
)

func randomKey(r *rand.Rand) frontendKey {
	return frontendKey{randomAddrs[r.IntN(len(randomAddrs))], protocols[r.IntN(len(protocols))], randomPorts[r.IntN(len(randomPorts))]}
}

func randomFrontend(r *rand.Rand, k frontendKey) Frontend {
	fe := Frontend{Addr: k.addr, Protocol: k.proto, Port: k.port}
	for range r.IntN(5) {
		fe.Backends = append(fe.Backends, randomBackend(r, k.addr.Is4()))
	}
	if r.IntN(4) == 0 {
		fe.Affinity = time.Duration(1+r.IntN(2)) * time.Minute
	}
	if r.IntN(3) == 0 {
		fe.SourceRanges = randomRanges(r)
	}
	return fe
}

// randomBackend draws from a few backends per family, so that frontends
// share them (and their masquerading and hairpin elements), and now and
// then one frontend names a backend twice.
func randomBackend(r *rand.Rand, v4 bool) Backend {
	var a netip.Addr
	if v4 {
		a = netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + r.IntN(6))})
	} else {
		a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 15: byte(10 + r.IntN(6))})
	}
	return Backend{netip.AddrPortFrom(a, uint16(8080+r.IntN(2))), r.IntN(2) == 0}
}

// mutate changes fes in one to three random ways and says how. The
// frontends of the list it is given are left as they are: what changes
// is copied, as a caller of Set must do.
func mutate(r *rand.Rand, fes []Frontend) ([]Frontend, string) {
	fes = slices.Clone(fes)
	var did []string
	if hasDuplicates(fes) && r.IntN(3) > 0 {
		fes = dropDuplicates(fes)
		did = append(did, "duplicates dropped")
	}
	for range 1 + r.IntN(3) {
		i := -1
		if len(fes) > 0 {
			i = r.IntN(len(fes))
		}
		switch op := r.IntN(12); {
		case op == 0 || i < 0:
			k := randomKey(r)
			if slices.ContainsFunc(fes, func(fe Frontend) bool { return keyOf(&fe) == k }) {
				continue
			}
			fes = slices.Insert(fes, r.IntN(len(fes)+1), randomFrontend(r, k))
			did = append(did, fmt.Sprintf("added %v", k))
		case op == 1:
			did = append(did, fmt.Sprintf("removed %v", keyOf(&fes[i])))
			fes = slices.Delete(fes, i, i+1)
		case op == 2 && len(fes[i].Backends) > 0:
			bs := slices.Clone(fes[i].Backends)
			bs[r.IntN(len(bs))] = randomBackend(r, fes[i].Addr.Is4())
			fes[i].Backends = bs
			did = append(did, fmt.Sprintf("changed a backend of %v", keyOf(&fes[i])))
		case op == 3:
			fes[i].Backends = append(slices.Clip(fes[i].Backends), randomBackend(r, fes[i].Addr.Is4()))
			did = append(did, fmt.Sprintf("added a backend to %v", keyOf(&fes[i])))
		case op == 4 && len(fes[i].Backends) > 0:
			fes[i].Backends = slices.Delete(slices.Clone(fes[i].Backends), 0, 1)
			did = append(did, fmt.Sprintf("dropped a backend of %v", keyOf(&fes[i])))
		case op == 5:
			k := keyOf(&fes[i])
			k.port = randomPorts[r.IntN(len(randomPorts))]
			if slices.ContainsFunc(fes, func(fe Frontend) bool { return keyOf(&fe) == k }) {
				continue
			}
			did = append(did, fmt.Sprintf("moved %v to port %d", keyOf(&fes[i]), k.port))
			fes[i].Port = k.port
		case op == 6:
			if fes[i].SourceRanges = nil; r.IntN(3) > 0 {
				fes[i].SourceRanges = randomRanges(r)
			}
			did = append(did, fmt.Sprintf("ranges of %v now %v", keyOf(&fes[i]), fes[i].SourceRanges))
		case op == 7:
			fes[i].Affinity = time.Duration(r.IntN(3)) * time.Minute
			did = append(did, fmt.Sprintf("affinity of %v now %v", keyOf(&fes[i]), fes[i].Affinity))
		case op == 8:
			r.Shuffle(len(fes), func(a, b int) { fes[a], fes[b] = fes[b], fes[a] })
			did = append(did, "shuffled")
		case op == 9:
			// The same frontends in slices of their own, as a new plan
			// has them: compared element by element.
			fes = deepCopy(fes)
			did = append(did, "copied")
		case op == 10 && r.IntN(4) == 0:
			dup := randomFrontend(r, keyOf(&fes[i]))
			fes = slices.Insert(fes, r.IntN(len(fes)+1), dup)
			did = append(did, fmt.Sprintf("named %v twice", keyOf(&fes[i])))
		}
	}
	return fes, strings.Join(did, ", ")
}

func hasDuplicates(fes []Frontend) bool { return len(dropDuplicates(fes)) != len(fes) }

// dropDuplicates keeps the first frontend of each key.
func dropDuplicates(fes []Frontend) []Frontend {
	seen := map[frontendKey]bool{}
	var out []Frontend
	for i := range fes {
		if k := keyOf(&fes[i]); !seen[k] {
			seen[k] = true
			out = append(out, fes[i])
		}
	}
	return out
}

// TestIncrementalDuplicates: a list that names a frontend twice is laid
// out as before, the later frontend's elements winning, and the list
// after it is written correctly even though the frontend then appears
// once.
func TestIncrementalDuplicates(t *testing.T) {
	ctx := context.Background()
	a := Frontend{Addr: lb4, Protocol: TCP, Port: 80, Backends: []Backend{
		backend(netip.MustParseAddrPort("203.0.113.10:8080"), false), backend(netip.MustParseAddrPort("203.0.113.11:8080"), true)}}
	b := a
	b.Backends = []Backend{backend(netip.MustParseAddrPort("203.0.113.12:8080"), false)}
	steps := [][]Frontend{{a}, {a, b}, {b}, {a}, {}}
	d, fs := fakes(t)
	for i, fes := range steps {
		if err := d.Sync(ctx, fes); err != nil {
			t.Fatal(err)
		}
		fresh, freshFakes := fakes(t)
		if err := fresh.Sync(ctx, fes); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(canonical(freshFakes), canonical(fs)); diff != "" {
			t.Fatalf("step %d: (-full +in place):\n%s", i, diff)
		}
	}
	if got := canonical(fs); strings.Contains(got, "add element ip ironlb backends") {
		t.Errorf("elements left after the last frontend went:\n%s", got)
	}
}

func (k frontendKey) String() string { return fmt.Sprintf("%s %s/%d", k.addr, k.proto, k.port) }
