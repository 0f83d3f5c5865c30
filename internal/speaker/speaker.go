// Package speaker is the speaker's sync loop: it reads the cluster from
// controller-runtime's caches, plans with the planner, elects with the
// election table and hands this node's share to the ARP/NDP responders. It
// is the only package of the speaker that talks to the API server.
//
// Event handlers only mark what changed and ask for a sync; one goroutine
// syncs, coalescing however many changes arrived meanwhile. A membership
// change alone costs only the election table's incremental update; a
// change of Services, endpoints, Nodes or configuration re-plans (see
// BenchmarkSync).
package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/membership"
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

	// mu guards the dirty flags, which event handlers set.
	mu          sync.Mutex
	dirtyConfig bool
	dirtyPlan   bool
	dirtyBGP    bool

	// Everything below belongs to the sync goroutine.
	ranking *election.Ranking
	// switchUntil is when the claim version switch under way ends.
	switchUntil time.Time
	// claimJoined: the claim version was agreed with the members this
	// speaker joined; false until it has joined.
	claimJoined bool
	cfg         *config.Config
	plan        planner.Plan
	warnings    []planner.Warning
	// warnedFirst: this speaker was first among the alive at the last
	// sync, so it has recorded the warnings' events.
	warnedFirst bool
	// desired is what Announcer was last given; since is when each of
	// those addresses was gained.
	desired map[netip.Addr][]string
	since   map[netip.Addr]time.Time
	// handoff holds, for addresses being handed to another speaker, when
	// this one stops answering.
	handoff   map[netip.Addr]time.Time
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
	svcObjects  map[string]*corev1.Service

	// BGP, also the sync goroutine's: the plan, when each prefix was
	// first advertised, the sessions as last reported, the peers'
	// passwords, this node's IPv4 address (the default router ID), and
	// whether the plan changed since the BGP side was last given it.
	bgpPlan   planner.BGPPlan
	bgpSince  map[netip.Prefix]time.Time
	bgpStatus []bgp.PeerStatus
	secrets   *passwords
	selfIPv4  netip.Addr
	bgpDirty  bool
	// frontends are what Forwarding was last given, if forwarded.
	frontends []dataplane.Frontend
	forwarded bool
	// ranges logs unreadable source ranges once per change.
	ranges rangeLog
}

