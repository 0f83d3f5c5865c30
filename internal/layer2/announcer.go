// Package layer2 puts the speaker's layer 2 decisions on the wire: it
// answers ARP requests (IPv4) and neighbor solicitations (IPv6) for the
// LoadBalancer addresses this node owns, on the interfaces chosen for
// them, and announces an address with gratuitous ARP / unsolicited
// neighbor advertisements when this node gains it. The addresses are not
// configured on any interface. See README.md for how it works.
package layer2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	// DefaultGratuitousCount frames are sent for an address gained on an
	// interface.
	DefaultGratuitousCount = 3
	// DefaultGratuitousInterval spaces them: the first goes out at once,
	// so failover is not slowed, and the burst spans two seconds, so one
	// lost frame or a port that is still settling does not leave
	// neighbours on the old MAC.
	DefaultGratuitousInterval = time.Second
)

const (
	// resyncInterval: Run looks at the interfaces this often even without
	// netlink events, retrying responders that could not open.
	resyncInterval = 30 * time.Second
	// resubscribeDelay: the pause before subscribing to netlink again
	// after a subscription broke.
	resubscribeDelay = time.Second
)

// Options configure an Announcer; zero values get the defaults.
type Options struct {
	// Log is required.
	Log *slog.Logger
	// Metrics may be nil: no metrics.
	Metrics *Metrics
	// GratuitousCount is the number of frames in the burst sent when an
	// address is gained on an interface (DefaultGratuitousCount when 0;
	// negative: none).
	GratuitousCount int
	// GratuitousInterval is the spacing of the burst
	// (DefaultGratuitousInterval when 0).
	GratuitousInterval time.Duration
	// Repeat, when not 0, re-sends one gratuitous frame for every owned
	// address this often, for switches and hosts that age entries out.
	Repeat time.Duration
	// Claimed, when set, is told of every gratuitous ARP or unsolicited
	// NA from another host for an address this node answers for: the
	// successor of an address being handed off, or a conflict. It is
	// called from a responder's goroutine and must not block; it returns
	// whether the claim was expected, and an unexpected one is logged as
	// a warning.
	Claimed func(addr netip.Addr, mac net.HardwareAddr) (expected bool)
}

// Announcer answers for the addresses of the latest Set.
type Announcer struct {
	log      *slog.Logger
	metrics  *Metrics
	count    int
	interval time.Duration
	repeat   time.Duration
	claimed  func(netip.Addr, net.HardwareAddr) bool
	kick     chan struct{} // capacity 1: a responder asks Run for a resync
	// macs holds the MACs of this node's interfaces as of the last
	// listing, for responders, which must not take mu.
	macs atomic.Pointer[map[string]bool]
	// settled holds the indexes of the interfaces other than veths as of
	// the last listing, for the netlink subscription: an address coming
	// or going there changes nothing (kube-ipvs0 gains one per Service),
	// while on a veth, or an interface not listed yet, it can change
	// whether the interface is used by default.
	settled atomic.Pointer[map[int]bool]
	// conflicts rate-limits the warning about other hosts announcing
	// owned addresses; it has its own lock, as responders use it.
	conflicts *conflictLog

	// mu guards the fields below. Set and Run's resyncs hold it for a
	// whole reconcile (interface listing, sockets opened and closed);
	// the responders' goroutines never take it.
	mu         sync.Mutex
	desired    map[netip.Addr][]string
	links      []link // the last successful listing
	running    bool
	responders map[key]*responder
	openErrs   map[key]error           // wanted responders that failed to open, retried on every resync
	announced  map[netip.Addr][]string // as last logged
	// skipped holds the interfaces left out of "every interface" as of
	// the last listing (name -> reason), and skipLogged whether they
	// were logged once already: the first list is logged at Info, later
	// changes (a pod's veth coming) only at Debug.
	skipped    map[string]string
	skipLogged bool
}

// New returns an Announcer; it starts nothing.
func New(o Options) *Announcer {
	if o.Log == nil {
		panic("layer2: Options.Log is required")
	}
	a := &Announcer{
		log:        o.Log,
		metrics:    o.Metrics,
		count:      o.GratuitousCount,
		interval:   o.GratuitousInterval,
		repeat:     o.Repeat,
		claimed:    o.Claimed,
		kick:       make(chan struct{}, 1),
		desired:    map[netip.Addr][]string{},
		responders: map[key]*responder{},
		openErrs:   map[key]error{},
		announced:  map[netip.Addr][]string{},
		skipped:    map[string]string{},
		conflicts:  newConflictLog(o.Log, conflictInterval),
	}
	if a.count == 0 {
		a.count = DefaultGratuitousCount
	}
	if a.interval <= 0 {
		a.interval = DefaultGratuitousInterval
	}
	return a
}

