package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
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
