// Package speaker is the speaker's sync loop: it reads the cluster from
// controller-runtime's caches, keeps this node's plan with the planner's
// State, elects with the election table and hands this node's share to
// the ARP/NDP responders, the BGP side and the dataplane. It is the only
// package of the speaker that talks to the API server.
//
// Event handlers only mark what changed and ask for a sync; one goroutine
// syncs, coalescing however many changes arrived meanwhile. A change of
// one Service or of its EndpointSlices reads that Service alone and
// re-plans only its addresses; a membership change costs only the
// election table's incremental update; a change of the configuration or
// of a Node's labels or network availability re-plans every address.
package speaker

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/pace"
	"github.com/ironlb/ironlb/internal/planner"
)

// Announcer puts this node's layer 2 share on the wire
// (layer2.Announcer).
type Announcer interface {
	// Set replaces the addresses answered for and their interfaces (nil:
	// every interface).
	Set(desired map[netip.Addr][]string) error
	// Announced reports where each address is answered right now.
	Announced() map[netip.Addr][]string
}

// Members tells which speakers are alive (membership.Cluster).
type Members interface {
	// Members returns the alive speakers, this one included, with the
	// metadata each advertises (ClaimMeta); nil until this speaker has
	// joined.
	Members() []membership.Member
}

// Event reasons on Services.
const (
	ReasonAnnounced = "AnnouncedL2"
	ReasonWithdrawn = "WithdrawnL2"
)

// Forwarder forwards the traffic that arrives for the Services'
// addresses (dataplane.Dataplane).
type Forwarder interface {
	Set([]dataplane.Frontend)
}

// Options configure a speaker.
type Options struct {
	// Node is this speaker's Node.
	Node  string
	Class config.Class
	// Static, when set, is the configuration read from --config-file; the
	// cluster's ironlb objects are then not read.
	Static    *config.Config
	Log       *slog.Logger
	Events    kube.EventSink
	Announcer Announcer
	Members   Members
	// BGP, when set, is given this node's BGP share.
	BGP BGP
	// Secrets reads BGP password Secrets; by default the sync's reader.
	Secrets client.Reader
	// Forwarding, when set, is given the frontends to forward in
	// ForwardingMode.
	Forwarding     Forwarder
	ForwardingMode planner.ForwardingMode
	// Handoff is how long this speaker keeps answering for an address
	// that another alive speaker now ranks first for, while that one
	// starts; 0 stops at once.
	Handoff time.Duration
	// ClaimVersion is the newest layer 2 claim version this speaker
	// speaks and advertises (ClaimMeta); 0 means election.LatestClaim.
	// The speakers rank with the oldest version any of them speaks.
	ClaimVersion election.ClaimVersion
	// ClaimSwitchDelay is how long a change of the agreed claim version
	// takes: meanwhile this speaker answers only for the addresses it
	// ranks first for under both versions, so that it never answers
	// beside a speaker that has not heard of the change yet.
	ClaimSwitchDelay time.Duration
	// Now tells the time of the claim version switch; time.Now when nil
	// (tests set it).
	Now func() time.Time
	// Known, when set, fences layer 2: this speaker answers for addresses
	// only while the members it sees alive are a quorum
	// (election.Quorum) of the speakers Known returns, so that of the two
	// sides of a memberlist partition at most one answers. Known must not
	// block; it returns the last known speakers when the API server cannot
	// be reached. nil: no fencing.
	Known func() []string
}

