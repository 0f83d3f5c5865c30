package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults used when an Options field is zero. The failure detection ones
// are the speaker's flag defaults.
const (
	DefaultProbeInterval  = 80 * time.Millisecond
	DefaultProbeTimeout   = 40 * time.Millisecond
	DefaultGossipInterval = 100 * time.Millisecond
	DefaultSuspicionMult  = 2
	DefaultRejoinInterval = 10 * time.Second
	DefaultJoinTimeout    = 5 * time.Second
	DefaultJoinRetry      = 500 * time.Millisecond
	// DefaultLeaveGossipIntervals is how many gossip intervals Run waits at
	// most for its leave message to go out when LeaveTimeout is zero.
	DefaultLeaveGossipIntervals = 10
)

// Options configure a Cluster. Zero durations and multipliers take the
// Default values above.
type Options struct {
	// Name is the member name, the node's name. Required.
	Name string
	// BindAddr is the address memberlist binds and advertises to the other
	// members. It must be a specific address; required unless Transport is
	// set.
	BindAddr netip.Addr
	// Port is the TCP and UDP port. 0 lets the kernel choose (tests); Addr
	// tells which, and peers must then name ports.
	Port int
	// Meta is opaque data this member advertises to all the others, who
	// read it in Members; at most memberlist.MetaMaxSize (512) bytes. Empty
	// means none: the memberlist then runs without a Delegate, exactly as a
	// member of a release before metadata, which advertises nothing.
	Meta []byte
	// Key is the AES key (16, 24 or 32 bytes, see ParseKey) that encrypts
	// and authenticates all traffic; members with another key, or none, are
	// kept out. nil means unencrypted and must be the caller's explicit
	// choice: an empty non-nil key is an error.
	Key []byte
	// SecondaryKeys are further keys this member accepts traffic under
	// but never sends with: while a key is rotated, members with the old
	// primary and members with the new one understand each other as long
	// as each holds the other's primary among its keys. Each 16, 24 or 32
	// bytes; only with Key.
	SecondaryKeys [][]byte

	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration // shorter than ProbeInterval
	GossipInterval time.Duration
	SuspicionMult  int

	// JoinTimeout is how long a speaker that knows of other speakers (peers
	// names an address other than its own) but reaches none of them stays
	// silent, Alive and Members nil and notify not called, before it
	// concludes that it is alone (the first speaker, or cut off) and
	// publishes the members it knows (itself, unless others found it
	// meanwhile); counted from the creation of the memberlist. Longer keeps an isolated speaker silent longer; shorter
	// risks a starting speaker claiming every address while the others
	// still announce them. Default DefaultJoinTimeout.
	JoinTimeout time.Duration
	// JoinRetry is how often Run tries the peers again until its first
	// join succeeds or JoinTimeout has passed. Default DefaultJoinRetry.
	JoinRetry time.Duration
	// RejoinInterval is how often Run, once settled, asks for the peers
	// again and joins those that are not members.
	RejoinInterval time.Duration
	// LeaveTimeout bounds how long Run waits for its leave message to be
	// gossiped before it shuts down; default DefaultLeaveGossipIntervals
	// gossip intervals (1s with the defaults). Spreading it takes two or
	// three gossip rounds.
	LeaveTimeout time.Duration

	// Log receives Cluster's own lines and memberlist's, at the level
	// memberlist gave them. nil discards them.
	Log *slog.Logger
	// Metrics, if not nil, is kept up to date. One Metrics per Cluster.
	Metrics *Metrics
	// Transport replaces the network, for tests (memberlist.MockNetwork).
	Transport memberlist.Transport
}

// errCrash, as the cause of Run's context, makes Run shut down without
// leaving, the way a speaker that crashes disappears. Tests use it.
var errCrash = errors.New("membership: stopped without leaving")

