package election

import (
	"net/netip"
	"slices"
)

// Balanced placement (ClaimV3, sets marked by Nodes.Balance).
//
// The addresses of one eligible set go to its alive nodes so that each
// node holds ⌊K/N⌋ of them and K mod N nodes one more (K addresses, N
// alive nodes), so none more than ⌈K/N⌉. Which node holds which address
// is the outcome of deferred acceptance (Gale and Shapley) over the
// claims: addresses propose in the order of their claims, each node keeps
// its best ⌊K/N⌋ offers, and the K mod N extra seats go to the nodes with
// the best next offers (see place). The choice rule is substitutable, so
// any order of proposals gives the same outcome, and because both sides
// rank by the same claim of the pair it is the only stable one. It
// therefore depends only on the alive nodes, the addresses and the
// claims: every speaker computes the same owners without talking, and a
// restarted speaker agrees with the others.
//
// An address whose best node has room goes there, as under the hash
// ranking; addresses move away from their best node only as far as needed
// to respect the limits. See README.md for how many addresses an event
// moves.

// Balanced returns the owner of every address when addrs are placed over
// nodes (all alive) with claim version v. It works from scratch; a Table
// with a balanced set gives the same owners incrementally.
func Balanced(v ClaimVersion, addrs []netip.Addr, nodes []string) map[netip.Addr]string {
	set := NewNodes(nodes...)
	out := make(map[netip.Addr]string, len(addrs))
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	if len(set.names) == 0 {
		return out
	}
	lists := make([][]rank, len(addrs))
	for i, a := range addrs {
		l := make([]rank, len(set.names))
		for j := range set.names {
			l[j] = rank{node: int32(j), claim: v.claimFrom(set.prefixes[j], a)}
		}
		slices.SortFunc(l, compareRank)
		lists[i] = l
	}
	pos := make([]int, len(addrs))
	owner := place(addrs, len(set.names), nil, func(i int) (int, uint64, bool) {
		if pos[i] == len(lists[i]) {
			return 0, 0, false
		}
		r := lists[i][pos[i]]
		pos[i]++
		return int(r.node), r.claim, true
	})
	for i, a := range addrs {
		if owner[i] >= 0 {
			out[a] = set.names[owner[i]]
		}
	}
	return out
}

// Capacity is the most addresses one of n alive nodes holds when k
// addresses are placed in balance: ⌈k/n⌉.
func Capacity(k, n int) int {
	if n == 0 {
		return 0
	}
	return (k + n - 1) / n
}

// seat is where an address starts in place: a node index (-1: none) and
// that node's claim on it.
type seat struct {
	node  int
	claim uint64
}

// rank is a node's claim on an address; node indexes the set's names.
type rank struct {
	node  int32
	claim uint64
}

// compareRank orders an address's nodes best first: higher claim, then
// smaller name (names are sorted, so smaller index).
func compareRank(a, b rank) int {
	switch {
	case a.claim > b.claim:
		return -1
	case a.claim < b.claim:
		return 1
	}
	return int(a.node - b.node)
}

// offer is an address held by a node, with the node's claim on it.
type offer struct {
	claim uint64
	i     int // index into the addresses being placed
}

// worse tells whether a node prefers y to x: lower claim, then larger
// address.
func worse(x, y offer, addrs []netip.Addr) bool {
	if x.claim != y.claim {
		return x.claim < y.claim
	}
	return addrs[x.i].Compare(addrs[y.i]) > 0
}

