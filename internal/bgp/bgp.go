// Package bgp owns the speaker's embedded GoBGP server. The rest of the
// speaker hands it the complete desired state (the peers of this node and,
// per peer, the prefixes to advertise with their attributes) through Set,
// and changes of some prefixes through Update, as often as it likes; one
// goroutine converges GoBGP to the latest state without touching sessions
// whose settings did not change, and after an Update compares only the
// prefixes it named. See README.md.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v3/pkg/server"
)

// Session is how one BGP session is set up. Changing any field restarts
// the session.
type Session struct {
	// Address and Port are the router's.
	Address netip.Addr
	Port    uint16
	// ASN is the router's autonomous system, LocalASN this speaker's; the
	// session is iBGP when they are equal. ASN 0 takes whatever external
	// AS the router's OPEN names: a router that names LocalASN is refused.
	ASN, LocalASN uint32
	// SourceAddress is the zero Addr when the kernel picks it.
	SourceAddress netip.Addr
	// HoldTime is at least 3s; KeepaliveTime 0 means a third of it.
	HoldTime, KeepaliveTime time.Duration
	MultiHop                bool
	// Password is the TCP MD5 password; empty means none.
	Password        string
	GracefulRestart bool
	// ConnectTime is the interval between connection attempts while the
	// session is down (0: Options.ConnectRetry); it grows as
	// Options.BackoffStep says when the session stays down.
	ConnectTime time.Duration
	// MaxReceived is how many prefixes the router may send, per family,
	// before the session is closed with a NOTIFICATION (0: no limit).
	MaxReceived uint32
}

// unusable says why the session cannot be run as set, or "".
func (s Session) unusable() string {
	if s.HoldTime < 3*time.Second {
		return fmt.Sprintf("hold time %s is not supported by the embedded BGP speaker (GoBGP cannot run a session without keepalives); use 3s or more", s.HoldTime)
	}
	return ""
}

// IBGP tells whether the session is internal BGP.
func (s Session) IBGP() bool { return s.ASN == s.LocalASN }

// LargeCommunity is a BGP large community (RFC 8092).
type LargeCommunity struct{ Global, Local1, Local2 uint32 }

// Route is what one prefix is advertised with to one peer. The next hop is
// always this speaker's address on the session.
type Route struct {
	// LocalPref is sent on iBGP sessions only: this value when
	// HasLocalPref, else 100 (GoBGP's default).
	LocalPref    uint32
	HasLocalPref bool
	// Communities and Large are sorted, without duplicates.
	Communities []uint32
	Large       []LargeCommunity
}

func (r Route) equal(o Route) bool {
	return r.LocalPref == o.LocalPref && r.HasLocalPref == o.HasLocalPref &&
		slices.Equal(r.Communities, o.Communities) && slices.Equal(r.Large, o.Large)
}

// Peer is one router this speaker peers with.
type Peer struct {
	// Name identifies the peer (its BGPPeer's name).
	Name string
	Session
	// Disabled, when not empty, keeps the session down and says why (a
	// password Secret that cannot be read, for instance).
	Disabled string
	// BFD, when set, runs a BFD session with the router beside the BGP
	// session (see bfd.go); changing it does not restart BGP.
	BFD *BFD
	// Routes are the prefixes advertised to this peer. Prefixes of the
	// other address family than the session's are not sent.
	Routes map[netip.Prefix]Route
}

// Desired is everything this speaker should be doing over BGP.
type Desired struct {
	// RouterID is the BGP identifier; an IPv4 address. Changing it
	// restarts every session.
	RouterID netip.Addr
	// Peers, by unique Name and unique Session.Address.
	Peers []Peer
}

// Changes are new routes for some prefixes: for every prefix, the route
// to each peer, by name, that advertises it. A peer missing from a
// prefix's map does not advertise it.
type Changes map[netip.Prefix]map[string]Route

// Apply makes d's routes what c says for the prefixes c names, and calls
// touched (when not nil) for every peer and prefix it looked at. Peers
// that c names but d has not are ignored.
func (d *Desired) Apply(c Changes, touched func(peer string, pfx netip.Prefix)) {
	for pfx, routes := range c {
		for i := range d.Peers {
			p := &d.Peers[i]
			if r, ok := routes[p.Name]; ok {
				if p.Routes == nil {
					p.Routes = map[netip.Prefix]Route{}
				}
				p.Routes[pfx] = r
			} else {
				delete(p.Routes, pfx)
			}
			if touched != nil {
				touched(p.Name, pfx)
			}
		}
	}
}

