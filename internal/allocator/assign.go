package allocator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// candidatePools returns the pools the request may draw new addresses from,
// in order, or an error when there are none.
func (a *Allocator) candidatePools(req *Request) ([]*poolState, *Error) {
	if req.Pool != "" {
		ps := a.pools[req.Pool]
		if ps == nil {
			return nil, &Error{ReasonUnknownPool, fmt.Sprintf("IPPool %q does not exist or is invalid", req.Pool)}
		}
		if !ps.pool.Allows(req.Namespace, req.NamespaceLabels, req.ServiceLabels) {
			return nil, &Error{ReasonNoMatchingPool, fmt.Sprintf("IPPool %q does not allow Services of namespace %q with these labels (spec.allocateTo)", req.Pool, req.Namespace)}
		}
		return []*poolState{ps}, nil
	}
	var out []*poolState
	for _, p := range a.cfg.Pools {
		if p.AutoAssign && p.Allows(req.Namespace, req.NamespaceLabels, req.ServiceLabels) {
			out = append(out, a.pools[p.Name])
		}
	}
	slices.SortStableFunc(out, func(x, y *poolState) int { return cmp.Compare(x.pool.Priority, y.pool.Priority) })
	if len(out) == 0 {
		return nil, &Error{ReasonNoMatchingPool, fmt.Sprintf("no IPPool with autoAssign allows Services of namespace %q with these labels", req.Namespace)}
	}
	return out, nil
}

// Assign gives a Service the addresses its request asks for, keeping those
// it holds whenever the request still allows them. Calling it again with
// the same request changes nothing.
func (a *Allocator) Assign(req Request) Result {
	s := a.services[req.Key]
	var held []netip.Addr
	if s != nil {
		held = s.ips
	} else {
		held = req.Current
	}
	wanted := req.wanted()
	if len(wanted) == 0 {
		return a.outcome(s, &Error{ReasonInvalidRequest, "the Service has no IP family (spec.ipFamilies)"}, nil)
	}
	legacy := s == nil || !req.Local || s.req.Local
	if s == nil {
		s = &service{}
	}
	s.req = req

	// Addresses held before, kept while the request allows them. A held
	// address shared across namespaces is kept although no new Service
	// could join it (see sharing.go), unless this request just turned to
	// externalTrafficPolicy Local.
	kept, lost := a.keepHeld(held, &req, wanted, legacy)
	if req.KeepOnly {
		return a.commit(s, ordered(req.Families, kept), nil, lost)
	}

	// Addresses asked for by name replace what was held.
	chosen, firstErr := a.chooseRequested(&req, wanted, held, legacy)
	if firstErr != nil {
		// Keep what the Service has; it asked for something it cannot get.
		return a.commit(s, ordered(req.Families, kept), firstErr, lost)
	}
	for f, ip := range kept {
		if _, ok := chosen[f]; !ok && len(req.IPs) == 0 {
			chosen[f] = ip
		}
	}

	// New addresses for the families still missing.
	fresh, firstErr := a.allocateMissing(&req, wanted, chosen)
	if firstErr != nil && (req.Policy == RequireDualStack || len(chosen) == 0) {
		for _, ip := range fresh {
			a.unreserve(ip)
		}
		return a.commit(s, ordered(req.Families, kept), firstErr, lost)
	}
	if req.Policy == PreferDualStack && len(chosen) > 0 {
		firstErr = nil // what exists is enough
	}
	return a.commit(s, ordered(req.Families, chosen), firstErr, lost)
}

// chooseRequested checks the addresses the request asks for by name and
// returns them by family, or the first reason one cannot be had.
func (a *Allocator) chooseRequested(req *Request, wanted []Family, held []netip.Addr, legacy bool) (map[Family]netip.Addr, *Error) {
	var firstErr *Error
	fail := func(e *Error) {
		if firstErr == nil {
			firstErr = e
		}
	}
	chosen := map[Family]netip.Addr{}
	for _, ip := range req.IPs {
		f := FamilyOf(ip)
		if !slices.Contains(wanted, f) {
			fail(&Error{ReasonInvalidRequest, fmt.Sprintf("asks for %s, but the Service wants only %s (spec.ipFamilies, spec.ipFamilyPolicy)", ip, familyList(wanted))})
			continue
		}
		if _, dup := chosen[f]; dup {
			fail(&Error{ReasonInvalidRequest, fmt.Sprintf("asks for more than one %s address", f)})
			continue
		}
		if e := a.checkRequested(ip, req, slices.Contains(held, ip), legacy); e != nil {
			fail(e)
			continue
		}
		chosen[f] = ip
	}
	return chosen, firstErr
}

// allocateMissing adds to chosen a new address for every wanted family it
// lacks, and returns those new addresses and the first reason one could
// not be had.
func (a *Allocator) allocateMissing(req *Request, wanted []Family, chosen map[Family]netip.Addr) ([]netip.Addr, *Error) {
	var firstErr *Error
	var fresh []netip.Addr
	for _, f := range wanted {
		if _, ok := chosen[f]; ok {
			continue
		}
		ip, e := a.allocate(req, f)
		if e != nil {
			if firstErr == nil {
				firstErr = e
			}
			continue
		}
		chosen[f] = ip
		fresh = append(fresh, ip)
	}
	return fresh, firstErr
}

// keepHeld returns, per family, the held addresses the request still
// allows, and the held addresses another Service holds first.
func (a *Allocator) keepHeld(held []netip.Addr, req *Request, wanted []Family, legacy bool) (map[Family]netip.Addr, []Loss) {
	kept := map[Family]netip.Addr{}
	var lost []Loss
	for _, ip := range held {
		f := FamilyOf(ip)
		if _, dup := kept[f]; dup || !slices.Contains(wanted, f) {
			continue
		}
		if p := a.cfg.PoolFor(ip); req.Pool != "" && (p == nil || p.Name != req.Pool) {
			continue // the Service now asks for another pool
		}
		if ok, _, _ := a.compatible(ip, req, legacy); !ok {
			lost = append(lost, Loss{Addr: ip, Holder: a.addrs[ip].holders[0].req.Key})
			continue
		}
		kept[f] = ip
	}
	return kept, lost
}

