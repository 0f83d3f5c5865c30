package bfd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Ports of RFC 5881 (single hop) and RFC 5883 (multihop).
const (
	PortSingleHop = 3784
	PortMultiHop  = 4784
)

// Peer is one BFD session this system wants.
type Peer struct {
	// Name identifies the session to the caller (a BGPPeer's name).
	Name string
	// Remote is the other system's address; Local the source address to
	// send from (the zero Addr lets the kernel choose).
	Remote, Local netip.Addr
	// MultiHop runs the session on port 4784 and accepts any received
	// TTL; single hop (port 3784) requires TTL 255 on receipt.
	MultiHop bool
	Config
}

// PeerStatus is how one session is doing.
type PeerStatus struct {
	Name   string
	Remote netip.Addr
	State  State
	// Diag is why this side last left Up, RemoteDiag the remote's.
	Diag, RemoteDiag Diag
	// Since is when State was entered.
	Since time.Time
	// Message says why the session cannot run (a socket that cannot be
	// opened), empty otherwise.
	Message string
}

// Options configure Sessions.
type Options struct {
	Log *slog.Logger
	// Changed is called from Run's goroutine after a session changes
	// state; it must not block.
	Changed func(PeerStatus)
	// Socket, when set, wraps every socket Sessions opens (tests open them
	// inside a network namespace); nil calls open directly.
	Socket func(open func() error) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sessions runs BFD sessions over UDP: Set gives the complete list of
// wanted sessions, Run converges to it and runs them on one goroutine.
type Sessions struct {
	opts Options
	log  *slog.Logger
	kick chan struct{}
	rx   chan received

	// mu guards desired and status.
	mu      sync.Mutex
	desired []Peer
	status  map[string]PeerStatus

	// Everything below belongs to the Run goroutine.
	sessions  map[sessionKey]*session
	listeners map[listenKey]*listener
	discrs    map[uint32]bool
	wg        sync.WaitGroup
}

type sessionKey struct {
	remote   netip.Addr
	multiHop bool
}

type listenKey struct {
	v6, multiHop bool
}

type session struct {
	peer Peer
	m    *Machine
	conn *net.UDPConn
	dst  netip.AddrPort
	last State
}

type received struct {
	data     []byte
	src      netip.Addr
	ttl      int
	multiHop bool
	at       time.Time
}

// New returns Sessions; nothing runs until Run.
func New(o Options) *Sessions {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Socket == nil {
		o.Socket = func(open func() error) error { return open() }
	}
	return &Sessions{opts: o, log: o.Log, kick: make(chan struct{}, 1), rx: make(chan received, 64),
		status: map[string]PeerStatus{}, sessions: map[sessionKey]*session{},
		listeners: map[listenKey]*listener{}, discrs: map[uint32]bool{}}
}

// Set replaces the wanted sessions (unique Name and Remote per MultiHop).
// A session whose Remote, Local and MultiHop stay keeps running, with a
// parameter change announced by a poll sequence.
func (s *Sessions) Set(peers []Peer) {
	s.mu.Lock()
	s.desired = append([]Peer(nil), peers...)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Status reports every wanted session.
func (s *Sessions) Status() []PeerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.desired))
	for _, p := range s.desired {
		st, ok := s.status[p.Name]
		if !ok {
			st = PeerStatus{Name: p.Name, Remote: p.Remote, State: StateDown}
		}
		out = append(out, st)
	}
	return out
}

// Run runs the sessions until ctx ends, then tells every remote system
// that its session is administratively down and closes the sockets.
func (s *Sessions) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer s.closeAll()
	for {
		now := s.opts.Now()
		for _, ss := range s.sessions {
			s.send(ss, ss.m.Tick(now))
		}
		s.report(now)
		timer.Reset(s.wait(now))
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			s.converge()
		case r := <-s.rx:
			s.receive(r)
		case <-timer.C:
		}
	}
}

// wait is how long until the earliest session timer.
func (s *Sessions) wait(now time.Time) time.Duration {
	d := time.Hour
	for _, ss := range s.sessions {
		if next := ss.m.Next(); !next.IsZero() {
			d = min(d, max(0, next.Sub(now)))
		}
	}
	return d
}

func (s *Sessions) receive(r received) {
	ss := s.sessions[sessionKey{r.src, r.multiHop}]
	if ss == nil {
		s.log.Debug("bfd: packet from an unknown peer", "from", r.src, "multihop", r.multiHop)
		return
	}
	if !r.multiHop && r.ttl != 255 {
		// RFC 5881 §5: single-hop packets must arrive with TTL 255, which
		// only a directly connected system can send.
		s.log.Debug("bfd: single-hop packet with TTL below 255 discarded", "peer", ss.peer.Name, "ttl", r.ttl)
		return
	}
	p, err := Parse(r.data)
	if err != nil {
		s.log.Debug("bfd: packet discarded", "peer", ss.peer.Name, "error", err)
		return
	}
	reply, err := ss.m.Receive(r.at, p)
	if err != nil {
		s.log.Debug("bfd: packet discarded", "peer", ss.peer.Name, "error", err)
		return
	}
	s.send(ss, reply)
}

