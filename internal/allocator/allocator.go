package allocator

import (
	"cmp"
	"math/big"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
)

// Reason says why a Service does not have all the addresses it wants. The
// values are the reasons of the Service's ironlb.io/IPAllocated condition.
type Reason string

const (
	ReasonPoolExhausted           Reason = "PoolExhausted"
	ReasonNoMatchingPool          Reason = "NoMatchingPool"
	ReasonUnknownPool             Reason = "UnknownPool"
	ReasonRequestedIPUnavailable  Reason = "RequestedIPUnavailable"
	ReasonRequestedIPNotInAnyPool Reason = "RequestedIPNotInAnyPool"
	ReasonSharingConflict         Reason = "SharingConflict"
	ReasonInvalidRequest          Reason = "InvalidRequest"
)

// Error explains a failed or partial assignment.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Message }

// Loss is an address a Service showed in its status but could not keep,
// because another Service held it first and they may not share it.
type Loss struct {
	Addr   netip.Addr
	Holder string
}

// Result is the outcome of Assign.
type Result struct {
	// IPs are the addresses the Service holds now, in its family order.
	IPs []netip.Addr
	// Err is set when the Service lacks an address it wants or asked for.
	// It may hold addresses anyway: those it had are not taken away.
	Err *Error
	// Outside are held addresses that no valid pool contains any more.
	Outside []netip.Addr
	// Lost lists addresses of the request's Current that went to others.
	Lost []Loss
	// Legacy are held addresses shared with a Service of another namespace
	// that the rules would not let join today (the pool does not allow
	// sharing across namespaces, or one of them is Local): the sharing
	// began before and is kept, and nobody new may join it.
	Legacy []netip.Addr
}

// Allocator holds every assignment. It is not safe for concurrent use.
type Allocator struct {
	cfg      *config.Config
	pools    map[string]*poolState
	addrs    map[netip.Addr]*addrState
	services map[string]*service
	// cooling holds released addresses waiting in a pool's recycled queue.
	cooling map[netip.Addr]bool
	// shared indexes held addresses by the sharing key of their first holder.
	shared map[string]map[netip.Addr]bool
	// excl are addresses never handed out anew (exclusions.go).
	excl exclusions
}

type service struct {
	req Request
	ips []netip.Addr
}

type addrState struct {
	holders []*service // in the order they took the address
	key     string     // sharing key of the first holder
}

type poolState struct {
	pool *config.Pool
	fams [2]*familyState // IPv4, IPv6
}

func (p *poolState) family(f Family) *familyState {
	if f == IPv4 {
		return p.fams[0]
	}
	return p.fams[1]
}

type familyState struct {
	ranges []iprange.Range // sorted
	// The cursor: next is the next address to look at in ranges[i].
	i    int
	next netip.Addr
	// recycled is a FIFO of released addresses; head is its first entry.
	recycled []netip.Addr
	head     int
	// returned holds addresses reserved by an Assign that then failed;
	// they were never used, so they are handed out first.
	returned []netip.Addr
	assigned int64
	total    *big.Int
}

// New returns an allocator for a configuration.
func New(cfg *config.Config) *Allocator {
	a := &Allocator{addrs: map[netip.Addr]*addrState{}, services: map[string]*service{}, cooling: map[netip.Addr]bool{}, shared: map[string]map[netip.Addr]bool{}}
	a.SetConfig(cfg)
	return a
}