// Speaker syncs this node's announcements with the cluster.
type Speaker struct {
	opts   Options
	log    *slog.Logger
	reader client.Reader
	status *statusWriter
	// kick has room for one pending sync request.
	kick chan struct{}
	// synced is closed when the caches are synced and the loop runs.
	synced chan struct{}

	// claimMu guards heard and handingOff, which the responders'
	// goroutines read and write through Claimed: when another host last
	// announced each address this speaker answers for, and the addresses
	// being handed off (the keys of handoff).
	claimMu    sync.Mutex
	heard      map[netip.Addr]time.Time
	handingOff map[netip.Addr]bool

	// mu guards dirty, which event handlers set.
	mu    sync.Mutex
	dirty dirtySet

	// Everything below belongs to the sync goroutine.
	ranking *election.Ranking
	// switchUntil is when the claim version switch under way ends.
	switchUntil time.Time
	// claimJoined: the claim version was agreed with the members this
	// speaker joined; false until it has joined.
	claimJoined bool
	cfg         *config.Config
	state       *planner.State
	warnings    []planner.Warning
	// warnedFirst: this speaker was first among the alive at the last
	// sync, so it has recorded the warnings' events.
	warnedFirst bool
	// share is this node's layer 2 share, as Announcer was last given it.
	share     l2Share
	setErr    string
	lastAlive []string
	// known is what Options.Known last returned; fenced, when not empty,
	// says why this speaker has no quorum and answers nothing;
	// unreachable: some alive members did not answer the last ping;
	// fencedSince: when this speaker was last fenced; quorumSince: when a
	// fenced speaker's quorum began.
	known       []string
	fenced      string
	unreachable bool
	quorumSince time.Time
	fencedSince time.Time
	// services refers to the Services in the plan, by key, for their
	// events.
	services map[string]*corev1.ObjectReference

	// BGP, also the sync goroutine's: when each prefix was first
	// advertised, every prefix sorted, the first prefixes as reported,
	// the sessions as last reported, the peers' passwords, this node's
	// IPv4 address (the default router ID); bgpFull: the BGP side must be
	// given the whole state again (the peers, a password or the router ID
	// changed), bgpPending: the prefixes changed since it was last given
	// them.
	bgpSince    map[netip.Prefix]time.Time
	bgpOrder    []netip.Prefix
	bgpReported []v1alpha1.BGPAnnouncement
	bgpStatus   []bgp.PeerStatus
	secrets     *passwords
	selfIPv4    netip.Addr
	bgpFull     bool
	bgpPending  map[netip.Prefix]bool
	// bgpSvcEvents works out the Services' AnnouncedBGP and WithdrawnBGP
	// events (bgpevents.go); nil until the first.
	bgpSvcEvents *bgpEventLog
	// forwarded: Forwarding was given a list; fwdDirty: the frontends
	// changed since. bgpPace and fwdPace space out the two handoffs
	// during bursts; wakeAt is when a sync was last asked for by a pacer.
	forwarded bool
	fwdDirty  bool
	bgpPace   pace.Pacer
	fwdPace   pace.Pacer
	wakeAt    time.Time
	// ranges logs unreadable source ranges once per change.
	ranges rangeLog
}

// dirtySet is what changed since the last sync.
type dirtySet struct {
	// config: the ironlb objects; nodes: some Node's labels or network
	// availability; all: every Service (at the start, and after a sync
	// that failed reading them); bgp: a BGP password Secret.
	config, nodes, all, bgp bool
	// services are the keys (namespace/name) of the Services whose
	// Service or EndpointSlices changed.
	services map[string]bool
}

// merge adds o to d.
func (d *dirtySet) merge(o dirtySet) {
	d.config, d.nodes, d.all, d.bgp = d.config || o.config, d.nodes || o.nodes, d.all || o.all, d.bgp || o.bgp
	for k := range o.services {
		d.markService(k)
	}
}

func (d *dirtySet) markService(key string) {
	if d.services == nil {
		d.services = map[string]bool{}
	}
	d.services[key] = true
}

// New returns a speaker; nothing runs until Run.
func New(o Options) *Speaker {
	mode := o.ForwardingMode
	if o.Forwarding == nil {
		mode = planner.ForwardNone
	}
	return &Speaker{
		opts:       o,
		log:        o.Log,
		kick:       make(chan struct{}, 1),
		synced:     make(chan struct{}),
		dirty:      dirtySet{config: true, nodes: true, all: true},
		state:      planner.NewState(o.Node, mode),
		services:   map[string]*corev1.ObjectReference{},
		bgpFull:    true,
		bgpPending: map[netip.Prefix]bool{},
		ranking:    election.NewRanking(o.ClaimVersion.OrLatest()),
		heard:      map[netip.Addr]time.Time{},
		handingOff: map[netip.Addr]bool{},
		bgpSince:   map[netip.Prefix]time.Time{},
	}
}

func (s *Speaker) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Trigger asks for a sync; it never blocks. Membership changes call it.
func (s *Speaker) Trigger() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// changed records what changed and asks for a sync.
func (s *Speaker) changed(d dirtySet) {
	s.mu.Lock()
	s.dirty.merge(d)
	s.mu.Unlock()
	s.Trigger()
}

// serviceChanged records that the Service key, or its EndpointSlices,
// changed, and asks for a sync.
func (s *Speaker) serviceChanged(key string) {
	s.mu.Lock()
	s.dirty.markService(key)
	s.mu.Unlock()
	s.Trigger()
}