// place runs deferred acceptance: each address proposes to its nodes in
// the order next gives (node index among n, that node's claim, false when
// it has no more) and is held or rejected; it returns each address's node,
// -1 for none.
//
// With K addresses, each node keeps its best ⌊K/n⌋ offers, and K mod n
// nodes may keep one more: the ones whose next best offer (their
// marginal offer) is best among all nodes' (the pool of extra seats).
// Sharing the extra seats this way, rather than giving every node
// ⌈K/n⌉, keeps the placement from loosening all at once when a node
// leaves and ⌈K/n⌉ grows by one, which would send every address the bound
// had pushed off its first node back home.
//
// start, when not nil, lets the run begin part way: start[i] is a node
// that address i has already proposed to as its first choice (next then
// continues after it), with that node's claim; -1 for an address that
// proposes from the beginning. Starting from first choices is a state
// that a run from the beginning passes through (every such address
// proposed first, nobody rejected yet, the nodes and the pool then
// reject what does not fit), and the outcome does not depend on the order
// of proposals, so the result is the same as from scratch.
func place(addrs []netip.Addr, n int, start []seat, next func(i int) (int, uint64, bool)) []int {
	p := newPlacement(addrs, n)
	for i := range addrs {
		if start != nil && start[i].node >= 0 {
			j := start[i].node
			p.held[j] = heapPush(p.held[j], offer{start[i].claim, i}, addrs)
			p.owner[i] = j
			continue
		}
		p.queue = append(p.queue, i)
	}
	p.trim()
	for len(p.queue) > 0 {
		i := p.queue[len(p.queue)-1]
		p.queue = p.queue[:len(p.queue)-1]
		j, claim, ok := next(i)
		if !ok {
			continue
		}
		p.propose(j, offer{claim, i})
	}
	return p.owner
}

// placement is the state of one run of place.
type placement struct {
	addrs []netip.Addr
	owner []int
	queue []int // addresses to propose next
	// held[j] is node j's offers as a heap, its worst on top.
	held [][]offer
	base int // ⌊K/n⌋: what every node may hold
	// extra are the nodes holding base+1, as a heap whose top is the node
	// with the worst marginal offer (held[j][0]); at most seats of them.
	extra []int
	at    []int // at[j] is j's index in extra, -1 if not there
	seats int   // K mod n
}

func newPlacement(addrs []netip.Addr, n int) *placement {
	p := &placement{addrs: addrs, owner: make([]int, len(addrs)), queue: make([]int, 0, len(addrs)),
		held: make([][]offer, n), at: make([]int, n)}
	for i := range p.owner {
		p.owner[i] = -1
	}
	for j := range p.at {
		p.at[j] = -1
	}
	if n > 0 {
		p.base, p.seats = len(addrs)/n, len(addrs)%n
	}
	return p
}

// reject takes node j's worst offer away and queues its address.
func (p *placement) reject(j int) {
	h := p.held[j]
	p.owner[h[0].i] = -1
	p.queue = append(p.queue, h[0].i)
	h[0] = h[len(h)-1]
	p.held[j] = h[:len(h)-1]
	heapDown(p.held[j], 0, p.addrs)
}

// trim makes the start state fit: no node above base+1, at most seats
// nodes at base+1, those with the best marginal offers.
func (p *placement) trim() {
	for j := range p.held {
		for len(p.held[j]) > p.base+1 {
			p.reject(j)
		}
		if len(p.held[j]) == p.base+1 {
			p.enter(j)
		}
	}
	for len(p.extra) > p.seats {
		j := p.extra[0]
		p.leave(j)
		p.reject(j)
	}
}

// propose offers o to node j.
func (p *placement) propose(j int, o offer) {
	h := p.held[j]
	switch {
	case len(h) < p.base:
		p.held[j] = heapPush(h, o, p.addrs)
		p.owner[o.i] = j
	case len(h) > p.base: // j holds an extra seat: swap or refuse
		if !worse(h[0], o, p.addrs) {
			p.queue = append(p.queue, o.i)
			return
		}
		p.reject(j)
		p.held[j] = heapPush(p.held[j], o, p.addrs)
		p.owner[o.i] = j
		p.fix(j)
	case p.takesSeat(j, o):
		p.held[j] = heapPush(h, o, p.addrs)
		p.owner[o.i] = j
		p.enter(j)
	case p.base > 0 && worse(h[0], o, p.addrs):
		p.reject(j)
		p.held[j] = heapPush(p.held[j], o, p.addrs)
		p.owner[o.i] = j
	default:
		p.queue = append(p.queue, o.i)
	}
}

