package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// peerEvent records a session's state change. GoBGP calls it from its
// own goroutine.
func (s *Server) peerEvent(r *api.WatchEventResponse) {
	ev := r.GetPeer()
	if ev == nil || ev.Peer == nil || ev.Peer.State == nil {
		return
	}
	addr, err := netip.ParseAddr(ev.Peer.State.NeighborAddress)
	if err != nil {
		return
	}
	state := stateOf(ev.Peer.State.SessionState)
	s.mu.Lock()
	name, ok := s.byAddress[addr.Unmap()]
	st := s.status[name]
	changed := ok && st != nil && st.State != state && st.State != StateDisabled
	refuse, problem := false, ""
	if a := s.applied[name]; ok && st != nil && a != nil && ev.Peer.State.AdminState == api.PeerState_PFX_CT && s.refused[name].at.Before(a.added) {
		// GoBGP closed the session with a NOTIFICATION (Cease, maximum
		// number of prefixes reached) and keeps it down.
		st.Message = fmt.Sprintf("the router sent more than %d prefixes (maxReceivedPrefixes), so the session was closed with a NOTIFICATION and is tried again after its connect retry; the speaker uses none of the routes it receives: filter them on the router (a deny-all outbound route-map towards the speakers) or raise maxReceivedPrefixes", a.MaxReceived)
		s.refused[name] = refusal{at: time.Now(), session: a.Session}
		refuse = true
	} else if changed && state == StateEstablished && a != nil && a.ASN == 0 && ev.Peer.State.PeerAsn == a.LocalASN {
		// A session for any external AS, and the router is in ours.
		st.Message = fmt.Sprintf("the router at %s answered with AS %d, this speaker's own, but the peer is for an external AS (dynamicASN external); use dynamicASN internal or fix the router's AS", addr, a.LocalASN)
		s.refused[name] = refusal{at: time.Now(), session: a.Session}
		refuse = true
	}
	if refuse {
		problem = st.Message
	}
	if changed {
		st.State, st.Since = state, time.Now()
		if state == StateEstablished && !refuse {
			st.Message = ""
			delete(s.down, name)
			delete(s.refused, name)
		} else if _, down := s.down[name]; !down {
			s.down[name] = time.Now()
		}
	}
	s.mu.Unlock()
	if changed {
		s.log.Info("BGP session state", "peer", name, "address", addr, "state", state, "peerASN", ev.Peer.State.PeerAsn)
		s.opts.Metrics.setSession(name, state == StateEstablished)
		s.opts.Changed()
	}
	if refuse {
		s.log.Error("BGP session closed for the router's fault; trying again after the connect retry", "peer", name, "address", addr, "problem", problem)
		s.opts.Changed()
		s.kickRun()
	}
}

// isRefused tells whether the peer's session was refused since it was
// last added.
func (s *Server) isRefused(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refused[name]
	a := s.applied[name]
	return ok && a != nil && r.at.After(a.added)
}

// refusedUntil is when a refused peer may be added again: its connect
// retry after the refusal; the zero time when it was not refused, or its
// session's settings changed since.
func (s *Server) refusedUntil(p *Peer) time.Time {
	s.mu.Lock()
	r, ok := s.refused[p.Name]
	s.mu.Unlock()
	if !ok || r.session != p.Session {
		return time.Time{}
	}
	return r.at.Add(s.retryFor(p))
}

func stateOf(st api.PeerState_SessionState) State {
	switch st {
	case api.PeerState_CONNECT:
		return StateConnect
	case api.PeerState_ACTIVE:
		return StateActive
	case api.PeerState_OPENSENT:
		return StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

// addPeer adds the session in a VRF of its own, which holds exactly the
// routes for that peer. GoBGP has one routing table; a VRF per peer is how
// each peer gets its own prefixes and attributes without export policies
// (which, in GoBGP, cannot withdraw a route from one peer alone).
func (s *Server) addPeer(p *Peer) error {
	s.nextVRF++
	vrf := fmt.Sprintf("ironlb-%d", s.nextVRF)
	id := s.nextVRF
	if err := s.call("AddVrf", func(ctx context.Context) error {
		v, err := vrfFor(vrf, id)
		if err != nil {
			return err
		}
		return s.gobgp.AddVrf(ctx, &api.AddVrfRequest{Vrf: v})
	}); err != nil {
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	s.mu.Lock()
	if _, down := s.down[p.Name]; !down {
		s.down[p.Name] = time.Now()
	}
	s.mu.Unlock()
	retry := s.retryFor(p)
	if err := s.call("AddPeer", func(ctx context.Context) error {
		return s.gobgp.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, vrf, retry)})
	}); err != nil {
		_ = s.call("DeleteVrf", func(ctx context.Context) error {
			return s.gobgp.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: vrf})
		})
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	s.mu.Lock()
	s.applied[p.Name] = &appliedPeer{Session: p.Session, vrf: vrf, routes: map[netip.Prefix]Route{}, retry: retry, added: time.Now()}
	s.byAddress[p.Address.Unmap()] = p.Name
	if st := s.status[p.Name]; st != nil {
		st.ConnectRetry = retry
		if _, refused := s.refused[p.Name]; !refused {
			st.Message = ""
		}
	}
	s.mu.Unlock()
	s.log.Info("BGP peer added", "peer", p.Name, "address", p.Address, "asn", p.ASN, "localASN", p.LocalASN, "ibgp", p.IBGP())
	return nil
}

// deletePeer closes the session (the router drops its routes) and
// removes its VRF.
func (s *Server) deletePeer(name string) error {
	a := s.applied[name]
	err := s.call("DeletePeer", func(ctx context.Context) error {
		return s.gobgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.Address.String()})
	})
	if err != nil {
		return fmt.Errorf("peer %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.applied, name)
	delete(s.byAddress, a.Address.Unmap())
	if st := s.status[name]; st != nil {
		st.ConnectRetry = 0
		if st.State != StateDisabled {
			st.State, st.Since = StateIdle, time.Now()
		}
	}
	s.mu.Unlock()
	s.opts.Metrics.setSession(name, false)
	// GoBGP reports no state change for a peer it deletes: the status
	// changed here, and the speaker must hear of it.
	s.opts.Changed()
	s.log.Info("BGP peer removed", "peer", name, "address", a.Address)
	if err := s.call("DeleteVrf", func(ctx context.Context) error {
		return s.gobgp.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: a.vrf})
	}); err != nil {
		// The VRF is empty and unused; leaving it behind costs nothing.
		s.log.Warn("could not remove an unused VRF", "vrf", a.vrf, "error", err)
	}
	return nil
}

// retryFor is the connect retry the peer's session should have now: its
// ConnectTime (or Options.ConnectRetry), backing off while it stays down.
func (s *Server) retryFor(p *Peer) time.Duration {
	base := s.opts.ConnectRetry
	if p.ConnectTime > 0 {
		base = p.ConnectTime
	}
	s.mu.Lock()
	since, down := s.down[p.Name]
	s.mu.Unlock()
	if !down {
		return base
	}
	return backoff(base, s.opts.BackoffStep, max(base, s.opts.MaxConnectRetry), time.Since(since))
}

// isDown tells whether the peer's session is not established.
func (s *Server) isDown(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, down := s.down[name]
	return down
}

// backoff doubles base for every step of downFor, up to most.
func backoff(base, step, most, downFor time.Duration) time.Duration {
	r := base
	for n := downFor / step; n > 0 && r < most; n-- {
		r *= 2
	}
	return min(r, most)
}