// State is a session's BGP finite-state-machine state, or Disabled.
type State string

// States a session reports.
const (
	StateDisabled    State = "Disabled"
	StateIdle        State = "Idle"
	StateConnect     State = "Connect"
	StateActive      State = "Active"
	StateOpenSent    State = "OpenSent"
	StateOpenConfirm State = "OpenConfirm"
	StateEstablished State = "Established"
)

// PeerStatus is how one peer is doing.
type PeerStatus struct {
	Name    string
	Address netip.Addr
	State   State
	// Since is when State was entered.
	Since time.Time
	// Advertised is how many prefixes are handed to the session.
	Advertised int
	// BFD is the state of the peer's BFD session ("Up", "Down", "Init",
	// "AdminDown"), empty when it has none.
	BFD string
	// ConnectRetry is the session's interval between connection
	// attempts now: it grows while the session stays down (zero while
	// the session is not configured).
	ConnectRetry time.Duration
	// Message says why the session is not in use (Disabled, GoBGP
	// refused it, the router sent too many prefixes or named the wrong
	// AS), empty otherwise.
	Message string
}

// Options configure a Server.
type Options struct {
	Log     *slog.Logger
	Metrics *Metrics
	// Changed is called after a session changes state; it must not block.
	Changed func()
	// CallTimeout bounds every call into GoBGP (default 10s). A call that
	// does not return in time is left to finish on its own, and nothing
	// else is asked of GoBGP until it has.
	CallTimeout time.Duration
	// RetryInterval is how soon a convergence that failed is tried again
	// (default 5s).
	RetryInterval time.Duration
	// ConnectRetry is how long a session waits between connection
	// attempts (default 5s); GoBGP adds up to as much again at random.
	// After an established session drops, GoBGP first waits a fixed 5s.
	ConnectRetry time.Duration
	// BackoffStep and MaxConnectRetry make a session that stays down try
	// less often: its ConnectRetry doubles after every BackoffStep
	// (default 1m) down, up to MaxConnectRetry (default 2m), and is back
	// to ConnectRetry once the session is established.
	BackoffStep, MaxConnectRetry time.Duration
	// WithdrawWait bounds how long Run waits, when stopping, for the
	// withdrawals to go out before it closes the sessions (default 2s).
	WithdrawWait time.Duration
}

// Server is this speaker's BGP side.
type Server struct {
	opts Options
	log  *slog.Logger
	// kick has room for one pending convergence request.
	kick chan struct{}

	// mu guards desired, pending, status and down. desired is the last
	// Set not yet taken by Run, pending the Updates since.
	mu      sync.Mutex
	desired *Desired
	pending Changes
	status  map[string]*PeerStatus
	// down holds, per configured peer, since when its session has not
	// been established.
	down map[string]time.Time

	// Everything below belongs to the Run goroutine. want is the desired
	// state it converges to; dirty holds, per peer, the prefixes that may
	// differ from what GoBGP has been given, and whole the peers whose
	// every prefix must be compared.
	want     *Desired
	dirty    map[string]map[netip.Prefix]bool
	whole    map[string]bool
	gobgp    *server.BgpServer
	routerID netip.Addr
	// applied is what GoBGP has been given, by peer name. Run changes the
	// map under mu; the watch callback reads it under mu, and only the
	// Session and added of its peers, which never change.
	applied map[string]*appliedPeer
	// byAddress maps a configured session's address to its peer name; it
	// is read by the watch callback, under mu.
	byAddress map[netip.Addr]string
	nextVRF   uint32
	// stuck is closed when a call that timed out returns at last; nil
	// when no call is outstanding.
	stuck     chan struct{}
	stuckCall string
	// bfd runs the peers' BFD sessions.
	bfd bfdSide
	// watchStop ends the session-state watch.
	watchStop context.CancelFunc
	// refused holds, per peer, when and with which settings its session
	// was closed for the router's fault: it named this speaker's own AS to
	// a session for any external AS, or sent more prefixes than allowed.
	// The peer is added again after its connect retry, or at once when its
	// settings change. Set by the watch and log callbacks, under mu.
	refused map[string]refusal
}

type refusal struct {
	at      time.Time
	session Session
}

type appliedPeer struct {
	Session
	vrf    string
	routes map[netip.Prefix]Route
	// retry is the connect retry GoBGP was given; added is when.
	retry time.Duration
	added time.Time
}

