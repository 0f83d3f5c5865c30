package election

import (
	"net/netip"
)

// Ranking is the speaker's view of who owns what: a Table under the
// claim version the cluster agreed on, and, while the cluster changes
// version, the Table of the version before.
//
// Speakers learn that the agreed version changed at slightly different
// moments (when each hears that the last speaker of the old version left,
// or that one joined), so for a while some rank with the old version and
// some with the new. A speaker that has switched must not answer for an
// address that one which has not would give to another node. So while a
// switch is under way a node owns only the addresses it owns under both
// versions; the others are answered by nobody. The speaker ends the
// switch (Finish) once every speaker has surely heard of the change. Each
// Table still holds its full answer.
//
// It is not safe for concurrent use.
type Ranking struct {
	cur  *Table
	prev *Table // nil unless switching
}

// NewRanking returns an empty ranking under claim version v.
func NewRanking(v ClaimVersion) *Ranking { return &Ranking{cur: New(v)} }

// Version is the claim version in force (the one being switched to).
func (r *Ranking) Version() ClaimVersion { return r.cur.Version() }

// Switching tells whether a switch is under way, and from which version.
func (r *Ranking) Switching() (from ClaimVersion, ok bool) {
	if r.prev == nil {
		return 0, false
	}
	return r.prev.Version(), true
}

// Switch starts ranking with v. Until Finish, a node owns only the
// addresses it owns under both v and the version in force before. Switching
// again before Finish keeps the two most recent versions. Switching to
// the version in force does nothing.
func (r *Ranking) Switch(v ClaimVersion) {
	if v == r.cur.Version() {
		return
	}
	r.prev, r.cur = r.cur, r.cur.rebuild(v)
}

// Finish ends a switch: from now on the version in force alone decides.
func (r *Ranking) Finish() { r.prev = nil }

// SetEligible sets the nodes that may announce addr (Table.SetEligible).
func (r *Ranking) SetEligible(addr netip.Addr, nodes *Nodes) {
	r.cur.SetEligible(addr, nodes)
	if r.prev != nil {
		r.prev.SetEligible(addr, nodes)
	}
}

// Remove forgets addr.
func (r *Ranking) Remove(addr netip.Addr) {
	r.cur.Remove(addr)
	if r.prev != nil {
		r.prev.Remove(addr)
	}
}

// NodeUp records a speaker joining.
func (r *Ranking) NodeUp(node string) {
	r.cur.NodeUp(node)
	if r.prev != nil {
		r.prev.NodeUp(node)
	}
}

// NodeDown records a speaker leaving.
func (r *Ranking) NodeDown(node string) {
	r.cur.NodeDown(node)
	if r.prev != nil {
		r.prev.NodeDown(node)
	}
}

// Owner returns the node that ranks first for addr under the version in
// force, and whether it may announce it now (during a switch: only if it
// ranks first under both versions).
func (r *Ranking) Owner(addr netip.Addr) (node string, announces bool) {
	node, ok := r.cur.Owner(addr)
	if !ok {
		return "", false
	}
	if r.prev != nil {
		if before, _ := r.prev.Owner(addr); before != node {
			return node, false
		}
	}
	return node, true
}

// Owned returns the addresses node announces now, in no particular order.
func (r *Ranking) Owned(node string) []netip.Addr {
	owned := r.cur.Owned(node)
	if r.prev == nil {
		return owned
	}
	out := owned[:0]
	for _, a := range owned {
		if before, _ := r.prev.Owner(a); before == node {
			out = append(out, a)
		}
	}
	return out
}

// rebuild returns a table of version v with t's addresses, eligible sets
// and alive nodes.
func (t *Table) rebuild(v ClaimVersion) *Table {
	n := New(v)
	for node := range t.alive {
		n.alive[node] = true
	}
	for addr, e := range t.addrs {
		if e.group != nil {
			n.SetEligible(addr, e.group.nodes)
		}
	}
	return n
}
