// Package bgp owns the speaker's embedded GoBGP server. The rest of the
// speaker hands it the complete desired state (the peers of this node and,
// per peer, the prefixes to advertise with their attributes) through Set,
// as often as it likes; one goroutine converges GoBGP to the latest state
// without touching sessions whose settings did not change. See README.md.
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

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/ironlb/ironlb/internal/iprange"
)

// Session is how one BGP session is set up. Changing any field restarts
// the session.
type Session struct {
	// Address and Port are the router's.
	Address netip.Addr
	Port    uint16
	// ASN is the router's autonomous system, LocalASN this speaker's; the
	// session is iBGP when they are equal.
	ASN, LocalASN uint32
	// SourceAddress is the zero Addr when the kernel picks it.
	SourceAddress netip.Addr
	// HoldTime is at least 3s; KeepaliveTime 0 means a third of it.
	HoldTime, KeepaliveTime time.Duration
	MultiHop                bool
	// Password is the TCP MD5 password; empty means none.
	Password        string
	GracefulRestart bool
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
	// ConnectRetry is the session's interval between connection
	// attempts now: it grows while the session stays down (zero while
	// the session is not configured).
	ConnectRetry time.Duration
	// Message says why the session is not in use (Disabled, or GoBGP
	// refused it), empty otherwise.
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

	// mu guards desired, status and down.
	mu      sync.Mutex
	desired *Desired
	status  map[string]*PeerStatus
	// down holds, per configured peer, since when its session has not
	// been established.
	down map[string]time.Time

	// Everything below belongs to the Run goroutine.
	gobgp    *server.BgpServer
	routerID netip.Addr
	// applied is what GoBGP has been given, by peer name.
	applied map[string]*appliedPeer
	// byAddress maps a configured session's address to its peer name; it
	// is read by the watch callback, under mu.
	byAddress map[netip.Addr]string
	nextVRF   uint32
	// stuck is closed when a call that timed out returns at last; nil
	// when no call is outstanding.
	stuck     chan struct{}
	stuckCall string
	// watchStop ends the session-state watch.
	watchStop context.CancelFunc
}

type appliedPeer struct {
	Session
	vrf    string
	routes map[netip.Prefix]Route
	// retry is the connect retry GoBGP was given.
	retry time.Duration
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
	return &Server{
		opts:      o,
		log:       o.Log,
		kick:      make(chan struct{}, 1),
		status:    map[string]*PeerStatus{},
		down:      map[string]time.Time{},
		applied:   map[string]*appliedPeer{},
		byAddress: map[netip.Addr]string{},
	}
}