// SetConfig switches to a new configuration. Assignments are kept, also
// those whose addresses no pool holds any more; pools whose addresses and
// avoidBuggyIPs did not change keep their cursors and queues.
func (a *Allocator) SetConfig(cfg *config.Config) {
	old := a.pools
	a.cfg = cfg
	a.pools = map[string]*poolState{}
	var rebuilt []*poolState
	for _, p := range cfg.Pools {
		usable := a.usableRanges(p)
		if o := old[p.Name]; o != nil && o.pool.AvoidBuggyIPs == p.AvoidBuggyIPs && o.sameRanges(usable) {
			o.pool = p
			a.pools[p.Name] = o
			continue
		}
		ps := &poolState{pool: p}
		for i, f := range []Family{IPv4, IPv6} {
			fs := &familyState{total: new(big.Int)}
			for _, r := range usable {
				if FamilyOf(r.First) == f {
					fs.ranges = append(fs.ranges, r)
					fs.total.Add(fs.total, usableSize(r, p.AvoidBuggyIPs))
				}
			}
			if len(fs.ranges) > 0 {
				fs.next = fs.ranges[0].First
			}
			ps.fams[i] = fs
		}
		a.pools[p.Name] = ps
		rebuilt = append(rebuilt, ps)
	}
	if len(rebuilt) == 0 {
		return
	}
	// Rebuilt pools count their held addresses afresh and take over the
	// cooling addresses inside them, oldest first.
	for addr := range a.addrs {
		if ps := a.poolStateFor(addr); ps != nil && slices.Contains(rebuilt, ps) && !a.excluded(addr) {
			ps.family(FamilyOf(addr)).assigned++
		}
	}
	var queued []netip.Addr
	for _, o := range sortedPools(old) {
		for _, fs := range o.fams {
			queued = append(queued, fs.recycled[fs.head:]...)
		}
	}
	for _, addr := range queued {
		if !a.cooling[addr] {
			continue
		}
		if ps := a.poolStateFor(addr); ps != nil && slices.Contains(rebuilt, ps) {
			fs := ps.family(FamilyOf(addr))
			fs.recycled = append(fs.recycled, addr)
		} else if ps == nil {
			delete(a.cooling, addr)
		}
	}
}

func sortedPools(m map[string]*poolState) []*poolState {
	out := make([]*poolState, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y *poolState) int { return cmp.Compare(x.pool.Name, y.pool.Name) })
	return out
}

func (a *Allocator) poolStateFor(addr netip.Addr) *poolState {
	if p := a.cfg.PoolFor(addr); p != nil {
		return a.pools[p.Name]
	}
	return nil
}

// buggy tells whether avoidBuggyIPs excludes the address.
func buggy(addr netip.Addr) bool {
	if !addr.Is4() {
		return false
	}
	last := addr.As4()[3]
	return last == 0 || last == 255
}

// usableSize counts the addresses of r that may be handed out.
func usableSize(r iprange.Range, avoidBuggy bool) *big.Int {
	n := r.Size()
	if !avoidBuggy || !r.Is4() {
		return n
	}
	// Addresses ending in .0 or .255 in [first, last]: count multiples of
	// 256 (x.x.x.0) and numbers ≡ 255 mod 256 in the range.
	f, l := u32(r.First), u32(r.Last)
	zeros := l/256 - f/256
	if f%256 == 0 {
		zeros++
	}
	nines := (l+1)/256 - (f+1)/256
	if (f+1)%256 == 0 {
		nines++
	}
	return n.Sub(n, big.NewInt(int64(zeros)+int64(nines)))
}

