package bgp

// BFD beside the BGP sessions. The Server owns one bfd.Sessions and keeps
// a BFD session for every configured peer whose Peer.BFD is set (single
// hop, or multihop for a MultiHop session). The BFD side only decides
// whether a peer's BGP session is held down:
//
//   - A BFD session that has never been Up holds nothing: BGP does not
//     wait for BFD (FRR's default too), so a router without BFD for this
//     address still peers.
//   - When a BFD session that was Up goes Down (detection time expired,
//     or the router said Down), the peer's BGP session is deleted at
//     once: GoBGP sends a NOTIFICATION (Cease) and closes the connection,
//     so the router drops this node's routes without waiting for its hold
//     time. It stays deleted until BFD is Up again, then is added anew.
//   - A router that takes its BFD session administratively down (it was
//     deconfigured, RFC 5882 §3.2) is not a path failure: BGP is left
//     alone, and the session counts as never Up again.

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/ironlb/ironlb/internal/bfd"
)

// BFD are the timers of a peer's BFD session.
type BFD struct {
	// ReceiveInterval is the shortest interval between received packets
	// this side asks for; TransmitInterval the interval it would like to
	// send at once Up.
	ReceiveInterval, TransmitInterval time.Duration
	// DetectMultiplier is how many intervals without a packet the router
	// waits before declaring the session down.
	DetectMultiplier uint8
}

// bfdPeer is what the server knows of one peer's BFD session; guarded by
// Server.mu.
type bfdPeer struct {
	state bfd.State
	// wasUp is set once the session has been Up (and cleared by the
	// router's AdminDown); held while BGP is kept down for it.
	wasUp, held bool
}

// bfdSide is the Server's BFD state.
type bfdSide struct {
	sessions *bfd.Sessions
	// last is what sessions was last given; it belongs to Run.
	last []bfd.Peer
	// peers, by peer name; guarded by Server.mu.
	peers map[string]*bfdPeer
}

func newBFDSide(s *Server) bfdSide {
	return bfdSide{
		sessions: bfd.New(bfd.Options{Log: s.log, Changed: s.bfdChanged}),
		peers:    map[string]*bfdPeer{},
	}
}

// runBFD runs the BFD sessions until ctx ends; the returned channel is
// closed when they have told the routers they are going away.
func (s *Server) runBFD(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.bfd.sessions.Run(ctx); err != nil {
			s.log.Error("BFD stopped", "error", err)
		}
	}()
	return done
}

// setBFD makes the BFD sessions those the desired peers ask for, and
// forgets the state of peers that no longer have one. Run's goroutine.
func (s *Server) setBFD(want map[string]*Peer) {
	var peers []bfd.Peer
	for _, name := range slices.Sorted(maps.Keys(want)) {
		p := want[name]
		if p.BFD == nil || p.Disabled != "" {
			continue
		}
		peers = append(peers, bfd.Peer{Name: name, Remote: p.Address, Local: p.SourceAddress, MultiHop: p.MultiHop,
			Config: bfd.Config{DesiredMinTx: p.BFD.TransmitInterval, RequiredMinRx: p.BFD.ReceiveInterval,
				DetectMult: p.BFD.DetectMultiplier}})
	}
	s.mu.Lock()
	keep := map[string]bool{}
	for _, p := range peers {
		keep[p.Name] = true
		if s.bfd.peers[p.Name] == nil {
			s.bfd.peers[p.Name] = &bfdPeer{state: bfd.StateDown}
			s.opts.Metrics.setBFD(p.Name, false)
		}
		if st := s.status[p.Name]; st != nil {
			st.BFD = s.bfd.peers[p.Name].state.String()
		}
	}
	for name := range s.bfd.peers {
		if !keep[name] {
			delete(s.bfd.peers, name)
			s.opts.Metrics.forgetBFD(name)
			if st := s.status[name]; st != nil {
				st.BFD = ""
			}
		}
	}
	s.mu.Unlock()
	if !slices.Equal(peers, s.bfd.last) {
		s.bfd.last = peers
		s.bfd.sessions.Set(peers)
	}
}

// bfdHeld tells whether the peer's BGP session is kept down because its
// BFD session went down.
func (s *Server) bfdHeld(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bfd.peers[name]
	return b != nil && b.held
}

// bfdChanged hears a BFD session change state (from the BFD goroutine)
// and has Run take the BGP session down, or let it up again.
func (s *Server) bfdChanged(ps bfd.PeerStatus) {
	s.mu.Lock()
	b := s.bfd.peers[ps.Name]
	if b == nil {
		s.mu.Unlock()
		return
	}
	wasHeld := b.held
	b.state = ps.State
	switch {
	case ps.State == bfd.StateUp:
		b.wasUp, b.held = true, false
	case ps.RemoteDiag == bfd.DiagAdminDown:
		// The router turned its session off: not a failure.
		b.wasUp, b.held = false, false
	case b.wasUp:
		b.held = true
	}
	held := b.held
	if st := s.status[ps.Name]; st != nil {
		st.BFD = ps.State.String()
	}
	s.mu.Unlock()
	s.opts.Metrics.setBFD(ps.Name, ps.State == bfd.StateUp)
	switch {
	case held && !wasHeld:
		s.log.Warn("BFD session down; closing the BGP session until it is up again", "peer", ps.Name,
			"address", ps.Remote, "diag", ps.Diag, "remoteDiag", ps.RemoteDiag)
	case !held && wasHeld:
		s.log.Info("BFD session up again; reopening the BGP session", "peer", ps.Name, "address", ps.Remote)
	}
	s.opts.Changed()
	if held != wasHeld {
		s.kickRun()
	}
}

// bfdMessages says, by peer, why its BFD session cannot run.
func (s *Server) bfdMessages() map[string]string {
	out := map[string]string{}
	for _, st := range s.bfd.sessions.Status() {
		if st.Message != "" {
			out[st.Name] = "BFD: " + st.Message
		}
	}
	return out
}