// New returns a speaker; nothing runs until Run.
func New(o Options) *Speaker {
	return &Speaker{
		opts:        o,
		log:         o.Log,
		kick:        make(chan struct{}, 1),
		synced:      make(chan struct{}),
		dirtyConfig: true,
		dirtyPlan:   true,
		ranking:     election.NewRanking(o.ClaimVersion.OrLatest()),
		desired:     map[netip.Addr][]string{},
		since:       map[netip.Addr]time.Time{},
		handoff:     map[netip.Addr]time.Time{},
		heard:       map[netip.Addr]time.Time{},
		handingOff:  map[netip.Addr]bool{},
		bgpSince:    map[netip.Prefix]time.Time{},
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

// Changed records that the cluster changed (config: ironlb objects) and
// asks for a sync.
func (s *Speaker) Changed(config bool) {
	s.mu.Lock()
	s.dirtyPlan = true
	s.dirtyConfig = s.dirtyConfig || config
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
	s.secrets = newPasswords(secrets, s.log, func() {
		s.mu.Lock()
		s.dirtyBGP = true
		s.mu.Unlock()
		s.Trigger()
	})
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
			s.Changed(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// sync brings the table, the responders and the status up to date.
func (s *Speaker) sync(ctx context.Context) error {
	s.mu.Lock()
	dirtyConfig, dirtyPlan := s.dirtyConfig, s.dirtyPlan
	s.dirtyConfig, s.dirtyPlan = false, false
	s.bgpDirty = s.bgpDirty || s.dirtyBGP
	s.dirtyBGP = false
	s.mu.Unlock()
	if dirtyConfig {
		if err := s.loadConfig(ctx); err != nil {
			s.mu.Lock()
			s.dirtyConfig = true
			s.mu.Unlock()
			return err
		}
	}
	if dirtyPlan {
		if err := s.replan(ctx); err != nil {
			s.mu.Lock()
			s.dirtyPlan = true
			s.mu.Unlock()
			return err
		}
	}
	s.updateMembers(s.now())
	s.apply()
	if s.opts.BGP != nil {
		if s.bgpDirty {
			s.applyBGP()
			s.bgpDirty = false
		}
		s.bgpEvents(ctx, s.opts.BGP.Status())
	}
	s.status.set(s.report())
	s.warn(ctx)
	return nil
}

// warn logs configuration that has no effect when it changes. Every
// speaker sees the same; the first by name among the alive ones also
// records an event, so there is one.
func (s *Speaker) warn(ctx context.Context) {
	first := len(s.lastAlive) > 0 && s.lastAlive[0] == s.opts.Node
	changed := !slices.Equal(s.warnings, s.plan.Warnings)
	if changed {
		for _, w := range s.plan.Warnings {
			s.log.Warn("configuration has no effect", "kind", w.Kind, "name", w.Name, "problem", w.Message)
		}
		s.warnings = s.plan.Warnings
	}
	if first && (changed || !s.warnedFirst) && s.opts.Events != nil {
		for _, w := range s.plan.Warnings {
			if adv := s.l2Advertisement(ctx, w.Name); w.Kind == v1alpha1.KindL2Advertisement && adv != nil {
				s.opts.Events.Eventf(adv, nil, corev1.EventTypeWarning, "SelectsNoNode", "Announce", "%s", w.Message)
			}
		}
	}
	s.warnedFirst = first
}

func (s *Speaker) loadConfig(ctx context.Context) error {
	if s.opts.Static != nil {
		s.cfg = s.opts.Static
		s.secrets.want(s.cfg)
		return nil
	}
	snap, err := kube.ReadSnapshot(ctx, s.reader)
	if err != nil {
		return fmt.Errorf("listing the configuration: %w", err)
	}
	// The controller reports invalid objects in their status; the speaker
	// uses the valid rest, exactly as the controller does.
	s.cfg, _ = config.Resolve(snap)
	s.secrets.want(s.cfg)
	return nil
}

// replan reads Services, EndpointSlices and Nodes and gives every
// address its eligible nodes.
func (s *Speaker) replan(ctx context.Context) error {
	var nodes corev1.NodeList
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	// The objects are only read, never changed or kept past the next
	// re-plan: the cache's own copies will do, which saves copying
	// thousands of objects on every re-plan.
	for _, l := range []client.ObjectList{&nodes, &svcs, &eps} {
		if err := s.reader.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("listing %T: %w", l, err)
		}
	}
	in := planner.Input{Config: s.cfg, Self: s.opts.Node}
	s.selfIPv4 = netip.Addr{}
	var selfAddrs []netip.Addr
	for i := range nodes.Items {
		n := &nodes.Items[i]
		in.Nodes = append(in.Nodes, nodeFor(n))
		if n.Name == s.opts.Node {
			selfAddrs = internalIPs(n)
			s.selfIPv4 = internalIPv4(n)
		}
	}
	endpoints := endpointsOf(eps.Items)
	s.svcObjects = map[string]*corev1.Service{}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if !s.opts.Class.Handles(svc) {
			continue
		}
		ps, badRanges := serviceFor(svc, endpoints)
		if len(ps.Addrs) == 0 {
			continue
		}
		s.ranges.note(ps.Key, badRanges)
		s.svcObjects[ps.Key] = svc
		in.Services = append(in.Services, ps)
	}
	s.ranges.flush(s.log, func(key string) bool { return s.svcObjects[key] != nil })
	s.bgpPlan = planner.BGP(in)
	s.bgpDirty = true
	if s.opts.Forwarding != nil {
		fes := planner.Forwarding(in, s.opts.ForwardingMode, selfAddrs)
		// The first plan always goes out, even an empty one: the dataplane
		// waits for it before replacing what an earlier run left.
		if !s.forwarded || !slices.EqualFunc(fes, s.frontends, sameFrontend) {
			s.opts.Forwarding.Set(fes)
			s.frontends, s.forwarded = fes, true
		}
	}
	old := s.plan.L2
	s.plan = planner.Layer2(in)
	for a, l := range s.plan.L2 {
		s.ranking.SetEligible(a, l.Eligible)
	}
	for a := range old {
		if s.plan.L2[a] == nil {
			s.ranking.Remove(a)
		}
	}
	return nil
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
	for a := range s.desired {
		l := s.plan.L2[a]
		if l == nil {
			continue
		}
		st.Layer2 = append(st.Layer2, v1alpha1.L2Announcement{
			Address:    a.String(),
			Services:   l.Services,
			Interfaces: announced[a],
			Since:      metaTime(s.since[a]),
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