// takesSeat tells whether node j, holding base offers, gets an extra
// seat to keep o as well, freeing one if needed: its marginal offer would
// be the worse of o and its worst, and it must beat the worst marginal
// offer of the nodes holding seats.
func (p *placement) takesSeat(j int, o offer) bool {
	if p.seats == 0 {
		return false
	}
	if len(p.extra) < p.seats {
		return true
	}
	m := o
	if h := p.held[j]; len(h) > 0 && worse(h[0], o, p.addrs) {
		m = h[0]
	}
	k := p.extra[0]
	if !worse(p.held[k][0], m, p.addrs) {
		return false
	}
	p.leave(k)
	p.reject(k)
	return true
}

// enter, leave and fix keep extra, a heap of nodes by marginal offer.
func (p *placement) enter(j int) {
	p.at[j] = len(p.extra)
	p.extra = append(p.extra, j)
	p.up(len(p.extra) - 1)
}

func (p *placement) leave(j int) {
	x, last := p.at[j], len(p.extra)-1
	p.swap(x, last)
	p.extra = p.extra[:last]
	p.at[j] = -1
	if x < last {
		p.down(x)
		p.up(x)
	}
}

func (p *placement) fix(j int) { p.down(p.at[j]) }

func (p *placement) less(x, y int) bool {
	return worse(p.held[p.extra[x]][0], p.held[p.extra[y]][0], p.addrs)
}

func (p *placement) swap(x, y int) {
	p.extra[x], p.extra[y] = p.extra[y], p.extra[x]
	p.at[p.extra[x]], p.at[p.extra[y]] = x, y
}

func (p *placement) up(x int) {
	for x > 0 {
		parent := (x - 1) / 2
		if !p.less(x, parent) {
			return
		}
		p.swap(x, parent)
		x = parent
	}
}

func (p *placement) down(x int) {
	for {
		l, m := 2*x+1, x
		if l < len(p.extra) && p.less(l, m) {
			m = l
		}
		if r := l + 1; r < len(p.extra) && p.less(r, m) {
			m = r
		}
		if m == x {
			return
		}
		p.swap(x, m)
		x = m
	}
}

