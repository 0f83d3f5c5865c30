// Package election decides which node announces each address in layer 2
// mode. It is pure: every speaker feeds it the same facts (which speakers
// are alive, which nodes are eligible for which address) and gets the same
// answer without exchanging a message.
//
// Each node's claim on an address is a stable 64-bit hash of the node's
// name and the address; the eligible, alive node with the highest claim
// announces. How the claim is computed is a protocol between the speakers,
// so it is versioned (ClaimVersion): every speaker of a cluster must rank
// with the same version, the oldest one any alive speaker speaks (Agreed).
//
// A Table keeps the owner of every address and recomputes only what a
// change affects. Addresses with the same eligible nodes (every address of
// a pool announced from the same nodes, say) share one Nodes set, so the
// table stays small: a node going down re-elects only the addresses it
// owned, a node coming up compares its claim with the owners of the
// addresses whose sets hold it, and setting an address's set to the one
// it already has costs a map lookup. See README.md.
package election

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ClaimVersion names a way of computing claims. Speakers that rank with
// different versions disagree on owners, so two of them may answer for one
// address; a cluster uses the version Agreed by all its alive speakers.
type ClaimVersion uint8

const (
	// ClaimV1 is FNV-1a (64-bit) over the node name, a zero byte and the
	// address's 16 bytes: the claim of every release before versions
	// existed. FNV-1a folds its last input bytes into the low bits only,
	// so for the addresses of one pool, which differ in their last bytes,
	// the comparison between two nodes is decided by their names alone and
	// one node owns every address. Kept so that a cluster can upgrade from
	// those releases without two owners.
	ClaimV1 ClaimVersion = 1
	// ClaimV2 starts like ClaimV1, FNV-1a over the node name and a zero
	// byte, then folds in the address's 16 bytes as two big-endian 64-bit
	// halves, each xored into the state and mixed with MurmurHash3's
	// 64-bit finalizer (mix64), in which every input bit flips every
	// output bit with probability about one half. Claims of different
	// nodes on one address are then as good as independent, and the
	// addresses of a pool spread over the nodes like a random assignment
	// (TestSpread). It costs about half of ClaimV1 (two finalizers instead
	// of sixteen dependent multiplications), not the few hundred
	// nanoseconds of a cryptographic hash, which keeps the table's
	// incremental updates cheap.
	ClaimV2 ClaimVersion = 2
	// ClaimV3 has the claims of ClaimV2 and adds balanced placement: the
	// addresses of an eligible set marked balanced (Nodes.Balance) are
	// placed by Balanced instead of going to the highest claim. Sets not
	// so marked have the same owners as under ClaimV2, so a cluster moving
	// between the two moves only balanced addresses. A speaker that does
	// not speak ClaimV3 would rank balanced addresses by claim alone, so
	// the cluster places them only once every alive speaker speaks it.
	ClaimV3 ClaimVersion = 3

	// LatestClaim is the newest version this code speaks.
	LatestClaim = ClaimV3
)

// ParseClaimVersion checks a version number given by a user or read from
// another speaker.
func ParseClaimVersion(n int) (ClaimVersion, error) {
	if n < int(ClaimV1) || n > int(LatestClaim) {
		return 0, fmt.Errorf("claim version %d: must be from %d to %d", n, ClaimV1, LatestClaim)
	}
	return ClaimVersion(n), nil
}

// OrLatest is v, or LatestClaim when v is zero (not set).
func (v ClaimVersion) OrLatest() ClaimVersion {
	if v == 0 {
		return LatestClaim
	}
	return v
}

// Claim is node's claim on addr; higher wins, ties go to the smaller name.
// It is the same on every machine and Go version (TestClaimIsStable).
func (v ClaimVersion) Claim(node string, addr netip.Addr) uint64 {
	return v.claimFrom(namePrefix(node), addr)
}

const prime64 = 1099511628211 // FNV's 64-bit prime

// namePrefix is the FNV-1a state after a node's name and the zero byte
// that follows it, the same for every address and version: a Nodes set
// keeps it per name, so that ranking an address over many nodes hashes
// only the address.
func namePrefix(node string) uint64 {
	h := uint64(14695981039346656037) // FNV's 64-bit offset basis
	for i := 0; i < len(node); i++ {
		h = (h ^ uint64(node[i])) * prime64
	}
	return h * prime64 // the zero byte
}

// claimFrom finishes a claim from the node's namePrefix.
func (v ClaimVersion) claimFrom(h uint64, addr netip.Addr) uint64 {
	b := addr.As16()
	if v == ClaimV1 {
		for _, c := range b {
			h = (h ^ uint64(c)) * prime64
		}
		return h
	}
	h = mix64(h ^ binary.BigEndian.Uint64(b[:8]))
	return mix64(h ^ binary.BigEndian.Uint64(b[8:]))
}