// Cluster is this speaker's membership in the cluster of speakers.
type Cluster struct {
	opts Options
	log  *slog.Logger

	// changed holds a token when the alive set changed since Run last
	// called notify.
	changed chan struct{}

	mu sync.Mutex
	// started is set by the first Run; guarded by mu.
	started bool
	// running is true while Run has a memberlist; events outside it are
	// ignored. Guarded by mu.
	running bool
	// joined is true from Run's first join being settled until Run
	// returns; until then alive is kept but not published. Guarded by mu.
	joined bool
	// alive maps the name of every alive member, this one included, to its
	// address and metadata; nil when not running. Guarded by mu.
	alive map[string]memberState
	// list is the running memberlist, for Reachable; nil when not
	// running. Guarded by mu.
	list *memberlist.Memberlist
	// gone maps the members that left or were declared dead, and have not
	// come back, to their last address, for Reachable. Guarded by mu.
	gone map[string]netip.AddrPort
}

// memberState is what the Cluster keeps of an alive member.
type memberState struct {
	addr netip.AddrPort
	meta []byte // nil when the member advertises none; never changed in place
}

// Member is an alive member as Members reports it.
type Member struct {
	// Name is the member's name, its node's name.
	Name string
	// Meta is what the member advertises (its Options.Meta); nil when it
	// advertises nothing, as a member of a release before metadata.
	Meta []byte
}