func heapPush(h []offer, o offer, addrs []netip.Addr) []offer {
	h = append(h, o)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !worse(h[i], h[p], addrs) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapDown(h []offer, i int, addrs []netip.Addr) {
	for {
		l, m := 2*i+1, i
		if l < len(h) && worse(h[l], h[m], addrs) {
			m = l
		}
		if r := l + 1; r < len(h) && worse(h[r], h[m], addrs) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// ranked is what a Table keeps per address of a placed group: the best
// alive nodes of the set for it, best first. complete says the list holds
// every alive node of the set; otherwise it holds the best len(list) of
// them, and nil with complete false means not worked out yet.
type ranked struct {
	entry    *entry
	list     []rank
	complete bool
}

// firstRanks is how many nodes a list holds when first worked out; nearly
// every address is placed on one of its first few.
const firstRanks = 6

// placed tells whether g's owners come from balanced placement.
func (t *Table) placed(g *group) bool {
	return g.nodes.balanced && t.version >= ClaimV3
}

// rankAll works out the best want alive nodes of g for addr; slot[j] is
// negative when g's node j is down.
func (t *Table) rankAll(g *group, addr netip.Addr, r *ranked, want int, slot []int32) {
	r.list = r.list[:0]
	r.complete = true
	for j, s := range slot {
		if s < 0 {
			continue
		}
		c := rank{node: int32(j), claim: t.version.claimFrom(g.nodes.prefixes[j], addr)}
		if len(r.list) == want {
			if compareRank(c, r.list[want-1]) > 0 {
				r.complete = false
				continue
			}
			r.list = r.list[:want-1]
			r.complete = false
		}
		at, _ := slices.BinarySearchFunc(r.list, c, compareRank)
		r.list = slices.Insert(r.list, at, c)
	}
}

// rankUp adds node, now alive, to the lists of g that it enters, and
// marks g to be placed again.
func (t *Table) rankUp(g *group, node string) {
	j, _ := slices.BinarySearch(g.nodes.names, node)
	prefix := g.nodes.prefixes[j]
	for addr, r := range g.ranked {
		if r.list == nil && !r.complete {
			continue // worked out when needed, with node alive
		}
		c := rank{node: int32(j), claim: t.version.claimFrom(prefix, addr)}
		if !r.complete && (len(r.list) == 0 || compareRank(c, r.list[len(r.list)-1]) > 0) {
			continue // below the best it holds: the list stays exact
		}
		at, _ := slices.BinarySearchFunc(r.list, c, compareRank)
		r.list = slices.Insert(r.list, at, c)
		if len(r.list) > 2*firstRanks {
			r.list, r.complete = r.list[:2*firstRanks], false
		}
	}
	t.dirty[g] = true
}

// rankDown drops node, now down, from the lists of g and marks g to be
// placed again.
func (t *Table) rankDown(g *group, node string) {
	j, _ := slices.BinarySearch(g.nodes.names, node)
	for _, r := range g.ranked {
		r.list = slices.DeleteFunc(r.list, func(c rank) bool { return int(c.node) == j })
	}
	t.dirty[g] = true
}

// settle places every dirty group again.
func (t *Table) settle() {
	if len(t.dirty) > 0 {
		t.settleChanged()
	}
}

// settleChanged places every dirty group again and returns the addresses
// whose owner changed.
func (t *Table) settleChanged() []netip.Addr {
	var changed []netip.Addr
	for g := range t.dirty {
		changed = t.placeGroup(g, changed)
		delete(t.dirty, g)
	}
	return changed
}

// placeGroup works out the owners of g's addresses and appends those that
// changed to changed.
func (t *Table) placeGroup(g *group, changed []netip.Addr) []netip.Addr {
	alive := make([]int32, 0, len(g.nodes.names)) // alive node i is names[alive[i]]
	slot := make([]int32, len(g.nodes.names))     // the inverse, -1 if down
	for j, name := range g.nodes.names {
		slot[j] = -1
		if t.alive[name] {
			slot[j] = int32(len(alive))
			alive = append(alive, int32(j))
		}
	}
	addrs := make([]netip.Addr, 0, len(g.ranked))
	rs := make([]*ranked, 0, len(g.ranked))
	for a, r := range g.ranked {
		addrs = append(addrs, a)
		rs = append(rs, r)
	}
	// Carry forward every address that its owner holds as its first
	// choice: only the others propose again (see place).
	pos := make([]int, len(addrs))
	start := make([]seat, len(addrs))
	for i, r := range rs {
		start[i].node = -1
		if r.entry.owner == "" || len(alive) == 0 {
			continue
		}
		if len(r.list) == 0 && !r.complete {
			t.rankAll(g, addrs[i], r, firstRanks, slot)
		}
		if len(r.list) > 0 && g.nodes.names[r.list[0].node] == r.entry.owner {
			start[i] = seat{int(slot[r.list[0].node]), r.list[0].claim}
			pos[i] = 1
		}
	}
	owner := place(addrs, len(alive), start, func(i int) (int, uint64, bool) {
		r := rs[i]
		for pos[i] == len(r.list) {
			if r.complete || len(alive) == 0 {
				return 0, 0, false
			}
			t.rankAll(g, addrs[i], r, max(firstRanks, 2*len(r.list)), slot)
		}
		c := r.list[pos[i]]
		pos[i]++
		return int(slot[c.node]), c.claim, true
	})
	for i, a := range addrs {
		node, claim := "", uint64(0)
		if owner[i] >= 0 {
			node = g.nodes.names[alive[owner[i]]]
			claim = rs[i].list[pos[i]-1].claim
		}
		if e := rs[i].entry; e.owner != node {
			t.setOwner(a, e, node, claim)
			changed = append(changed, a)
		}
	}
	return changed
}
