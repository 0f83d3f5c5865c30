// Package election decides which node announces each address in layer 2
// mode. It is pure: every speaker feeds it the same facts (which speakers
// are alive, which nodes are eligible for which address) and gets the same
// answer without exchanging a message.
//
// Each node's claim on an address is a stable 64-bit hash of the node's
// name and the address (FNV-1a, which does not change between Go versions
// or machines); the eligible, alive node with the highest claim announces.
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
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
)

// Claim is a node's claim on an address; higher wins, ties go to the
// smaller name.
func Claim(node string, addr netip.Addr) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	b := addr.As16()
	h.Write(b[:])
	return h.Sum64()
}

func beats(a string, ca uint64, b string, cb uint64) bool {
	return ca > cb || (ca == cb && a < b)
}

// Nodes is an immutable set of node names: the nodes eligible to announce
// an address. Build one per distinct set and give it to every address that
// has that set.
type Nodes struct {
	names []string // sorted, no duplicates
	key   string
}

// NewNodes returns the set of the names given.
func NewNodes(names ...string) *Nodes {
	s := slices.Clone(names)
	slices.Sort(s)
	s = slices.Compact(s)
	return &Nodes{names: s, key: strings.Join(s, "\x00")}
}

// Names returns the sorted names; the caller must not modify them.
func (n *Nodes) Names() []string { return n.names }

// Contains tells whether name is in the set.
func (n *Nodes) Contains(name string) bool {
	_, ok := slices.BinarySearch(n.names, name)
	return ok
}

// Table holds the owner of every address. It is not safe for concurrent use.
type Table struct {
	alive map[string]bool
	addrs map[netip.Addr]*entry
	// groups are the distinct eligible sets in use, by Nodes.key.
	groups map[string]*group
	// nodeGroups indexes, per node, the groups that hold it.
	nodeGroups map[string]map[*group]bool
	// owned indexes, per node, the addresses it owns.
	owned map[string]map[netip.Addr]bool
}

type group struct {
	nodes *Nodes
	addrs map[netip.Addr]bool
}

type entry struct {
	group *group
	owner string // "" when no eligible node is alive
	claim uint64
}

// New returns an empty table.
func New() *Table {
	return &Table{
		alive:      map[string]bool{},
		addrs:      map[netip.Addr]*entry{},
		groups:     map[string]*group{},
		nodeGroups: map[string]map[*group]bool{},
		owned:      map[string]map[netip.Addr]bool{},
	}
}

// Owner returns the node that announces addr.
func (t *Table) Owner(addr netip.Addr) (string, bool) {
	e := t.addrs[addr]
	if e == nil || e.owner == "" {
		return "", false
	}
	return e.owner, true
}

// Owned returns the addresses node owns, in no particular order.
func (t *Table) Owned(node string) []netip.Addr {
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
// a ready endpoint) and reports whether its owner changed.
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
	if len(g.addrs) > 0 {
		return
	}
	delete(t.groups, g.nodes.key)
	for _, n := range g.nodes.names {
		delete(t.nodeGroups[n], g)
		if len(t.nodeGroups[n]) == 0 {
			delete(t.nodeGroups, n)
		}
	}
}

// NodeUp records a speaker joining and returns the addresses it now owns.
func (t *Table) NodeUp(node string) []netip.Addr {
	if t.alive[node] {
		return nil
	}
	t.alive[node] = true
	var changed []netip.Addr
	for g := range t.nodeGroups[node] {
		for addr := range g.addrs {
			e := t.addrs[addr]
			if c := Claim(node, addr); e.owner == "" || beats(node, c, e.owner, e.claim) {
				t.setOwner(addr, e, node, c)
				changed = append(changed, addr)
			}
		}
	}
	return changed
}

// NodeDown records a speaker leaving and returns the addresses it owned,
// now owned by others or by nobody.
func (t *Table) NodeDown(node string) []netip.Addr {
	if !t.alive[node] {
		return nil
	}
	delete(t.alive, node)
	changed := t.Owned(node)
	for _, addr := range changed {
		t.elect(addr, t.addrs[addr])
	}
	return changed
}

// elect recomputes addr's owner from scratch and reports a change.
func (t *Table) elect(addr netip.Addr, e *entry) bool {
	before := e.owner
	best, bestClaim := "", uint64(0)
	for _, n := range e.group.nodes.names {
		if !t.alive[n] {
			continue
		}
		if c := Claim(n, addr); best == "" || beats(n, c, best, bestClaim) {
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