func (s *Sessions) send(ss *session, p *Packet) {
	if p == nil || ss.conn == nil {
		return
	}
	b, err := p.MarshalBinary()
	if err == nil {
		_, err = ss.conn.WriteToUDPAddrPort(b, ss.dst)
	}
	if err != nil {
		s.log.Debug("bfd: send", "peer", ss.peer.Name, "error", err)
	}
}

// report publishes state changes.
func (s *Sessions) report(now time.Time) {
	var changed []PeerStatus
	s.mu.Lock()
	for _, ss := range s.sessions {
		st := ss.m.Status()
		old, seen := s.status[ss.peer.Name]
		if seen && st.State == ss.last && old.Message == "" {
			continue
		}
		ps := PeerStatus{Name: ss.peer.Name, Remote: ss.peer.Remote, State: st.State,
			Diag: st.Diag, RemoteDiag: st.RemoteDiag, Since: now}
		s.status[ss.peer.Name] = ps
		if seen && old.State != ps.State {
			s.log.Info("bfd: session state", "peer", ps.Name, "from", old.State, "to", ps.State, "diag", ps.Diag)
			changed = append(changed, ps)
		}
		ss.last = st.State
	}
	s.mu.Unlock()
	if s.opts.Changed != nil {
		for _, ps := range changed {
			s.opts.Changed(ps)
		}
	}
}

// converge opens, changes and closes sessions to match the desired list.
func (s *Sessions) converge() {
	s.mu.Lock()
	desired := s.desired
	s.mu.Unlock()
	now := s.opts.Now()
	want := map[sessionKey]Peer{}
	for _, p := range desired {
		want[sessionKey{p.Remote.Unmap(), p.MultiHop}] = p
	}
	for k, ss := range s.sessions {
		if p, ok := want[k]; !ok || p.Local != ss.peer.Local || p.Name != ss.peer.Name {
			s.stop(k, ss, now)
		}
	}
	for k, p := range want {
		if ss := s.sessions[k]; ss != nil {
			ss.peer = p
			ss.m.SetConfig(now, p.Config)
			continue
		}
		if err := s.start(k, p); err != nil {
			s.log.Warn("bfd: session cannot start", "peer", p.Name, "error", err)
			s.mu.Lock()
			s.status[p.Name] = PeerStatus{Name: p.Name, Remote: p.Remote, State: StateDown, Since: now, Message: err.Error()}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	for name := range s.status {
		if !s.wanted(desired, name) {
			delete(s.status, name)
		}
	}
	s.mu.Unlock()
}

func (s *Sessions) wanted(desired []Peer, name string) bool {
	for _, p := range desired {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (s *Sessions) start(k sessionKey, p Peer) error {
	if err := p.Config.Validate(); err != nil {
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	if err := s.listen(k.remote.Is6(), k.multiHop); err != nil {
		return err
	}
	conn, err := s.dial(p)
	if err != nil {
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	port := uint16(PortSingleHop)
	if p.MultiHop {
		port = PortMultiHop
	}
	ss := &session{peer: p, m: NewMachine(s.discriminator(), p.Config, rand.Float64),
		conn: conn, dst: netip.AddrPortFrom(k.remote, port), last: StateDown}
	s.sessions[k] = ss
	return nil
}

// stop tells the remote system the session is administratively down (so
// that it does not take the end of the session as a failure, RFC 5882
// §3.2) and closes it.
func (s *Sessions) stop(k sessionKey, ss *session, now time.Time) {
	ss.m.SetAdminDown(now, true)
	s.send(ss, ss.m.Tick(now))
	ss.conn.Close()
	delete(s.discrs, ss.m.local)
	delete(s.sessions, k)
}

func (s *Sessions) closeAll() {
	now := s.opts.Now()
	for k, ss := range s.sessions {
		s.stop(k, ss, now)
	}
	for k, l := range s.listeners {
		l.conn.Close()
		delete(s.listeners, k)
	}
	s.wg.Wait()
}

func (s *Sessions) discriminator() uint32 {
	for {
		d := rand.Uint32()
		if d != 0 && !s.discrs[d] {
			s.discrs[d] = true
			return d
		}
	}
}

// dial opens the session's sending socket: a source port in
// 49152–65535 (RFC 5881 §4) and TTL 255 on every packet.
func (s *Sessions) dial(p Peer) (*net.UDPConn, error) {
	network, local := "udp4", p.Local
	if p.Remote.Is6() && !p.Remote.Is4In6() {
		network = "udp6"
	}
	var conn *net.UDPConn
	var errs []error
	for range 16 {
		port := 49152 + rand.IntN(65536-49152)
		err := s.opts.Socket(func() error {
			c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(port))))
			if err != nil {
				return err
			}
			if err := setTTL(c, network == "udp6"); err != nil {
				c.Close()
				return err
			}
			conn = c
			return nil
		})
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, fmt.Errorf("opening a BFD socket from %v: %w", local, errors.Join(errs...))
}