// New returns a server; nothing runs until Run.
func New(o Options) *Server {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 5 * time.Second
	}
	if o.ConnectRetry <= 0 {
		o.ConnectRetry = 5 * time.Second
	}
	if o.WithdrawWait <= 0 {
		o.WithdrawWait = 2 * time.Second
	}
	if o.BackoffStep <= 0 {
		o.BackoffStep = time.Minute
	}
	if o.MaxConnectRetry < o.ConnectRetry {
		o.MaxConnectRetry = max(o.ConnectRetry, 2*time.Minute)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Changed == nil {
		o.Changed = func() {}
	}
	s := &Server{
		opts:      o,
		log:       o.Log,
		kick:      make(chan struct{}, 1),
		status:    map[string]*PeerStatus{},
		down:      map[string]time.Time{},
		applied:   map[string]*appliedPeer{},
		byAddress: map[netip.Addr]string{},
		dirty:     map[string]map[netip.Prefix]bool{},
		whole:     map[string]bool{},
		refused:   map[string]refusal{},
	}
	s.bfd = newBFDSide(s)
	return s
}

// Set records the complete desired state; Run converges to it, comparing
// every prefix. It never blocks, and keeps copies of what it is given.
func (s *Server) Set(d Desired) {
	d.Peers = slices.Clone(d.Peers)
	for i := range d.Peers {
		d.Peers[i].Routes = maps.Clone(d.Peers[i].Routes)
	}
	s.mu.Lock()
	s.desired, s.pending = &d, nil
	s.mu.Unlock()
	s.kickRun()
}

// Update changes the routes of the prefixes c names, on top of the last
// Set and the Updates since; Run compares only those prefixes. It never
// blocks. c is the server's afterwards: the caller must not change it.
func (s *Server) Update(c Changes) {
	if len(c) == 0 {
		return
	}
	s.mu.Lock()
	if s.pending == nil {
		s.pending = c
	} else {
		maps.Copy(s.pending, c)
	}
	s.mu.Unlock()
	s.kickRun()
}

func (s *Server) kickRun() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Status reports every desired peer, sorted by name.
func (s *Server) Status() []PeerStatus {
	bfdProblems := s.bfdMessages()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.status))
	for _, name := range slices.Sorted(maps.Keys(s.status)) {
		st := *s.status[name]
		if msg := bfdProblems[name]; msg != "" && st.Message == "" {
			st.Message = msg
		}
		out = append(out, st)
	}
	return out
}

// Run converges GoBGP to the desired state until ctx ends. Then it
// withdraws every prefix, waits (at most WithdrawWait) until the
// withdrawals are sent, closes the sessions and returns.
func (s *Server) Run(ctx context.Context) error {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	// Sessions that stay down are looked at again now and then, to try
	// them less often.
	backoff := time.NewTicker(s.opts.BackoffStep / 2)
	defer backoff.Stop()
	bfdCtx, stopBFD := context.WithCancel(context.Background())
	defer stopBFD()
	bfdDone := s.runBFD(bfdCtx)
	for {
		select {
		case <-ctx.Done():
			err := s.shutdown()
			stopBFD()
			<-bfdDone
			return err
		case <-s.kick:
		case <-retry.C:
		case <-backoff.C:
		}
		if !s.takeDesired() {
			continue
		}
		start := time.Now()
		err := s.converge(*s.want)
		s.opts.Metrics.observeSync(time.Since(start), err)
		s.updateMetrics()
		if err != nil {
			s.log.Error("converging BGP failed; retrying", "error", err, "retryIn", s.opts.RetryInterval)
			retry.Reset(s.opts.RetryInterval)
		}
	}
}

// takeDesired makes the last Set and the Updates since the state to
// converge to, and tells whether there is one.
func (s *Server) takeDesired() bool {
	s.mu.Lock()
	d, c := s.desired, s.pending
	s.desired, s.pending = nil, nil
	s.mu.Unlock()
	if d != nil {
		s.want = d
		for _, p := range d.Peers {
			s.whole[p.Name] = true
		}
	}
	if s.want == nil {
		return false
	}
	s.want.Apply(c, func(peer string, pfx netip.Prefix) {
		if s.dirty[peer] == nil {
			s.dirty[peer] = map[netip.Prefix]bool{}
		}
		s.dirty[peer][pfx] = true
	})
	return true
}

