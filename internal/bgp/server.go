package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// startServer starts GoBGP with the desired router ID. It listens on no
// port: the speaker opens every session itself, so it never competes for
// port 179 with anything else on the node.
func (s *Server) startServer(d Desired) error {
	if !d.RouterID.Is4() {
		return fmt.Errorf("no usable BGP router ID (got %q): set spec.routerID on the BGPPeer, or give the node an IPv4 address", d.RouterID)
	}
	var asn uint32
	for _, p := range d.Peers {
		if asn == 0 || p.LocalASN < asn {
			asn = p.LocalASN
		}
	}
	if asn == 0 {
		return errors.New("no peer gives a local ASN")
	}
	b := server.NewBgpServer(server.LoggerOption(newLogger(s.log)))
	go b.Serve()
	err := s.call("StartBgp", func(ctx context.Context) error {
		return b.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			// Every session sets its own local ASN; this is GoBGP's default.
			Asn:        asn,
			RouterId:   d.RouterID.String(),
			ListenPort: -1,
		}})
	})
	if err == nil {
		// Routes the routers send are of no use to the speaker: keep them
		// out of the routing table (GoBGP still holds them in each
		// session's Adj-RIB-In). GoBGP passes the speaker's own routes
		// through the import policy too, so those must be let in by name.
		err = s.call("AddPolicy", func(ctx context.Context) error {
			return b.AddPolicy(ctx, &api.AddPolicyRequest{Policy: importPolicy()})
		})
	}
	if err == nil {
		err = s.call("SetPolicyAssignment", func(ctx context.Context) error {
			return b.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
				Name: "global", Direction: api.PolicyDirection_IMPORT,
				Policies: []*api.Policy{{Name: importPolicyName}}, DefaultAction: api.RouteAction_REJECT,
			}})
		})
	}
	if err != nil {
		b.Stop()
		return err
	}
	watchCtx, watchStop := context.WithCancel(context.Background())
	if err := s.call("WatchEvent", func(context.Context) error {
		return b.WatchEvent(watchCtx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.peerEvent)
	}); err != nil {
		watchStop()
		b.Stop()
		return err
	}
	s.gobgp, s.routerID, s.watchStop = b, d.RouterID, watchStop
	s.log.Info("BGP started", "routerID", d.RouterID, "asn", asn)
	return nil
}

// stopServer closes every session and stops GoBGP.
func (s *Server) stopServer() error {
	err := s.call("StopBgp", func(ctx context.Context) error {
		return s.gobgp.StopBgp(ctx, &api.StopBgpRequest{})
	})
	s.watchStop()
	if err == nil {
		s.gobgp.Stop()
	}
	s.gobgp, s.routerID = nil, netip.Addr{}
	s.mu.Lock()
	s.applied = map[string]*appliedPeer{}
	s.byAddress = map[netip.Addr]string{}
	for _, st := range s.status {
		if st.State != StateDisabled {
			st.State, st.Since = StateIdle, time.Now()
		}
	}
	s.mu.Unlock()
	return err
}

// shutdown withdraws everything, waits for the withdrawals to be sent,
// and stops GoBGP.
func (s *Server) shutdown() error {
	if s.gobgp == nil {
		return nil
	}
	sentBefore := s.updatesSent()
	var advertising []string
	for name, a := range s.applied {
		if len(a.routes) > 0 {
			advertising = append(advertising, name)
		}
	}
	// One call withdraws every local route, so the withdrawals leave in
	// as few UPDATEs as GoBGP can pack them into.
	err := s.call("DeletePath", func(ctx context.Context) error {
		return s.gobgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL})
	})
	if err == nil && len(advertising) > 0 {
		deadline := time.Now().Add(s.opts.WithdrawWait)
		for time.Now().Before(deadline) && !s.withdrawalsSent(sentBefore, advertising) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for name, a := range s.applied {
		a.routes = map[netip.Prefix]Route{}
		s.opts.Metrics.setAdvertised(name, 0)
	}
	s.log.Info("withdrew every BGP route; closing the sessions")
	return errors.Join(err, s.stopServer())
}

// updatesSent counts, per established peer, the UPDATE messages sent.
func (s *Server) updatesSent() map[string]uint64 {
	out := map[string]uint64{}
	_ = s.call("ListPeer", func(ctx context.Context) error {
		return s.gobgp.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED || p.State.Messages == nil || p.State.Messages.Sent == nil {
				return
			}
			addr, err := netip.ParseAddr(p.State.NeighborAddress)
			if err != nil {
				return
			}
			s.mu.Lock()
			name := s.byAddress[addr.Unmap()]
			s.mu.Unlock()
			out[name] = p.State.Messages.Sent.Update
		})
	})
	return out
}

// withdrawalsSent tells whether every peer that was established and had
// routes has sent an UPDATE since before.
func (s *Server) withdrawalsSent(before map[string]uint64, advertising []string) bool {
	now := s.updatesSent()
	for _, name := range advertising {
		b, was := before[name]
		n, is := now[name]
		if was && is && n <= b {
			return false
		}
	}
	return true
}