// mix64 is MurmurHash3's 64-bit finalizer: a bijection in which every
// input bit flips every output bit with probability about one half.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Agreed is the version a cluster ranks with: the oldest of the newest
// versions its alive speakers speak (every speaker speaks every version
// up to its newest). No versions means LatestClaim.
func Agreed(newest ...ClaimVersion) ClaimVersion {
	v := LatestClaim
	for _, n := range newest {
		v = min(v, max(n, ClaimV1))
	}
	return v
}

// Winner returns the node among nodes that ranks first for addr under v,
// "" for none.
func Winner(v ClaimVersion, addr netip.Addr, nodes []string) string {
	best, bestClaim := "", uint64(0)
	for _, n := range nodes {
		if c := v.Claim(n, addr); best == "" || beats(n, c, best, bestClaim) {
			best, bestClaim = n, c
		}
	}
	return best
}

func beats(a string, ca uint64, b string, cb uint64) bool {
	return ca > cb || (ca == cb && a < b)
}

// Nodes is an immutable set of node names: the nodes eligible to announce
// an address. Build one per distinct set and give it to every address that
// has that set.
type Nodes struct {
	names    []string // sorted, no duplicates
	prefixes []uint64 // namePrefix of each name
	key      string
	// balanced: the addresses of this set are placed by Balanced (from
	// ClaimV3 on) rather than by the highest claim.
	balanced bool
}

// NewNodes returns the set of the names given.
func NewNodes(names ...string) *Nodes {
	s := slices.Clone(names)
	slices.Sort(s)
	s = slices.Compact(s)
	p := make([]uint64, len(s))
	for i, n := range s {
		p[i] = namePrefix(n)
	}
	return &Nodes{names: s, prefixes: p, key: strings.Join(s, "\x00")}
}

// Balance returns the same nodes, marked so that the addresses given this
// set are spread evenly over its alive nodes (Balanced) rather than each
// going to its highest claim. A marked set is another set than the
// unmarked one with the same names.
func (n *Nodes) Balance() *Nodes {
	if n.balanced {
		return n
	}
	return &Nodes{names: n.names, prefixes: n.prefixes, key: "balanced\x01" + n.key, balanced: true}
}

// Balanced tells whether the set is marked by Balance.
func (n *Nodes) Balanced() bool { return n.balanced }

// Names returns the sorted names; the caller must not modify them.
func (n *Nodes) Names() []string { return n.names }

// Contains tells whether name is in the set.
func (n *Nodes) Contains(name string) bool {
	_, ok := slices.BinarySearch(n.names, name)
	return ok
}

// Table holds the owner of every address under one claim version. It is
// not safe for concurrent use.
type Table struct {
	version ClaimVersion
	alive   map[string]bool
	addrs   map[netip.Addr]*entry
	// groups are the distinct eligible sets in use, by Nodes.key.
	groups map[string]*group
	// nodeGroups indexes, per node, the groups that hold it.
	nodeGroups map[string]map[*group]bool
	// owned indexes, per node, the addresses it owns.
	owned map[string]map[netip.Addr]bool
	// dirty are the placed groups (balanced sets under ClaimV3) whose
	// owners must be worked out again before the next read (settle).
	dirty map[*group]bool
}

type group struct {
	nodes *Nodes
	addrs map[netip.Addr]bool
	// ranked holds, for a placed group only, each address's best alive
	// nodes (see balance.go).
	ranked map[netip.Addr]*ranked
}

type entry struct {
	group *group
	owner string // "" when no eligible node is alive
	claim uint64
}

// New returns an empty table ranking with claim version v.
func New(v ClaimVersion) *Table {
	return &Table{
		version:    v,
		alive:      map[string]bool{},
		addrs:      map[netip.Addr]*entry{},
		groups:     map[string]*group{},
		nodeGroups: map[string]map[*group]bool{},
		owned:      map[string]map[netip.Addr]bool{},
		dirty:      map[*group]bool{},
	}
}

// Version is the claim version the table ranks with.
func (t *Table) Version() ClaimVersion { return t.version }

// Owner returns the node that announces addr.
func (t *Table) Owner(addr netip.Addr) (string, bool) {
	t.settle()
	e := t.addrs[addr]
	if e == nil || e.owner == "" {
		return "", false
	}
	return e.owner, true
}

// Owned returns the addresses node owns, in no particular order.
func (t *Table) Owned(node string) []netip.Addr {
	t.settle()
	out := make([]netip.Addr, 0, len(t.owned[node]))
	for a := range t.owned[node] {
		out = append(out, a)
	}
	return out
}

// Alive tells whether the table counts node as alive.
func (t *Table) Alive(node string) bool { return t.alive[node] }

// Addrs returns how many addresses the table holds.
func (t *Table) Addrs() int { return len(t.addrs) }

