package membership

import (
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
	DefaultProbeInterval  = 100 * time.Millisecond
	DefaultProbeTimeout   = 50 * time.Millisecond
	DefaultGossipInterval = 100 * time.Millisecond
	DefaultSuspicionMult  = 2
	DefaultRejoinInterval = 10 * time.Second
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
	// Key is the AES key (16, 24 or 32 bytes, see ParseKey) that encrypts
	// and authenticates all traffic; members with another key, or none, are
	// kept out. nil means unencrypted and must be the caller's explicit
	// choice: an empty non-nil key is an error.
	Key []byte

	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration // shorter than ProbeInterval
	GossipInterval time.Duration
	SuspicionMult  int

	// RejoinInterval is how often Run asks for the peers again and joins
	// those that are not members.
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
	// alive maps the name of every alive member, this one included, to its
	// address; nil when not running. Guarded by mu.
	alive map[string]netip.AddrPort
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
	setDefault(&o.ProbeInterval, DefaultProbeInterval)
	setDefault(&o.ProbeTimeout, DefaultProbeTimeout)
	setDefault(&o.GossipInterval, DefaultGossipInterval)
	setDefault(&o.SuspicionMult, DefaultSuspicionMult)
	setDefault(&o.RejoinInterval, DefaultRejoinInterval)
	setDefault(&o.LeaveTimeout, DefaultLeaveGossipIntervals*o.GossipInterval)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", o.ProbeInterval},
		{"ProbeTimeout", o.ProbeTimeout},
		{"GossipInterval", o.GossipInterval},
		{"RejoinInterval", o.RejoinInterval},
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
// notify (may be nil) is called from Run's goroutine once the list exists
// and then after every change of the alive set; changes close together may
// be reported by one call, and Alive then gives the latest set. notify
// should return quickly; memberlist itself never waits for it.
//
// When ctx ends, Run leaves the cluster, waiting at most LeaveTimeout for
// the leave message to be gossiped, so the others drop this member at once,
// then shuts the memberlist down and returns. Run may be called once.
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
	self := list.LocalNode()
	c.log.Info("memberlist started", "name", self.Name, "address", self.Address(), "encrypted", c.opts.Key != nil)

	var wg sync.WaitGroup
	joinCtx, stopJoining := context.WithCancel(ctx)
	if peers != nil {
		wg.Go(func() { c.joinLoop(joinCtx, list, nodeAddr(self), peers) })
	}
	for done := false; !done; {
		select {
		case <-c.changed:
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
	if r {
		c.alive = map[string]netip.AddrPort{}
	} else {
		c.alive = nil
	}
	c.opts.Metrics.setMembers(len(c.alive))
}

// Alive returns the sorted names of the alive members, this one included,
// once Run has created the list; nil before and after.
func (c *Cluster) Alive() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.alive) == 0 {
		return nil
	}
	names := make([]string, 0, len(c.alive))
	for n := range c.alive {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Addr returns the address and port this member advertises, once Run has
// created the list (useful with Port 0); the zero value otherwise.
func (c *Cluster) Addr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive[c.opts.Name]
}

// memberAddrs returns the addresses of the alive members.
func (c *Cluster) memberAddrs() map[netip.AddrPort]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[netip.AddrPort]bool, len(c.alive))
	for _, a := range c.alive {
		m[a] = true
	}
	return m
}

// update records that member name is alive at addr, or not alive.
func (c *Cluster) update(name string, addr netip.AddrPort, alive bool) {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	_, was := c.alive[name]
	if alive {
		c.alive[name] = addr
	} else {
		delete(c.alive, name)
	}
	n := len(c.alive)
	c.opts.Metrics.setMembers(n)
	c.mu.Unlock()

	if was == alive {
		return
	}
	if alive {
		c.log.Info("memberlist member alive", "member", name, "address", addr, "members", n)
	} else {
		c.log.Info("memberlist member gone", "member", name, "members", n)
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// events receives memberlist's membership events. memberlist calls them
// one at a time while holding its own lock, so they must not call back into
// it, and do not block.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.update(n.Name, nodeAddr(n), true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.update(n.Name, nodeAddr(n), false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.update(n.Name, nodeAddr(n), true) }

func nodeAddr(n *memberlist.Node) netip.AddrPort {
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// joinLoop joins the peers that are not members now and every
// RejoinInterval until ctx ends. self, this member's address, is never
// joined (peers may well list it).
func (c *Cluster) joinLoop(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers func() []string) {
	t := time.NewTicker(c.opts.RejoinInterval)
	defer t.Stop()
	// failing holds the peers whose last join failed, so that a peer that
	// stays unreachable is reported once at Warn and then at Debug.
	failing := map[string]bool{}
	for {
		c.joinMissing(ctx, list, self, peers(), failing)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
			targets := make([]string, len(addrs))
			for i, a := range addrs {
				targets[i] = a.String()
			}
			_, err = list.Join(targets)
		}
		if err == nil {
			delete(failing, p)
			c.log.Info("memberlist joined peer", "peer", p)
			continue
		}
		level := slog.LevelWarn
		if failing[p] {
			level = slog.LevelDebug
		}
		failing[p] = true
		c.log.Log(ctx, level, "memberlist cannot join peer; retrying", "peer", p, "every", c.opts.RejoinInterval, "err", flatten(err))
	}
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