// Set replaces the desired state: for every owned address, the interfaces
// to answer on (nil or empty: every interface that is up, Ethernet, not
// loopback, and not skipped by default: bridge or bond ports, NOARP,
// pods' veths, tunnels, dummies and the interfaces of CNIs and container
// engines; see skipReason). An interface named is used whatever its
// type or name. It may be called
// again and again, from any goroutine, before or during Run. While Run
// runs, addresses gained are announced on each of their interfaces, and
// addresses lost are not answered any more once Set returns.
//
// The error joins one error per problem, and the desire is kept whatever
// it says: named interfaces that do not exist (ErrNoSuchInterface; used
// once they appear, dropped while they are gone) or cannot answer
// (ErrNotEthernet), and responders that could not open, such as NDP on an
// interface without IPv6 (ErrNoLinkLocal; IPv4 there is not affected, and
// NDP starts once IPv6 comes up).
func (a *Announcer) Set(desired map[netip.Addr][]string) error {
	d, err := normalize(desired)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.desired = d
	var n [2]int
	for addr := range d {
		n[familyOf(addr)]++
	}
	a.metrics.setOwned(ipv4, n[ipv4])
	a.metrics.setOwned(ipv6, n[ipv6])
	return errors.Join(err, a.syncLocked())
}

// Announced reports where each address is answered right now: address ->
// sorted interface names.
func (a *Announcer) Announced() map[netip.Addr][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.announcedLocked()
}

func (a *Announcer) announcedLocked() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for k, r := range a.responders {
		for _, addr := range r.addresses() {
			out[addr] = append(out[addr], k.name)
		}
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

// Run follows the interfaces (netlink link and address events, and a
// periodic resync) and keeps one responder per interface and family that
// has addresses to answer for. It returns nil once ctx ends and every
// socket is closed, or an error at once if Run is already running.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("layer2: Run is already running")
	}
	a.running = true
	a.mu.Unlock()
	defer a.stop()

	tick := time.NewTicker(resyncInterval)
	defer tick.Stop()
	var sub *subscription
	defer func() { sub.close() }()
	for {
		if sub == nil {
			s, err := subscribe(a.log, a.addressesMatter)
			if err != nil {
				a.log.Warn("layer2: cannot follow interfaces through netlink; retrying", "error", err)
			}
			sub = s
		}
		a.resync()

		var events, broken <-chan struct{}
		var resubscribe <-chan time.Time
		if sub != nil {
			events, broken = sub.events, sub.broken
		} else {
			resubscribe = time.After(resubscribeDelay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-events:
		case <-broken:
			// Events may have been lost (a full socket buffer ends the
			// subscription): subscribe again, and the resync at the top
			// of the loop catches up.
			a.log.Warn("layer2: netlink subscription ended; subscribing again")
			sub.close()
			sub = nil
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(resubscribeDelay):
			}
		case <-resubscribe:
		case <-a.kick:
		case <-tick.C:
		}
	}
}

// addressesMatter reports whether a change of the addresses of the
// interface with this index can change the plan: it was a veth at the
// last listing, or is newer than that.
func (a *Announcer) addressesMatter(index int) bool {
	s := a.settled.Load()
	return s == nil || !(*s)[index]
}

// localMAC reports whether m belongs to one of this node's interfaces.
func (a *Announcer) localMAC(m net.HardwareAddr) bool {
	macs := a.macs.Load()
	return macs != nil && (*macs)[string(m)]
}

// requestResync asks Run for a resync; it never blocks.
func (a *Announcer) requestResync() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Announcer) resync() {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Set reports the errors to its caller; open failures are logged
	// when they change.
	_ = a.syncLocked()
}

// stop closes every responder; Run ends with it.
func (a *Announcer) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, r := range a.responders {
		r.close()
		delete(a.responders, k)
		a.metrics.forget(k)
	}
	clear(a.openErrs)
	a.running = false
	a.logChangesLocked()
}

// syncLocked lists the interfaces, plans, and (while Run runs) applies.
func (a *Announcer) syncLocked() error {
	var listErr error
	links, err := listLinks(wantsEvery(a.desired))
	if err != nil {
		listErr = fmt.Errorf("layer2: listing interfaces: %w", err)
		links = a.links // plan with what was last seen; lost addresses still stop
	} else {
		a.links = links
		macs := make(map[string]bool, len(links))
		settled := make(map[int]bool, len(links))
		for _, l := range links {
			macs[string(l.MAC)] = true
			if l.Kind != "veth" {
				settled[l.Index] = true
			}
		}
		a.macs.Store(&macs)
		a.settled.Store(&settled)
		a.logSkippedLocked(links)
	}
	a.conflicts.forget(func(addr netip.Addr) bool { _, ok := a.desired[addr]; return ok })
	want, planErr := plan(a.desired, links)
	if !a.running {
		return errors.Join(listErr, planErr)
	}
	return errors.Join(listErr, planErr, a.applyLocked(want, links))
}