// New validates o and returns a Cluster. It starts nothing.
func New(o Options) (*Cluster, error) {
	if o.Name == "" {
		return nil, errors.New("membership: Options.Name is required")
	}
	if o.Transport == nil {
		if !o.BindAddr.IsValid() || o.BindAddr.IsUnspecified() {
			return nil, fmt.Errorf("membership: Options.BindAddr %q: must be a specific address, which is advertised to the other members", o.BindAddr)
		}
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("membership: Options.Port %d: must be from 0 to 65535", o.Port)
	}
	if o.Key != nil {
		if !validKeyLen(len(o.Key)) {
			return nil, fmt.Errorf("membership: Options.Key has %d bytes; must be 16, 24 or 32 (nil for no encryption)", len(o.Key))
		}
		o.Key = slices.Clone(o.Key)
	}
	if len(o.SecondaryKeys) > 0 && o.Key == nil {
		return nil, errors.New("membership: Options.SecondaryKeys without Key: secondary keys only add to a primary key")
	}
	secondary := make([][]byte, 0, len(o.SecondaryKeys))
	for i, k := range o.SecondaryKeys {
		if !validKeyLen(len(k)) {
			return nil, fmt.Errorf("membership: Options.SecondaryKeys[%d] has %d bytes; must be 16, 24 or 32", i, len(k))
		}
		secondary = append(secondary, slices.Clone(k))
	}
	o.SecondaryKeys = secondary
	if len(o.Meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("membership: Options.Meta has %d bytes; must be at most %d (memberlist.MetaMaxSize)", len(o.Meta), memberlist.MetaMaxSize)
	}
	o.Meta = cloneMeta(o.Meta)
	setDefault(&o.ProbeInterval, DefaultProbeInterval)
	setDefault(&o.ProbeTimeout, DefaultProbeTimeout)
	setDefault(&o.GossipInterval, DefaultGossipInterval)
	setDefault(&o.SuspicionMult, DefaultSuspicionMult)
	setDefault(&o.RejoinInterval, DefaultRejoinInterval)
	setDefault(&o.JoinTimeout, DefaultJoinTimeout)
	setDefault(&o.JoinRetry, DefaultJoinRetry)
	setDefault(&o.LeaveTimeout, DefaultLeaveGossipIntervals*o.GossipInterval)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", o.ProbeInterval},
		{"ProbeTimeout", o.ProbeTimeout},
		{"GossipInterval", o.GossipInterval},
		{"RejoinInterval", o.RejoinInterval},
		{"JoinTimeout", o.JoinTimeout},
		{"JoinRetry", o.JoinRetry},
		{"LeaveTimeout", o.LeaveTimeout},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("membership: Options.%s %v: must be positive", d.name, d.v)
		}
	}
	if o.ProbeTimeout >= o.ProbeInterval {
		return nil, fmt.Errorf("membership: Options.ProbeTimeout %v: must be shorter than ProbeInterval %v", o.ProbeTimeout, o.ProbeInterval)
	}
	if o.SuspicionMult < 0 {
		return nil, fmt.Errorf("membership: Options.SuspicionMult %d: must be positive", o.SuspicionMult)
	}
	l := o.Log
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Cluster{opts: o, log: l, changed: make(chan struct{}, 1)}, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Run is the membership: it creates the memberlist (binding the port, so
// an error here is returned at once), joins the addresses peers returns
// ("host" or "host:port", the port defaulting to Options.Port; peers may be
// nil), and keeps calling peers every RejoinInterval and joining those that
// are not members, so a speaker that started first or was split off finds
// the others.
//
// The alive set is published only once the first join is settled: Alive
// and Members return nil, and notify is not called, until then. It is
// settled at once when peers names no address but this member's own (or
// is nil), as soon as one join succeeds (a join exchanges the whole state
// with the joined member, so the set is then complete), or, when no peer
// could be joined for JoinTimeout (retrying every JoinRetry, and each
// peer tried at least once), without a join, which is logged as a
// warning. Events that arrive before are recorded all the same. A
// starting speaker therefore never sees itself alone while it is about to
// learn of the others.
//
// notify (may be nil) is called from Run's goroutine once settled and then
// after every change of the alive set or of a member's metadata; changes
// close together may be reported by one call, and Alive and Members then
// give the latest state. notify should return quickly; memberlist itself
// never waits for it.
//
// When ctx ends, settled or not, Run leaves the cluster, waiting at most
// LeaveTimeout for the leave message to be gossiped, so the others drop
// this member at once, then shuts the memberlist down and returns. Run may
// be called once.
func (c *Cluster) Run(ctx context.Context, peers func() []string, notify func()) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("membership: Run called twice")
	}
	c.started = true
	c.mu.Unlock()
	if ctx.Err() != nil {
		return nil
	}

	c.setRunning(true)
	list, err := memberlist.Create(c.memberlistConfig())
	if err != nil {
		c.setRunning(false)
		return fmt.Errorf("membership: starting memberlist as %s on %s: %w", c.opts.Name, c.where(), err)
	}
	c.mu.Lock()
	c.list = list
	c.mu.Unlock()
	deadline := time.Now().Add(c.opts.JoinTimeout)
	self := list.LocalNode()
	c.log.Info("memberlist started", "name", self.Name, "address", self.Address(), "encrypted", c.opts.Key != nil, "secondaryKeys", len(c.opts.SecondaryKeys), "meta", len(c.opts.Meta))

	var wg sync.WaitGroup
	joinCtx, stopJoining := context.WithCancel(ctx)
	if peers != nil {
		wg.Go(func() { c.joinLoop(joinCtx, list, nodeAddr(self), peers, deadline) })
	} else {
		c.settleAlone()
	}
	for done := false; !done; {
		select {
		case <-c.changed: // only ever sent once settled
			if notify != nil {
				notify()
			}
		case <-ctx.Done():
			done = true
		}
	}
	stopJoining()

	// The join loop may still be inside a join (at most one, TCPTimeout
	// long); leaving does not wait for it.
	if errors.Is(context.Cause(ctx), errCrash) {
		c.log.Warn("memberlist stopping without leaving")
	} else if err := list.Leave(c.opts.LeaveTimeout); err != nil {
		c.log.Warn("memberlist leave not fully gossiped in time; members that missed it will detect a failure instead", "timeout", c.opts.LeaveTimeout, "err", err)
	} else {
		c.log.Info("memberlist left")
	}
	err = list.Shutdown()
	wg.Wait()
	c.setRunning(false)
	if err != nil {
		return fmt.Errorf("membership: shutting down memberlist: %w", err)
	}
	return nil
}

func (c *Cluster) where() string {
	if c.opts.Transport != nil {
		return "a custom transport"
	}
	return netip.AddrPortFrom(c.opts.BindAddr, uint16(c.opts.Port)).String()
}

func (c *Cluster) setRunning(r bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = r
	c.joined = false
	c.list = nil
	c.gone = map[string]netip.AddrPort{}
	if r {
		c.alive = map[string]memberState{}
	} else {
		c.alive = nil
	}
	c.opts.Metrics.setMembers(0)
}

