// Package election decides which node announces each address in layer 2
// mode. It is pure: every speaker feeds it the same facts (which speakers
// are alive, which nodes are eligible for which address) and gets the same
// answer without exchanging a message.
//
// Each node's claim on an address is a stable 64-bit hash of the node's
// name and the address (FNV-1a, which does not change between Go versions
// or machines); the eligible, alive node with the highest claim announces.
// A Table keeps the current owner of every address and recomputes only
// what a change affects: a node leaving re-elects just the addresses it
// owned, a node joining compares its claim with each owner's.
package election

import (
	"hash/fnv"
	"net/netip"
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

// Table holds the owner of every address. It is not safe for concurrent use.
type Table struct {
	alive map[string]bool
	addrs map[netip.Addr]*entry
	// byNode indexes, per node, the addresses it is eligible for.
	byNode map[string]map[netip.Addr]bool
}

type entry struct {
	eligible map[string]bool
	owner    string // "" when no eligible node is alive
	claim    uint64
}

// New returns an empty table.
func New() *Table {
	return &Table{alive: map[string]bool{}, addrs: map[netip.Addr]*entry{}, byNode: map[string]map[netip.Addr]bool{}}
}

// Owner returns the node that announces addr.
func (t *Table) Owner(addr netip.Addr) (string, bool) {
	e := t.addrs[addr]
	if e == nil || e.owner == "" {
		return "", false
	}
	return e.owner, true
}

// SetEligible sets the nodes that may announce addr (selected by an
// advertisement, not excluded, and for externalTrafficPolicy Local holding
// a ready endpoint) and reports whether its owner changed.
func (t *Table) SetEligible(addr netip.Addr, nodes []string) bool {
	e := t.addrs[addr]
	if e == nil {
		e = &entry{}
		t.addrs[addr] = e
	}
	for n := range e.eligible {
		delete(t.byNode[n], addr)
	}
	e.eligible = make(map[string]bool, len(nodes))
	for _, n := range nodes {
		e.eligible[n] = true
		if t.byNode[n] == nil {
			t.byNode[n] = map[netip.Addr]bool{}
		}
		t.byNode[n][addr] = true
	}
	return t.elect(addr, e)
}

// Remove forgets addr.
func (t *Table) Remove(addr netip.Addr) {
	if e := t.addrs[addr]; e != nil {
		for n := range e.eligible {
			delete(t.byNode[n], addr)
		}
		delete(t.addrs, addr)
	}
}

// NodeUp records a speaker joining and returns the addresses it now owns.
func (t *Table) NodeUp(node string) []netip.Addr {
	if t.alive[node] {
		return nil
	}
	t.alive[node] = true
	var changed []netip.Addr
	for addr := range t.byNode[node] {
		e := t.addrs[addr]
		if c := Claim(node, addr); e.owner == "" || beats(node, c, e.owner, e.claim) {
			e.owner, e.claim = node, c
			changed = append(changed, addr)
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
	var changed []netip.Addr
	for addr := range t.byNode[node] {
		if e := t.addrs[addr]; e.owner == node {
			t.elect(addr, e)
			changed = append(changed, addr)
		}
	}
	return changed
}

// elect recomputes addr's owner from scratch and reports a change.
func (t *Table) elect(addr netip.Addr, e *entry) bool {
	before := e.owner
	e.owner, e.claim = "", 0
	for n := range e.eligible {
		if !t.alive[n] {
			continue
		}
		if c := Claim(n, addr); e.owner == "" || beats(n, c, e.owner, e.claim) {
			e.owner, e.claim = n, c
		}
	}
	return e.owner != before
}
