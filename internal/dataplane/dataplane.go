// Package dataplane hands the traffic that arrives for LoadBalancer
// addresses to where it belongs, with nftables rules in tables of
// ironlb's own ("ip ironlb" and "ip6 ironlb"); it touches nothing else.
//
// The speaker says what it wants with Set, a list of Frontends (an
// address, protocol and port, and the backends to DNAT to); Run applies
// the latest list, one transaction per family, writing only what changed
// since the last sync (worked out from the frontends that changed, not
// from the whole list), and the whole table on start, periodically and
// after a failure. Cleanup removes the tables.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/internal/pace"
)

// Protocol is a frontend's transport protocol, as nft writes it.
type Protocol string

const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Frontend is one address, protocol and port to forward.
type Frontend struct {
	Addr     netip.Addr
	Protocol Protocol
	Port     uint16
	// Backends are where new connections go, each with the same chance.
	// With none, connections are rejected (TCP reset, ICMP port
	// unreachable otherwise), as they are for every port of Addr that no
	// frontend names.
	Backends []Backend
	// Affinity, when not 0, sends a client back to the backend it last
	// went to if it comes again within this time (sessionAffinity:
	// ClientIP).
	Affinity time.Duration
	// SourceRanges, when not nil, limit the clients that may open
	// connections (loadBalancerSourceRanges); a new connection from any
	// other client is dropped before DNAT. nil: every client.
	SourceRanges *SourceRanges
}

// Backend is a DNAT target.
type Backend struct {
	netip.AddrPort
	// Masquerade: the backend is reached off this node, so the source
	// address is rewritten to the node's and the replies come back
	// through it.
	Masquerade bool
}

// Options configure a Dataplane.
type Options struct {
	Log     *slog.Logger
	Metrics *Metrics
	// Resync is how often the tables are written in full, which repairs
	// anything changed behind ironlb's back; by default an hour.
	Resync time.Duration
	// RetryInterval is the wait after a failed sync; by default 5s.
	RetryInterval time.Duration
	// NFT replaces the nft command per family ("ip", "ip6"), for tests.
	NFT map[knftables.Family]knftables.Interface
	// Synced, when set, is called by Run after every list it applied,
	// with the list; it must not block (benchmarks time changes with it).
	Synced func([]Frontend)
}

// Dataplane owns ironlb's nftables tables.
type Dataplane struct {
	opts Options
	log  *slog.Logger
	fams []*table

	mu      sync.Mutex
	desired []Frontend
	// fresh: desired holds something Run has not applied yet.
	fresh bool
	kick  chan struct{}

	// last is the list the previous Sync was given; only Sync touches
	// it (and so, once running, only Run's goroutine).
	last desired
}

// table is one family's table and what was last written to it.
type table struct {
	f   family
	nft knftables.Interface
	// applied is the model the table holds; nil when that is not known
	// (before the first sync and after a failed one), so the next sync
	// writes it whole.
	applied *model
	// inStep: applied was laid out frontend by frontend from the list
	// Dataplane.last holds, so the next sync may change it in place by
	// the frontends that changed. Not so after a list that named a
	// frontend twice: the next sync then compares whole models.
	inStep bool
}

// New checks that nft can be run and returns a Dataplane; nothing is
// written until Run or Sync.
func New(o Options) (*Dataplane, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Resync == 0 {
		o.Resync = time.Hour
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = 5 * time.Second
	}
	d := &Dataplane{opts: o, log: o.Log, kick: make(chan struct{}, 1)}
	for _, f := range []family{ipv4, ipv6} {
		nft, err := open(o, f)
		if err != nil {
			return nil, err
		}
		d.fams = append(d.fams, &table{f: f, nft: nft})
	}
	return d, nil
}

func open(o Options, f family) (knftables.Interface, error) {
	if nft := o.NFT[f.nft]; nft != nil {
		return nft, nil
	}
	nft, err := knftables.New(f.nft, tableName)
	if err != nil {
		return nil, fmt.Errorf("nftables (family %s) cannot be used: %w", f.nft, err)
	}
	return nft, nil
}

// Set records the frontends to forward; Run applies them. It never
// blocks, and when calls come faster than syncs, only the latest counts.
// fes, and the Backends and SourceRanges its frontends point to, must
// not be changed afterwards; a caller that passes an unchanged
// frontend's Backends slice again saves the sync comparing it.
func (d *Dataplane) Set(fes []Frontend) {
	d.mu.Lock()
	d.desired, d.fresh = fes, true
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run applies what Set asks until ctx ends, and writes the tables in full
// every Options.Resync. It waits for the first Set before writing, so a
// restarted speaker keeps the previous run's rules until it knows what it
// wants. The tables stay when it returns: use Cleanup to remove them.
func (d *Dataplane) Run(ctx context.Context) error {
	resync := time.NewTicker(d.opts.Resync)
	defer resync.Stop()
	var retry <-chan time.Time
	started := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick:
		case <-retry:
		case <-resync.C:
			for _, t := range d.fams {
				t.applied = nil
			}
		}
		d.mu.Lock()
		fes, fresh := d.desired, d.fresh
		d.fresh = false
		d.mu.Unlock()
		started = started || fresh
		if !started {
			continue
		}
		retry = nil
		start := time.Now()
		if err := d.Sync(ctx, fes); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.Error("forwarding sync failed; writing the tables in full", "retry", d.opts.RetryInterval, "error", err)
			retry = time.After(d.opts.RetryInterval)
			continue
		}
		if d.opts.Synced != nil {
			d.opts.Synced(fes)
		}
		d.mu.Lock()
		busy := d.fresh
		d.mu.Unlock()
		if busy {
			// Each nft run reads the whole table back from the kernel:
			// while lists keep coming, pace the runs (see package pace);
			// the lists that arrive meanwhile go in one sync.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pace.Pause(time.Since(start))):
			}
		}
	}
}