// Set records the desired state; Run converges to it. It never blocks.
// Neither d nor the Routes maps it holds may be changed afterwards.
func (s *Server) Set(d Desired) {
	d.Peers = slices.Clone(d.Peers)
	s.mu.Lock()
	s.desired = &d
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Status reports every desired peer, sorted by name.
func (s *Server) Status() []PeerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.status))
	for _, name := range slices.Sorted(maps.Keys(s.status)) {
		out = append(out, *s.status[name])
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
	for {
		select {
		case <-ctx.Done():
			return s.shutdown()
		case <-s.kick:
		case <-retry.C:
		case <-backoff.C:
		}
		s.mu.Lock()
		d := s.desired
		s.mu.Unlock()
		if d == nil {
			continue
		}
		start := time.Now()
		err := s.converge(*d)
		s.opts.Metrics.observeSync(time.Since(start), err)
		s.updateMetrics()
		if err != nil {
			s.log.Error("converging BGP failed; retrying", "error", err, "retryIn", s.opts.RetryInterval)
			retry.Reset(s.opts.RetryInterval)
		}
	}
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
		if p == nil || p.Disabled != "" || p.Session != a.Session {
			errs = append(errs, s.deletePeer(name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		p := want[name]
		if p.Disabled != "" {
			continue
		}
		if a := s.applied[name]; a != nil && a.retry != s.retryFor(name) && s.isDown(name) {
			// The session is down, so adding it again with the new
			// interval costs nothing. (An established session keeps
			// whatever interval it had until it drops.)
			s.log.Info("BGP session still down; changing how often it is tried", "peer", name, "connectRetry", s.retryFor(name))
			errs = append(errs, s.deletePeer(name))
		}
		if s.applied[name] == nil {
			if msg := p.unusable(); msg != "" {
				// A setting this speaker cannot run is the peer's problem,
				// reported on it, not a failure to retry.
				s.setMessage(name, msg)
				continue
			}
			if err := s.addPeer(p); err != nil {
				s.setMessage(name, err.Error())
				errs = append(errs, err)
				continue
			}
		}
		errs = append(errs, s.syncRoutes(name, p.Routes))
	}
	return errors.Join(errs...)
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

// call runs fn against GoBGP with the call timeout. GoBGP's calls take a
// context but may block regardless of it, so fn runs on a goroutine of its
// own; one that overruns is remembered, and no further call is made until
// it has returned.
func (s *Server) call(name string, fn func(ctx context.Context) error) error {
	if s.stuck != nil {
		select {
		case <-s.stuck:
			s.stuck = nil
		default:
			return fmt.Errorf("GoBGP has not yet returned from %s, which overran %s; not calling %s", s.stuckCall, s.opts.CallTimeout, name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- fn(ctx)
	}()
	t := time.NewTimer(s.opts.CallTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		cancel()
		if err != nil {
			return fmt.Errorf("GoBGP %s: %w", name, err)
		}
		return nil
	case <-t.C:
		cancel()
		s.stuck, s.stuckCall = finished, name
		return fmt.Errorf("GoBGP %s did not return within %s", name, s.opts.CallTimeout)
	}
}

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
	s.applied = map[string]*appliedPeer{}
	s.mu.Lock()
	s.byAddress = map[netip.Addr]string{}
	for _, st := range s.status {
		if st.State != StateDisabled {
			st.State, st.Since = StateIdle, time.Now()
		}
	}
	s.mu.Unlock()
	return err
}

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

// syncRoutes advertises, replaces and withdraws the peer's prefixes. New
// and changed routes go out before withdrawals.
func (s *Server) syncRoutes(name string, want map[netip.Prefix]Route) error {
	a := s.applied[name]
	put, withdraw := diffRoutes(a.routes, want, a.Address.Is4())
	var errs []error
	for _, pfx := range put {
		r := want[pfx]
		path, err := apiPath(pfx, r, false)
		if err == nil {
			err = s.call("AddPath", func(ctx context.Context) error {
				_, err := s.gobgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_VRF, VrfId: a.vrf, Path: path})
				return err
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertising %s to peer %s: %w", pfx, name, err))
			continue
		}
		a.routes[pfx] = r
	}
	for _, pfx := range withdraw {
		path, err := apiPath(pfx, a.routes[pfx], true)
		if err == nil {
			err = s.call("DeletePath", func(ctx context.Context) error {
				return s.gobgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_VRF, VrfId: a.vrf, Family: path.Family, Path: path})
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s from peer %s: %w", pfx, name, err))
			continue
		}
		delete(a.routes, pfx)
	}
	s.mu.Lock()
	if st := s.status[name]; st != nil {
		st.Advertised = len(a.routes)
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// diffRoutes says, for a session of one family (is4), which prefixes to
// advertise or replace (new, or with other attributes) and which to
// withdraw (gone, or of the other family), each sorted.
func diffRoutes(have, want map[netip.Prefix]Route, is4 bool) (put, withdraw []netip.Prefix) {
	for pfx, r := range want {
		if old, ok := have[pfx]; pfx.Addr().Is4() == is4 && (!ok || !old.equal(r)) {
			put = append(put, pfx)
		}
	}
	for pfx := range have {
		if _, keep := want[pfx]; !keep || pfx.Addr().Is4() != is4 {
			withdraw = append(withdraw, pfx)
		}
	}
	slices.SortFunc(put, iprange.ComparePrefixes)
	slices.SortFunc(withdraw, iprange.ComparePrefixes)
	return put, withdraw
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

func (s *Server) updateMetrics() {
	for name, a := range s.applied {
		s.opts.Metrics.setAdvertised(name, len(a.routes))
	}
}