// ordered lists the addresses in the Service's family order.
func ordered(families []Family, by map[Family]netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, f := range families {
		if ip, ok := by[f]; ok {
			out = append(out, ip)
		}
	}
	return out
}

func familyList(fs []Family) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, " and ")
}

// checkRequested checks an address asked for by name.
func (a *Allocator) checkRequested(ip netip.Addr, req *Request, alreadyHeld, legacy bool) *Error {
	p := a.cfg.PoolFor(ip)
	switch {
	case p == nil && alreadyHeld:
		return nil // outside every pool now, but the Service keeps it
	case p == nil:
		return &Error{ReasonRequestedIPNotInAnyPool, fmt.Sprintf("%s is not in any IPPool", ip)}
	case req.Pool != "" && p.Name != req.Pool:
		return &Error{ReasonRequestedIPUnavailable, fmt.Sprintf("%s is in IPPool %q, but the Service asks for IPPool %q", ip, p.Name, req.Pool)}
	case !alreadyHeld && !p.Allows(req.Namespace, req.NamespaceLabels, req.ServiceLabels):
		return &Error{ReasonNoMatchingPool, fmt.Sprintf("%s is in IPPool %q, which does not allow Services of namespace %q with these labels (spec.allocateTo)", ip, p.Name, req.Namespace)}
	case p.AvoidBuggyIPs && buggy(ip):
		return &Error{ReasonRequestedIPUnavailable, fmt.Sprintf("%s ends in .0 or .255, which IPPool %q avoids (spec.avoidBuggyIPs)", ip, p.Name)}
	case !alreadyHeld && a.excluded(ip):
		return a.excludedError(ip, p.Name)
	}
	if ok, reason, msg := a.compatible(ip, req, alreadyHeld && legacy); !ok {
		return &Error{reason, msg}
	}
	return nil
}

// allocate finds an address of family f: first one shared under the
// request's sharing key, then a new one, pool by pool.
func (a *Allocator) allocate(req *Request, f Family) (netip.Addr, *Error) {
	pools, e := a.candidatePools(req)
	if e != nil {
		return netip.Addr{}, e
	}
	if req.SharingKey != "" {
		if ip, ok := a.shareable(req, f, pools); ok {
			return ip, nil
		}
	}
	var names []string
	for _, ps := range pools {
		if len(ps.family(f).ranges) == 0 {
			continue
		}
		names = append(names, ps.pool.Name)
		if ip, ok := a.next(ps, f); ok {
			a.reserve(ip)
			return ip, nil
		}
	}
	if len(names) == 0 {
		return netip.Addr{}, &Error{ReasonNoMatchingPool, fmt.Sprintf("no IPPool the Service may use has %s addresses", f)}
	}
	return netip.Addr{}, &Error{ReasonPoolExhausted, fmt.Sprintf("no %s address left in IPPool %s", f, strings.Join(quoteAll(names), ", "))}
}

// shareable finds an address already held under the request's sharing key
// in one of the pools, that the request may share.
func (a *Allocator) shareable(req *Request, f Family, pools []*poolState) (netip.Addr, bool) {
	var found []netip.Addr
	for addr := range a.shared[req.SharingKey] {
		if FamilyOf(addr) != f {
			continue
		}
		ps := a.poolStateFor(addr)
		if ps == nil || !slices.Contains(pools, ps) || a.excluded(addr) {
			continue
		}
		if ok, _, _ := a.compatible(addr, req, false); ok {
			found = append(found, addr)
		}
	}
	if len(found) == 0 {
		return netip.Addr{}, false
	}
	return slices.MinFunc(found, netip.Addr.Compare), true
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// reserve marks a new address as taken before it is committed to a
// Service, so one Assign never hands out the same address twice.
func (a *Allocator) reserve(ip netip.Addr) { a.hold(ip, reservation) }

// unreserve gives back an address reserve took, as never used: it is
// handed out first next time.
func (a *Allocator) unreserve(ip netip.Addr) {
	if fs, freed := a.drop(ip, reservation); freed && fs != nil {
		fs.returned = append(fs.returned, ip)
	}
}

var reservation = &service{req: Request{Key: "<reservation>"}}

// commit makes final the Service's addresses.
func (a *Allocator) commit(s *service, final []netip.Addr, err *Error, lost []Loss) Result {
	for _, ip := range final {
		a.hold(ip, s)
		if st := a.addrs[ip]; st != nil {
			st.holders = slices.DeleteFunc(st.holders, func(h *service) bool { return h == reservation })
		}
	}
	for _, ip := range s.ips {
		if !slices.Contains(final, ip) {
			a.release(ip, s)
		}
	}
	s.ips = final
	if len(final) > 0 {
		a.services[s.req.Key] = s
	} else {
		delete(a.services, s.req.Key)
	}
	return a.outcome(s, err, lost)
}

func (a *Allocator) outcome(s *service, err *Error, lost []Loss) Result {
	r := Result{Err: err, Lost: lost}
	if s != nil {
		r.IPs = slices.Clone(s.ips)
		for _, ip := range s.ips {
			if a.cfg.PoolFor(ip) == nil {
				r.Outside = append(r.Outside, ip)
			}
			if a.sharedAgainstRules(ip, s) {
				r.Legacy = append(r.Legacy, ip)
			}
		}
	}
	return r
}