// SetEligible sets the nodes that may announce addr (selected by an
// advertisement, not excluded, and for externalTrafficPolicy Local holding
// a ready endpoint) and reports whether its owner changed. For a balanced
// set the owners are worked out again at the next read, and it reports
// whether addr changed set.
func (t *Table) SetEligible(addr netip.Addr, nodes *Nodes) bool {
	e := t.addrs[addr]
	if e == nil {
		e = &entry{}
		t.addrs[addr] = e
	}
	if e.group != nil && e.group.nodes.key == nodes.key {
		return false
	}
	t.detach(addr, e)
	g := t.groups[nodes.key]
	if g == nil {
		g = &group{nodes: nodes, addrs: map[netip.Addr]bool{}}
		if t.placed(g) {
			g.ranked = map[netip.Addr]*ranked{}
		}
		t.groups[nodes.key] = g
		for _, n := range nodes.names {
			if t.nodeGroups[n] == nil {
				t.nodeGroups[n] = map[*group]bool{}
			}
			t.nodeGroups[n][g] = true
		}
	}
	g.addrs[addr] = true
	e.group = g
	if g.ranked != nil {
		g.ranked[addr] = &ranked{entry: e}
		t.dirty[g] = true
		return true
	}
	return t.elect(addr, e)
}

// Remove forgets addr.
func (t *Table) Remove(addr netip.Addr) {
	if e := t.addrs[addr]; e != nil {
		t.detach(addr, e)
		t.setOwner(addr, e, "", 0)
		delete(t.addrs, addr)
	}
}

// detach takes addr out of its group, dropping the group when it was the last.
func (t *Table) detach(addr netip.Addr, e *entry) {
	g := e.group
	if g == nil {
		return
	}
	e.group = nil
	delete(g.addrs, addr)
	if g.ranked != nil {
		delete(g.ranked, addr)
		t.dirty[g] = true
	}
	if len(g.addrs) > 0 {
		return
	}
	delete(t.dirty, g)
	delete(t.groups, g.nodes.key)
	for _, n := range g.nodes.names {
		delete(t.nodeGroups[n], g)
		if len(t.nodeGroups[n]) == 0 {
			delete(t.nodeGroups, n)
		}
	}
}

// NodeUp records a speaker joining and returns the addresses whose owner
// changed: those it now owns and, in balanced sets, those moved to make
// room.
func (t *Table) NodeUp(node string) []netip.Addr {
	if t.alive[node] {
		return nil
	}
	t.settle()
	t.alive[node] = true
	var changed []netip.Addr
	prefix := namePrefix(node)
	for g := range t.nodeGroups[node] {
		if g.ranked != nil {
			t.rankUp(g, node)
			continue
		}
		for addr := range g.addrs {
			e := t.addrs[addr]
			if c := t.version.claimFrom(prefix, addr); e.owner == "" || beats(node, c, e.owner, e.claim) {
				t.setOwner(addr, e, node, c)
				changed = append(changed, addr)
			}
		}
	}
	return append(changed, t.settleChanged()...)
}

// NodeDown records a speaker leaving and returns the addresses whose owner
// changed: those it owned, now owned by others or by nobody, and in
// balanced sets those moved to even out the load.
func (t *Table) NodeDown(node string) []netip.Addr {
	if !t.alive[node] {
		return nil
	}
	t.settle()
	delete(t.alive, node)
	var changed []netip.Addr
	for _, addr := range t.Owned(node) {
		if e := t.addrs[addr]; e.group.ranked == nil {
			t.elect(addr, e)
			changed = append(changed, addr)
		}
	}
	for g := range t.nodeGroups[node] {
		if g.ranked != nil {
			t.rankDown(g, node)
		}
	}
	return append(changed, t.settleChanged()...)
}

// elect recomputes addr's owner from scratch and reports a change.
func (t *Table) elect(addr netip.Addr, e *entry) bool {
	before := e.owner
	best, bestClaim := "", uint64(0)
	for i, n := range e.group.nodes.names {
		if !t.alive[n] {
			continue
		}
		if c := t.version.claimFrom(e.group.nodes.prefixes[i], addr); best == "" || beats(n, c, best, bestClaim) {
			best, bestClaim = n, c
		}
	}
	t.setOwner(addr, e, best, bestClaim)
	return best != before
}

func (t *Table) setOwner(addr netip.Addr, e *entry, node string, claim uint64) {
	if e.owner != "" {
		delete(t.owned[e.owner], addr)
		if len(t.owned[e.owner]) == 0 {
			delete(t.owned, e.owner)
		}
	}
	e.owner, e.claim = node, claim
	if node != "" {
		if t.owned[node] == nil {
			t.owned[node] = map[netip.Addr]bool{}
		}
		t.owned[node][addr] = true
	}
}