// applyLocked converges the responders on want: it opens and updates
// first, then closes responders nothing needs any more.
func (a *Announcer) applyLocked(want map[key]addrSet, links []link) error {
	byName := make(map[string]link, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	var errs []error
	for _, k := range slices.SortedFunc(maps.Keys(want), compareKeys) {
		l := byName[k.name]
		r := a.responders[k]
		if r != nil && (r.cfg.index != l.Index || string(r.cfg.mac) != string(l.MAC)) {
			// The interface was replaced or changed its MAC.
			r.close()
			delete(a.responders, k)
			r = nil
		}
		if r == nil {
			var err error
			if r, err = a.openLocked(k, l); err != nil {
				err = fmt.Errorf("layer2: cannot answer for %v on %s: %w", want[k].sorted(), k.name, err)
				if prev := a.openErrs[k]; prev == nil || prev.Error() != err.Error() {
					a.log.Warn("layer2: responder did not open; retrying on interface changes", "interface", k.name, "family", k.fam, "error", err)
				}
				a.openErrs[k] = err
				errs = append(errs, err)
				continue
			}
			delete(a.openErrs, k)
			a.responders[k] = r
			r.start()
			a.log.Info("layer2: responder open", "interface", k.name, "family", k.fam, "mac", l.MAC.String())
		}
		if _, _, err := r.update(want[k]); err != nil {
			errs = append(errs, err)
		}
	}
	for k, r := range a.responders {
		if _, ok := want[k]; !ok {
			r.close()
			delete(a.responders, k)
			// The interface is gone or no longer used: its series go,
			// or every pod that ever had a responder would keep some.
			a.metrics.forget(k)
			a.log.Info("layer2: responder closed", "interface", k.name, "family", k.fam)
		}
	}
	for k := range a.openErrs {
		if _, ok := want[k]; !ok {
			delete(a.openErrs, k)
		}
	}
	a.logChangesLocked()
	return errors.Join(errs...)
}

func (a *Announcer) openLocked(k key, l link) (*responder, error) {
	ifi, err := net.InterfaceByIndex(l.Index)
	if err != nil {
		return nil, err
	}
	if ifi.Name != l.Name {
		return nil, fmt.Errorf("interface %d is now %q", l.Index, ifi.Name)
	}
	return openResponder(k, ifi, responderConfig{
		log:        a.log,
		metrics:    a.metrics,
		count:      max(a.count, 0),
		interval:   a.interval,
		repeat:     a.repeat,
		readFailed: a.requestResync,
		local:      a.localMAC,
		claimed:    a.claimed,
		conflicts:  a.conflicts,
	})
}

// maxSkippedLogged bounds the interface names logged per reason: a node
// with a thousand pods has a thousand veths.
const maxSkippedLogged = 20

// logSkippedLocked logs the interfaces left out of "every interface",
// once: the first time an address is to be answered on every interface,
// at Info, so an operator sees where the node does not answer and why;
// afterwards only the interfaces newly skipped, at Debug, since pods come
// and go all day.
func (a *Announcer) logSkippedLocked(links []link) {
	now := skipped(links)
	if !wantsEvery(a.desired) {
		a.skipped = now
		return
	}
	var fresh []string
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if a.skipped[name] != now[name] {
			fresh = append(fresh, name+" ("+now[name]+")")
		}
	}
	a.skipped = now
	switch {
	case !a.skipLogged:
		a.skipLogged = true
		byReason := map[string][]string{}
		for _, name := range slices.Sorted(maps.Keys(now)) {
			byReason[now[name]] = append(byReason[now[name]], name)
		}
		for r, names := range byReason {
			if len(names) > maxSkippedLogged {
				byReason[r] = append(names[:maxSkippedLogged:maxSkippedLogged], fmt.Sprintf("and %d more", len(names)-maxSkippedLogged))
			}
		}
		a.log.Info("layer2: interfaces not answered on unless an L2Advertisement names them", "count", len(now), "skipped", byReason)
	case len(fresh) > 0:
		a.log.Debug("layer2: more interfaces not answered on unless named", "skipped", fresh)
	}
}

// logChangesLocked logs every address whose interfaces changed since the
// last call.
func (a *Announcer) logChangesLocked() {
	now := a.announcedLocked()
	for _, addr := range sortedKeys(now) {
		if !slices.Equal(now[addr], a.announced[addr]) {
			a.log.Info("layer2: answering", "address", addr, "interfaces", now[addr])
		}
	}
	for _, addr := range sortedKeys(a.announced) {
		if _, ok := now[addr]; !ok {
			a.log.Info("layer2: no longer answering", "address", addr)
		}
	}
	a.announced = now
}

func compareKeys(x, y key) int {
	if x.name != y.name {
		if x.name < y.name {
			return -1
		}
		return 1
	}
	return int(x.fam) - int(y.fam)
}