func u32(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// next hands out the pool's next address of the family, or false.
func (a *Allocator) next(ps *poolState, f Family) (netip.Addr, bool) {
	fs := ps.family(f)
	for len(fs.returned) > 0 {
		addr := fs.returned[len(fs.returned)-1]
		fs.returned = fs.returned[:len(fs.returned)-1]
		if a.addrs[addr] == nil && a.poolStateFor(addr) == ps && !a.excluded(addr) {
			return addr, true
		}
	}
	for fs.i < len(fs.ranges) {
		addr := fs.next
		if addr == fs.ranges[fs.i].Last {
			fs.i++
			if fs.i < len(fs.ranges) {
				fs.next = fs.ranges[fs.i].First
			}
		} else {
			fs.next = addr.Next()
		}
		if a.addrs[addr] == nil && !a.cooling[addr] && !(ps.pool.AvoidBuggyIPs && buggy(addr)) {
			return addr, true
		}
	}
	for fs.head < len(fs.recycled) {
		addr := fs.recycled[fs.head]
		fs.head++
		delete(a.cooling, addr)
		if a.addrs[addr] == nil && !(ps.pool.AvoidBuggyIPs && buggy(addr)) && a.poolStateFor(addr) == ps && !a.excluded(addr) {
			a.compact(fs)
			return addr, true
		}
	}
	a.compact(fs)
	return netip.Addr{}, false
}

// compact drops the consumed head of a recycled queue once it dominates.
func (a *Allocator) compact(fs *familyState) {
	if fs.head > 64 && fs.head*2 > len(fs.recycled) {
		fs.recycled = slices.Clone(fs.recycled[fs.head:])
		fs.head = 0
	}
}

// ahead tells whether the cursor has yet to reach addr.
func (fs *familyState) ahead(addr netip.Addr) bool {
	return fs.i < len(fs.ranges) && fs.next.Compare(addr) <= 0
}

func (a *Allocator) hold(addr netip.Addr, s *service) {
	st := a.addrs[addr]
	if st == nil {
		st = &addrState{key: s.req.SharingKey}
		a.addrs[addr] = st
		if ps := a.poolStateFor(addr); ps != nil && !a.excluded(addr) {
			ps.family(FamilyOf(addr)).assigned++
		}
	}
	if st.key == "" && s.req.SharingKey != "" { // taken over from a reservation
		st.key = s.req.SharingKey
	}
	if st.key != "" {
		if a.shared[st.key] == nil {
			a.shared[st.key] = map[netip.Addr]bool{}
		}
		a.shared[st.key][addr] = true
	}
	if !slices.Contains(st.holders, s) {
		st.holders = append(st.holders, s)
	}
}

// drop removes s from the holders of addr. When nobody holds it any more,
// it returns the family state of the pool the address is in (nil when it
// is in none), for the caller to queue the address where it belongs.
func (a *Allocator) drop(addr netip.Addr, s *service) (fs *familyState, freed bool) {
	st := a.addrs[addr]
	if st == nil {
		return nil, false
	}
	st.holders = slices.DeleteFunc(st.holders, func(h *service) bool { return h == s })
	if len(st.holders) > 0 {
		return nil, false
	}
	delete(a.addrs, addr)
	if m := a.shared[st.key]; m != nil {
		delete(m, addr)
		if len(m) == 0 {
			delete(a.shared, st.key)
		}
	}
	if ps := a.poolStateFor(addr); ps != nil {
		fs = ps.family(FamilyOf(addr))
		if !a.excluded(addr) {
			fs.assigned--
		}
	}
	return fs, true
}

// release gives up s's hold on addr; a freed address cools down in the
// recycled queue unless the cursor has yet to reach it.
func (a *Allocator) release(addr netip.Addr, s *service) {
	if fs, freed := a.drop(addr, s); freed && fs != nil && !fs.ahead(addr) && !a.cooling[addr] {
		a.cooling[addr] = true
		fs.recycled = append(fs.recycled, addr)
	}
}

// Release gives up every address of a Service.
func (a *Allocator) Release(key string) {
	s := a.services[key]
	if s == nil {
		return
	}
	for _, addr := range s.ips {
		a.release(addr, s)
	}
	delete(a.services, key)
}

// Holders returns the Services holding an address, first holder first.
func (a *Allocator) Holders(addr netip.Addr) []string {
	var out []string
	if st := a.addrs[addr]; st != nil {
		for _, h := range st.holders {
			out = append(out, h.req.Key)
		}
	}
	return out
}

// IPs returns the addresses a Service holds.
func (a *Allocator) IPs(key string) []netip.Addr {
	if s := a.services[key]; s != nil {
		return slices.Clone(s.ips)
	}
	return nil
}

// Counts are one family's figures of a pool.
type Counts struct {
	Total, Assigned, Available *big.Int
}

// Counts returns a pool's figures for a family; ok is false when the pool
// does not exist or has no address of the family.
func (a *Allocator) Counts(pool string, f Family) (Counts, bool) {
	ps := a.pools[pool]
	if ps == nil || len(ps.family(f).ranges) == 0 {
		return Counts{}, false
	}
	fs := ps.family(f)
	assigned := big.NewInt(fs.assigned)
	return Counts{Total: new(big.Int).Set(fs.total), Assigned: assigned, Available: new(big.Int).Sub(fs.total, assigned)}, true
}