// Sync makes the tables forward fes, now. Run calls it; it must not be
// called while Run runs. Like Set, it keeps referring to what the
// frontends of fes point to.
//
// fes is compared with the previous list frontend by frontend, and each
// table's model is changed by the frontends that changed only; the
// model is laid out whole when the table is written whole, and when fes
// names a frontend twice.
func (d *Dataplane) Sync(ctx context.Context, fes []Frontend) error {
	chs, dup := d.last.update(fes)
	var errs []error
	for i, t := range d.fams {
		if err := d.syncTable(ctx, t, fes, chs[i], dup); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Dataplane) syncTable(ctx context.Context, t *table, fes []Frontend, chs []change, dup bool) error {
	start := time.Now()
	tx := t.nft.NewTransaction()
	m, kind, err := d.plan(ctx, t, fes, chs, dup, tx)
	if err != nil {
		return d.failed(t, kind, start, m, fmt.Errorf("listing table %s %s: %w", t.f.nft, tableName, err), tx)
	}
	ops := tx.NumOperations()
	if ops > 0 {
		err = t.nft.Run(ctx, tx)
	}
	if err != nil && kind == "full" {
		// A table this code cannot write over (an older layout, say) is
		// replaced, in the same transaction that deletes it.
		d.log.Warn("could not write the table in place; replacing it", "family", t.f.nft, "error", err)
		tx = t.nft.NewTransaction()
		tx.Add(&knftables.Table{})
		tx.Delete(&knftables.Table{})
		writeFull(t.f, m, tx, nil, nil)
		err = t.nft.Run(ctx, tx)
	}
	if err != nil {
		return d.failed(t, kind, start, m, err, tx)
	}
	took := time.Since(start)
	d.opts.Metrics.observe(string(t.f.nft), kind, took, nil, m)
	t.applied, t.inStep = m, !dup
	if ops > 0 {
		d.log.Debug("forwarding synced", "family", t.f.nft, "kind", kind, "operations", ops,
			"frontends", len(m.sets[idServices]), "backends", m.counts()["backends"], "took", took)
	}
	return nil
}

// plan puts into tx what makes t's table forward fes, and returns the
// model the table holds once tx has run. chs are fes's changes in t's
// family since the last sync; dup says fes names a frontend twice. The
// error is one of listing the table.
func (d *Dataplane) plan(ctx context.Context, t *table, fes []Frontend, chs []change, dup bool, tx *knftables.Transaction) (*model, string, error) {
	switch {
	case t.applied == nil:
		// What the table holds is not known: write it whole, in place, so
		// that affinity client sets keep their clients and traffic never
		// sees the table empty.
		m := buildModel(t.f, fes)
		chains, sets, err := existing(ctx, t.nft)
		if err != nil {
			return m, "full", err
		}
		writeFull(t.f, m, tx, chains, sets)
		return m, "full", nil
	case t.inStep && !dup:
		// The model is changed in place: until tx has run, what the
		// table holds is not known.
		m := t.applied
		t.applied = nil
		writeDelta(t.f, tx, m.update(t.f, chs), m)
		return m, "partial", nil
	default:
		m := buildModel(t.f, fes)
		writeDelta(t.f, tx, diffModels(t.applied, m), m)
		return m, "partial", nil
	}
}

// failed records a failed sync: the next one writes the table whole.
func (d *Dataplane) failed(t *table, kind string, start time.Time, m *model, err error, tx *knftables.Transaction) error {
	t.applied = nil
	d.opts.Metrics.observe(string(t.f.nft), kind, time.Since(start), err, m)
	d.log.Error("nftables transaction failed", "family", t.f.nft, "kind", kind,
		"error", err, "transaction", excerpt(tx.String(), 200))
	return fmt.Errorf("%s table: %s sync: %w", t.f.nft, kind, err)
}

// existing lists the chains and sets the table holds; none when it does
// not exist.
func existing(ctx context.Context, nft knftables.Interface) (chains, sets []string, err error) {
	chains, err = nft.List(ctx, "chains")
	if knftables.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	sets, err = nft.List(ctx, "sets")
	if knftables.IsNotFound(err) {
		return nil, nil, nil
	}
	return chains, sets, err
}

// Cleanup removes ironlb's tables, and with them every rule ironlb made.
// Tables that do not exist are fine.
func Cleanup(ctx context.Context, o Options) error {
	var errs []error
	for _, f := range []family{ipv4, ipv6} {
		nft, err := open(o, f)
		if err != nil {
			return err
		}
		tx := nft.NewTransaction()
		tx.Add(&knftables.Table{})
		tx.Delete(&knftables.Table{})
		if err := nft.Run(ctx, tx); err != nil {
			errs = append(errs, fmt.Errorf("removing table %s %s: %w", f.nft, tableName, err))
		}
	}
	return errors.Join(errs...)
}

// excerpt is the first max lines of s, and how many were left out.
func excerpt(s string, max int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= max {
		return s
	}
	return strings.Join(lines[:max], "") + fmt.Sprintf("... (%d more lines)\n", len(lines)-max)
}