// settle publishes the alive set, once: from now on Alive and Members
// report it and Run calls notify. It returns the number of members.
func (c *Cluster) settle() int {
	c.mu.Lock()
	n := len(c.alive)
	if !c.running || c.joined {
		c.mu.Unlock()
		return n
	}
	c.joined = true
	c.opts.Metrics.setMembers(n)
	c.mu.Unlock()
	c.signal()
	return n
}

// settleAlone settles a member that has no peer but itself to join.
func (c *Cluster) settleAlone() {
	n := c.settle()
	c.log.Info("memberlist has no peer to join but itself; taking this speaker to be the first", "members", n)
}

// signal tells Run that the published state changed.
func (c *Cluster) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Joined reports whether Run has settled its first join (see Run), so that
// Alive and Members report the alive set; false before and after Run.
func (c *Cluster) Joined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

// Alive returns the sorted names of the alive members, this one included,
// once Run has settled its first join; nil before and after.
func (c *Cluster) Alive() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.joined || len(c.alive) == 0 {
		return nil
	}
	names := make([]string, 0, len(c.alive))
	for n := range c.alive {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Members returns the alive members, this one included, sorted by name,
// with the metadata each advertises. Like Alive it is nil until Run has
// settled its first join and after Run. The slices are the caller's to
// keep.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.joined || len(c.alive) == 0 {
		return nil
	}
	ms := make([]Member, 0, len(c.alive))
	for n, s := range c.alive {
		ms = append(ms, Member{Name: n, Meta: bytes.Clone(s.meta)})
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Reachable pings every other member, alive or gone (left or declared
// dead since Run started), once, all at the same time, and returns the
// names of those that answered within ProbeTimeout, this member's
// included, sorted; nil unless Run has settled its first join. memberlist
// takes a while to change its mind: it declares a member dead only after
// the suspicion timeout, and a member wrongly declared dead (by stale
// gossip from one that was cut off, say) is alive again only once it has
// refuted it. Reachable tells at once whether this member can reach the
// others, for example when it has just lost one of them and may itself be
// the one cut off.
//
// Reachable returns as soon as enough members, this one included, have
// answered (0: wait for every ping), so that a caller that needs a
// majority is not held up by a member that is really gone: a missing
// answer costs a whole ProbeTimeout.
func (c *Cluster) Reachable(enough int) []string {
	c.mu.Lock()
	list, joined := c.list, c.joined
	others := make(map[string]netip.AddrPort, len(c.alive)+len(c.gone))
	for n, a := range c.gone {
		others[n] = a
	}
	for n, s := range c.alive {
		if n != c.opts.Name {
			others[n] = s.addr
		}
	}
	c.mu.Unlock()
	if list == nil || !joined {
		return nil
	}
	var mu sync.Mutex
	out := []string{c.opts.Name}
	answered := make(chan struct{}, len(others))
	for name, addr := range others {
		go func() {
			if _, err := list.Ping(name, net.UDPAddrFromAddrPort(addr)); err == nil {
				mu.Lock()
				out = append(out, name)
				mu.Unlock()
			}
			answered <- struct{}{}
		}()
	}
	for range others {
		mu.Lock()
		done := enough > 0 && len(out) >= enough
		mu.Unlock()
		if done {
			break
		}
		<-answered
	}
	mu.Lock()
	defer mu.Unlock()
	res := slices.Clone(out)
	slices.Sort(res)
	return res
}

// Addr returns the address and port this member advertises, once Run has
// created the list (useful with Port 0), settled or not; the zero value
// otherwise.
func (c *Cluster) Addr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive[c.opts.Name].addr
}

// memberAddrs returns the addresses of the alive members, published or
// not.
func (c *Cluster) memberAddrs() map[netip.AddrPort]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[netip.AddrPort]bool, len(c.alive))
	for _, s := range c.alive {
		m[s.addr] = true
	}
	return m
}