// Loop syncs on every trigger until ctx ends. The reader must be backed
// by synced caches.
func (s *Speaker) Loop(ctx context.Context, reader client.Reader, w client.Client) {
	s.reader = reader
	s.status = newStatusWriter(w, s.opts.Node, s.log)
	go s.status.run(ctx)
	secrets := s.opts.Secrets
	if secrets == nil {
		secrets = reader
	}
	s.secrets = newPasswords(secrets, s.log, func() { s.changed(dirtySet{bgp: true}) })
	go s.secrets.run(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		if ctx.Err() != nil {
			// Stopping: the responders keep the last state while the
			// memberlist leave spreads; nothing may withdraw early.
			return
		}
		if err := s.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("sync failed; retrying", "error", err)
			s.Trigger()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// sync brings the plan, the table, the edges and the status up to date.
func (s *Speaker) sync(ctx context.Context) error {
	s.mu.Lock()
	d := s.dirty
	s.dirty = dirtySet{}
	s.mu.Unlock()
	if !s.wakeAt.IsZero() && !time.Now().Before(s.wakeAt) {
		s.wakeAt = time.Time{}
	}
	s.bgpFull = s.bgpFull || d.bgp
	if err := s.read(ctx, d); err != nil {
		// Read again what could not be read; what was read stays planned.
		s.mu.Lock()
		s.dirty.merge(d)
		s.mu.Unlock()
		return err
	}
	s.handOn(s.state.TakeChanges())
	s.updateMembers(s.now())
	s.apply()
	if s.opts.BGP != nil {
		s.applyBGP()
		s.bgpEvents(ctx, s.opts.BGP.Status())
	}
	s.status.set(s.report())
	s.warn(ctx)
	return nil
}

// handOn gives the election table the layer 2 addresses that changed, the
// dataplane the frontends when they changed, and records what the BGP
// side is to be given.
func (s *Speaker) handOn(c planner.Changes) {
	l2 := s.state.Layer2().L2
	for a := range c.L2 {
		if l := l2[a]; l != nil {
			s.ranking.SetEligible(a, l.Eligible)
		} else {
			s.ranking.Remove(a)
		}
	}
	if s.opts.BGP != nil {
		s.bgpFull = s.bgpFull || c.BGPPeers
		for pfx := range c.BGPPrefixes {
			s.bgpPending[pfx] = true
		}
	}
	// The first list always goes out, even an empty one: the dataplane
	// waits for it before replacing what an earlier run left.
	s.fwdDirty = s.fwdDirty || c.Forwarding || !s.forwarded
	if s.opts.Forwarding != nil && s.fwdDirty && s.paced(&s.fwdPace, func() { s.opts.Forwarding.Set(s.state.Frontends()) }) {
		s.fwdDirty, s.forwarded = false, true
	}
}

// paced runs handOff when p lets it, and reports whether it ran;
// otherwise it asks for a sync when it may.
func (s *Speaker) paced(p *pace.Pacer, handOff func()) bool {
	start := time.Now()
	if w := p.Wait(start); w > 0 {
		if s.wakeAt.IsZero() || start.Add(w).Before(s.wakeAt) {
			s.wakeAt = start.Add(w)
			time.AfterFunc(w, s.Trigger)
		}
		return false
	}
	handOff()
	p.Done(start, time.Now())
	return true
}

// l2 is the layer 2 plan of a; nil when it is not announced in layer 2.
func (s *Speaker) l2(a netip.Addr) *planner.L2 { return s.state.Layer2().L2[a] }

// warn logs configuration that has no effect when it changes. Every
// speaker sees the same; the first by name among the alive ones also
// records an event, so there is one.
func (s *Speaker) warn(ctx context.Context) {
	first := len(s.lastAlive) > 0 && s.lastAlive[0] == s.opts.Node
	warnings := s.state.Layer2().Warnings
	changed := !slices.Equal(s.warnings, warnings)
	if changed {
		for _, w := range warnings {
			s.log.Warn("configuration has no effect", "kind", w.Kind, "name", w.Name, "problem", w.Message)
		}
		s.warnings = warnings
	}
	if first && (changed || !s.warnedFirst) && s.opts.Events != nil {
		for _, w := range warnings {
			if adv := s.l2Advertisement(ctx, w.Name); w.Kind == v1alpha1.KindL2Advertisement && adv != nil {
				s.opts.Events.Eventf(adv, nil, corev1.EventTypeWarning, "SelectsNoNode", "Announce", "%s", w.Message)
			}
		}
	}
	s.warnedFirst = first
}

// report builds this node's NodeAnnouncement status.
func (s *Speaker) report() v1alpha1.NodeAnnouncementStatus {
	var st v1alpha1.NodeAnnouncementStatus
	st.Members = int32(len(s.lastAlive))
	if s.opts.Known != nil {
		st.KnownSpeakers = int32(len(mergeNames(s.known, s.lastAlive)))
		st.Fenced = s.fenced
	}
	announced := s.opts.Announcer.Announced()
	for a := range s.share.desired {
		l := s.l2(a)
		if l == nil {
			continue
		}
		st.Layer2 = append(st.Layer2, v1alpha1.L2Announcement{
			Address:    a.String(),
			Services:   l.Services,
			Interfaces: announced[a],
			Since:      metaTime(s.share.since[a]),
		})
	}
	slices.SortFunc(st.Layer2, func(x, y v1alpha1.L2Announcement) int {
		return netip.MustParseAddr(x.Address).Compare(netip.MustParseAddr(y.Address))
	})
	s.reportBGP(&st)
	return st
}

func (s *Speaker) l2Advertisement(ctx context.Context, name string) *v1alpha1.L2Advertisement {
	if s.opts.Static != nil {
		return nil
	}
	var adv v1alpha1.L2Advertisement
	if err := s.reader.Get(ctx, client.ObjectKey{Name: name}, &adv); err != nil {
		return nil
	}
	return &adv
}

// mergeNames returns the sorted union of sorted name lists.
func mergeNames(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
