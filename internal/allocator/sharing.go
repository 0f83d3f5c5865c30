package allocator

import (
	"fmt"
	"net/netip"
)

// Sharing across namespaces.
//
// A sharing key is a name that any tenant can write, so it cannot by itself
// be the proof that two Services belong together. Services of one
// namespace share under the rules of sharesWith. A Service of another
// namespace may join an address only when the address's pool sets
// allowSharingAcrossNamespaces and neither Service uses
// externalTrafficPolicy Local: a selector means different pods in another
// namespace, so "Local Services sharing an address select the same pods"
// cannot be checked across namespaces, and a Local Service decides where
// the address may be announced.
//
// Whatever is refused across namespaces is explained without naming the
// other Service, its namespace or its key: a tenant learns only that the
// address is taken by another namespace.
//
// Sharing that began under older rules (before the upgrade that scoped
// keys to namespaces, or before a pool stopped allowing it) is kept: an
// address never moves away from a Service that holds it because of a rule
// change. Such addresses are reported (Result.Legacy) so that the
// controller can say so on the Service. A Service that itself changes so
// that it could no longer join (it turns to Local) loses the address, as
// it would within a namespace.

// compatible tells whether req may take addr given its current holders, and
// if not, why. legacy keeps sharing across namespaces that the rules would
// no longer start, for an address the Service already holds.
func (a *Allocator) compatible(addr netip.Addr, req *Request, legacy bool) (ok bool, reason Reason, msg string) {
	st := a.addrs[addr]
	if st == nil {
		return true, "", ""
	}
	for _, h := range st.holders {
		if h.req.Key == req.Key {
			continue
		}
		if h.req.Namespace != req.Namespace {
			if req.sharesWith(&h.req) && (legacy || a.mayShareAcross(addr, req, &h.req)) {
				continue
			}
			// The same reason whatever the other Service is like, so
			// that the reason says nothing about it either.
			return false, ReasonRequestedIPUnavailable, a.otherNamespaceMessage(addr, req)
		}
		if !req.sharesWith(&h.req) {
			r := ReasonRequestedIPUnavailable
			if req.SharingKey != "" && h.req.SharingKey != "" {
				r = ReasonSharingConflict
			}
			return false, r, fmt.Sprintf("%s is in use: %s", addr, req.conflictReason(&h.req))
		}
	}
	return true, "", ""
}

// mayShareAcross tells whether Services r and o of different namespaces
// may start sharing addr, their sharing keys and ports aside.
func (a *Allocator) mayShareAcross(addr netip.Addr, r, o *Request) bool {
	p := a.cfg.PoolFor(addr)
	return p != nil && p.AllowSharingAcrossNamespaces && !r.Local && !o.Local
}

// otherNamespaceMessage explains a refusal caused by a Service of another
// namespace. It must name nothing of that Service: the text depends only
// on the address, its pool and the request.
func (a *Allocator) otherNamespaceMessage(addr netip.Addr, req *Request) string {
	p := a.cfg.PoolFor(addr)
	switch {
	case req.SharingKey == "":
		return fmt.Sprintf("%s is in use by a Service of another namespace", addr)
	case p == nil || !p.AllowSharingAcrossNamespaces:
		return fmt.Sprintf("%s is in use by a Service of another namespace; sharing keys (%s) match only Services of the same namespace unless the address's IPPool sets spec.allowSharingAcrossNamespaces", addr, annotationHint)
	case req.Local:
		return fmt.Sprintf("%s is in use by a Service of another namespace; a Service with externalTrafficPolicy: Local shares addresses only within its namespace", addr)
	}
	return fmt.Sprintf("%s is in use by a Service of another namespace and cannot be shared with it: sharing across namespaces needs the same sharing key (%s), no port and protocol used by both, and externalTrafficPolicy: Cluster on both", addr, annotationHint)
}

// sharedAgainstRules tells whether s holds addr together with a Service of
// another namespace that could not join it under today's rules.
func (a *Allocator) sharedAgainstRules(addr netip.Addr, s *service) bool {
	st := a.addrs[addr]
	if st == nil {
		return false
	}
	for _, h := range st.holders {
		if h == s || h == reservation || h.req.Namespace == s.req.Namespace {
			continue
		}
		if !a.mayShareAcross(addr, &s.req, &h.req) {
			return true
		}
	}
	return false
}