// update records that member name is alive at addr with meta, or not
// alive. Before the first join is settled it only records.
func (c *Cluster) update(name string, addr netip.AddrPort, meta []byte, alive bool) {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	old, was := c.alive[name]
	if alive {
		meta = cloneMeta(meta)
		c.alive[name] = memberState{addr: addr, meta: meta}
		delete(c.gone, name)
	} else {
		delete(c.alive, name)
		if name != c.opts.Name {
			c.gone[name] = addr
		}
	}
	n, published := len(c.alive), c.joined
	if published {
		c.opts.Metrics.setMembers(n)
	}
	c.mu.Unlock()

	metaChanged := was && alive && !bytes.Equal(old.meta, meta)
	switch {
	case was != alive && alive:
		c.log.Info("memberlist member alive", "member", name, "address", addr, "meta", len(meta), "members", n)
	case was != alive:
		c.log.Info("memberlist member gone", "member", name, "members", n)
	case metaChanged:
		c.log.Info("memberlist member changed its metadata", "member", name, "meta", len(meta), "was", len(old.meta))
	default:
		return
	}
	if published {
		c.signal()
	}
}

// cloneMeta copies metadata, nil when empty.
func cloneMeta(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// events receives memberlist's membership events. memberlist calls them
// one at a time while holding its own lock, so they must not call back into
// it, and do not block. memberlist calls NotifyUpdate when a member's
// metadata changed.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.update(n.Name, nodeAddr(n), n.Meta, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.update(n.Name, nodeAddr(n), nil, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.update(n.Name, nodeAddr(n), n.Meta, true) }

// metaDelegate advertises this member's metadata: memberlist asks for it
// whenever it announces this member as alive. The rest of the Delegate
// (user messages, broadcasts and state) is unused. It is installed only
// when there is metadata to advertise.
type metaDelegate struct{ meta []byte }

func (d metaDelegate) NodeMeta(int) []byte           { return d.meta } // New checked the limit
func (metaDelegate) NotifyMsg([]byte)                {}
func (metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (metaDelegate) LocalState(bool) []byte          { return nil }
func (metaDelegate) MergeRemoteState([]byte, bool)   {}

func nodeAddr(n *memberlist.Node) netip.AddrPort {
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// joinLoop settles the first join (joinFirst), then joins the peers that
// are not members every RejoinInterval until ctx ends. self, this member's
// address, is never joined (peers may well list it).
func (c *Cluster) joinLoop(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers func() []string, deadline time.Time) {
	// failing holds the peers whose last join failed, so that a peer that
	// stays unreachable is reported once at Warn and then at Debug.
	failing := map[string]bool{}
	joined, ok := c.joinFirst(ctx, list, self, peers, deadline, failing)
	if !ok {
		return
	}
	if joined {
		// The joined member may not know every peer (two groups that never
		// met); join the rest now rather than a RejoinInterval later.
		c.joinMissing(ctx, list, self, peers(), failing)
	}
	t := time.NewTicker(c.opts.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.joinMissing(ctx, list, self, peers(), failing)
	}
}

// peer is one answer of peers, resolved.
type peer struct {
	name  string
	addrs []netip.AddrPort // without this member's own
	err   error            // from resolving
}

// joinFirst settles the first join (see Run): at once when peers names
// nobody but this member, as soon as a join succeeds, or without one once
// deadline has passed. Past the deadline it tries only peers it has not
// tried yet, so it never concludes that it is alone before every peer was
// tried once (even when peers itself was slow), and is otherwise late by at
// most one join attempt (TCPTimeout per address). Unlike joinMissing it
// joins peers that are members already: a member learnt from gossip before
// joining says nothing about the others. It reports whether a join
// succeeded, and ok false when ctx ended first.
func (c *Cluster) joinFirst(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers func() []string, deadline time.Time, failing map[string]bool) (joined, ok bool) {
	lastErr := map[string]error{} // by peer; a peer in it has been tried
	for {
		others := c.otherPeers(ctx, self, peers())
		if ctx.Err() != nil {
			return false, false
		}
		if len(others) == 0 {
			c.settleAlone()
			return false, true
		}
		for _, p := range others {
			if ctx.Err() != nil {
				return false, false
			}
			if _, tried := lastErr[p.name]; tried && !time.Now().Before(deadline) {
				continue
			}
			err := p.err
			if err == nil {
				err = join(list, p.addrs)
			}
			if err != nil {
				lastErr[p.name] = err
				c.joinFailed(ctx, p.name, err, c.opts.JoinRetry, failing)
				continue
			}
			delete(failing, p.name)
			n := c.settle()
			c.log.Info("memberlist joined peer", "peer", p.name, "members", n)
			return true, true
		}
		if !time.Now().Before(deadline) {
			n := c.settle()
			var unreachable []string
			var errs []error
			for _, p := range others {
				unreachable = append(unreachable, p.name)
				if err := lastErr[p.name]; err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p.name, flatten(err)))
				}
			}
			c.log.Warn("memberlist joined none of its peers within the join timeout; taking this speaker to be alone, and retrying them",
				"timeout", c.opts.JoinTimeout, "unreachable", unreachable, "members", n, "every", c.opts.RejoinInterval, "err", errors.Join(errs...))
			return false, true
		}
		t := time.NewTimer(min(c.opts.JoinRetry, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, false
		case <-t.C:
		}
	}
}

// otherPeers resolves peers and drops those that are only this member.
// A peer that cannot be resolved is kept, with the error.
func (c *Cluster) otherPeers(ctx context.Context, self netip.AddrPort, peers []string) []peer {
	var out []peer
	for _, p := range peers {
		addrs, err := c.resolve(ctx, p)
		if err != nil {
			out = append(out, peer{name: p, err: err})
			continue
		}
		addrs = slices.DeleteFunc(addrs, func(a netip.AddrPort) bool { return a == self })
		if len(addrs) > 0 {
			out = append(out, peer{name: p, addrs: addrs})
		}
	}
	return out
}

func (c *Cluster) joinMissing(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers []string, failing map[string]bool) {
	for _, p := range peers {
		if ctx.Err() != nil {
			return
		}
		addrs, err := c.resolve(ctx, p)
		members := c.memberAddrs() // a join brings in the peer's members too
		members[self] = true
		if err == nil && slices.ContainsFunc(addrs, func(a netip.AddrPort) bool { return members[a] }) {
			delete(failing, p)
			continue
		}
		if err == nil {
			err = join(list, addrs)
		}
		if err == nil {
			delete(failing, p)
			c.log.Info("memberlist joined peer", "peer", p)
			continue
		}
		c.joinFailed(ctx, p, err, c.opts.RejoinInterval, failing)
	}
}

// join joins the member at addrs, exchanging the whole state with it.
func join(list *memberlist.Memberlist, addrs []netip.AddrPort) error {
	targets := make([]string, len(addrs))
	for i, a := range addrs {
		targets[i] = a.String()
	}
	_, err := list.Join(targets)
	return err
}

// joinFailed logs a failed join of peer p, at Warn the first time in a
// row and at Debug after that.
func (c *Cluster) joinFailed(ctx context.Context, p string, err error, every time.Duration, failing map[string]bool) {
	level := slog.LevelWarn
	if failing[p] {
		level = slog.LevelDebug
	}
	failing[p] = true
	c.log.Log(ctx, level, "memberlist cannot join peer; retrying", "peer", p, "every", every, "err", flatten(err))
}

// flatten turns memberlist's multierror, whose text spans lines, into a
// plain error.
func flatten(err error) error {
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		errs := m.WrappedErrors()
		if len(errs) == 1 {
			return errs[0]
		}
		return errors.Join(errs...)
	}
	return err
}

// resolve turns "host" or "host:port" into addresses; a host that is not
// an IP address is looked up.
func (c *Cluster) resolve(ctx context.Context, peer string) ([]netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
	}
	host, port := peer, c.opts.Port
	if h, p, err := net.SplitHostPort(peer); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("peer %q: bad port: %w", peer, err)
		}
		host, port = h, int(n)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, fmt.Errorf("peer %q: no host", peer)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(port))}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", peer, err)
	}
	out := make([]netip.AddrPort, len(ips))
	for i, a := range ips {
		out[i] = netip.AddrPortFrom(a.Unmap(), uint16(port))
	}
	return out, nil
}
