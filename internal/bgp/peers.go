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
	if changed {
		st.State, st.Since = state, time.Now()
		if state == StateEstablished {
			st.Message = ""
			delete(s.down, name)
		} else if _, down := s.down[name]; !down {
			s.down[name] = time.Now()
		}
	}
	s.mu.Unlock()
	if changed {
		s.log.Info("BGP session state", "peer", name, "address", addr, "state", state)
		s.opts.Metrics.setSession(name, state == StateEstablished)
		s.opts.Changed()
	}
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
	retry := s.retryFor(p.Name)
	if err := s.call("AddPeer", func(ctx context.Context) error {
		return s.gobgp.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, vrf, retry)})
	}); err != nil {
		_ = s.call("DeleteVrf", func(ctx context.Context) error {
			return s.gobgp.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: vrf})
		})
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	s.applied[p.Name] = &appliedPeer{Session: p.Session, vrf: vrf, routes: map[netip.Prefix]Route{}, retry: retry}
	s.mu.Lock()
	s.byAddress[p.Address.Unmap()] = p.Name
	if st := s.status[p.Name]; st != nil {
		st.Message, st.ConnectRetry = "", retry
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
	delete(s.applied, name)
	s.mu.Lock()
	delete(s.byAddress, a.Address.Unmap())
	if st := s.status[name]; st != nil {
		st.ConnectRetry = 0
		if st.State != StateDisabled {
			st.State, st.Since = StateIdle, time.Now()
		}
	}
	s.mu.Unlock()
	s.opts.Metrics.setSession(name, false)
	s.log.Info("BGP peer removed", "peer", name, "address", a.Address)
	if err := s.call("DeleteVrf", func(ctx context.Context) error {
		return s.gobgp.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: a.vrf})
	}); err != nil {
		// The VRF is empty and unused; leaving it behind costs nothing.
		s.log.Warn("could not remove an unused VRF", "vrf", a.vrf, "error", err)
	}
	return nil
}

// retryFor is the connect retry the peer's session should have now.
func (s *Server) retryFor(name string) time.Duration {
	s.mu.Lock()
	since, down := s.down[name]
	s.mu.Unlock()
	if !down {
		return s.opts.ConnectRetry
	}
	return backoff(s.opts.ConnectRetry, s.opts.BackoffStep, s.opts.MaxConnectRetry, time.Since(since))
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