// converge brings GoBGP to d, step by step; a step that fails is
// reported and the others still run.
func (s *Server) converge(d Desired) error {
	want := map[string]*Peer{}
	active := 0
	for i := range d.Peers {
		want[d.Peers[i].Name] = &d.Peers[i]
		if d.Peers[i].Disabled == "" {
			active++
		}
	}
	s.updateStatusPeers(want)
	s.setBFD(want)
	if active == 0 && s.gobgp == nil {
		return nil
	}
	if s.gobgp != nil && d.RouterID != s.routerID && active > 0 {
		s.log.Info("BGP router ID changed; restarting every session", "from", s.routerID, "to", d.RouterID)
		if err := s.stopServer(); err != nil {
			return err
		}
	}
	if s.gobgp == nil {
		if err := s.startServer(d); err != nil {
			return err
		}
	}

	var errs []error
	// Sessions that went away or changed go first, so that a changed one
	// can be added again under the same address.
	for _, name := range slices.Sorted(maps.Keys(s.applied)) {
		a := s.applied[name]
		p := want[name]
		if p == nil || p.Disabled != "" || p.Session != a.Session || s.isRefused(name) || s.bfdHeld(name) {
			errs = append(errs, s.deletePeer(name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		errs = append(errs, s.convergePeer(want[name]))
	}
	for name := range s.dirty {
		if want[name] == nil {
			delete(s.dirty, name)
			delete(s.whole, name)
		}
	}
	return errors.Join(errs...)
}

// convergePeer adds p's session when it is not running and may run, and
// brings its routes up to date.
func (s *Server) convergePeer(p *Peer) error {
	name := p.Name
	if p.Disabled != "" || s.bfdHeld(name) {
		s.compareWhole(name)
		return nil
	}
	var errs []error
	if a := s.applied[name]; a != nil && a.retry != s.retryFor(p) && s.isDown(name) {
		// The session is down, so adding it again with the new interval
		// costs nothing. (An established session keeps whatever interval
		// it had until it drops.)
		s.log.Info("BGP session still down; changing how often it is tried", "peer", name, "connectRetry", s.retryFor(p))
		errs = append(errs, s.deletePeer(name))
	}
	if s.applied[name] == nil && s.refusedUntil(p).After(time.Now()) {
		return errors.Join(errs...)
	}
	if s.applied[name] == nil {
		// A new session starts with no routes: compare them all.
		s.compareWhole(name)
		if msg := p.unusable(); msg != "" {
			// A setting this speaker cannot run is the peer's problem,
			// reported on it, not a failure to retry.
			s.setMessage(name, msg)
			return errors.Join(errs...)
		}
		if err := s.addPeer(p); err != nil {
			s.setMessage(name, err.Error())
			return errors.Join(append(errs, err)...)
		}
	}
	var only map[netip.Prefix]bool
	if !s.whole[name] {
		if only = s.dirty[name]; len(only) == 0 {
			return errors.Join(errs...)
		}
	}
	err := s.syncRoutes(name, p.Routes, only)
	if err == nil {
		delete(s.whole, name)
		delete(s.dirty, name)
	}
	return errors.Join(append(errs, err)...)
}

// compareWhole makes the next convergence compare every prefix of peer.
func (s *Server) compareWhole(peer string) {
	s.whole[peer] = true
	delete(s.dirty, peer)
}

// updateStatusPeers makes the status list the desired peers.
func (s *Server) updateStatusPeers(want map[string]*Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range s.status {
		p := want[name]
		if p == nil {
			delete(s.status, name)
			delete(s.down, name)
			delete(s.refused, name)
			s.opts.Metrics.forget(name)
			continue
		}
		if st.Address != p.Address {
			st.Address, st.State, st.Since = p.Address, StateIdle, time.Now()
		}
	}
	for name, p := range want {
		st := s.status[name]
		if st == nil {
			st = &PeerStatus{Name: name, Address: p.Address, State: StateIdle, Since: time.Now()}
			s.status[name] = st
			s.opts.Metrics.setSession(name, false)
		}
		switch {
		case p.Disabled != "":
			if st.State != StateDisabled {
				st.State, st.Since = StateDisabled, time.Now()
			}
			st.Message = p.Disabled
		case st.State == StateDisabled:
			st.State, st.Since, st.Message = StateIdle, time.Now(), ""
		}
	}
}

func (s *Server) setMessage(name, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.status[name]; st != nil {
		st.Message = msg
	}
}
