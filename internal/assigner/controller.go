// Package assigner is the controller binary's reconciler: it watches
// Services, the configuration and Namespaces, asks the allocator for each
// Service's addresses and writes them, with a condition that explains the
// outcome, into the Service's status. It is the only package of the
// controller that talks to the API server.
package assigner

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
)

// Options configure the controller.
type Options struct {
	Class Class
	// Static, when set, is the configuration read from --config-file; the
	// cluster's ironlb objects are then not watched.
	Static *config.Config
	Log    *slog.Logger
	Events kube.EventSink
	// SeveralPerProcess lets tests run more than one controller in one
	// process (controller-runtime otherwise refuses a second controller of
	// the same name).
	SeveralPerProcess bool
	// ServiceCIDRs are the cluster's Service CIDRs, for clusters whose API
	// server serves no ServiceCIDR objects; no Service is given an address
	// inside them (forbidden.go).
	ServiceCIDRs []netip.Prefix
	// Registry receives the controller's metrics; nil keeps them
	// unregistered. Run gives controller-runtime's registry, which the
	// manager serves, unless told otherwise.
	Registry prometheus.Registerer
}

// Controller assigns addresses to Services.
type Controller struct {
	client client.Client
	// reader reads from the API server directly, bypassing the cache.
	reader  client.Reader
	opts    Options
	log     *slog.Logger
	metrics *metrics

	// mu guards everything below: the allocator is one state machine and
	// reconciles take turns on it.
	mu    sync.Mutex
	alloc *allocator.Allocator
	cfg   *config.Config
	// problems are the invalid configuration objects of cfg.
	problems config.Problems
	// forbid are the addresses no Service may be given (forbidden.go).
	forbid forbiddenState
	// configGen counts configuration changes; loadedGen is the one cfg has.
	configGen, loadedGen uint64
	// warm is set once the addresses in every Service's status are claimed.
	warm bool
	// lostAtStart holds conflicts found while claiming, reported on the
	// Service's first reconcile.
	lostAtStart map[string][]allocator.Loss

	// dirtyPools are pools whose status write is queued; poolWritten is
	// when each pool's status was last written.
	dirtyPools  map[string]bool
	poolWritten map[string]time.Time
	poolEvents  chan event.GenericEvent

	// configEvents asks reconcileConfigStatus to write the configuration
	// objects' Valid conditions; it holds at most one request.
	configEvents chan event.GenericEvent

	// waiting are the Services that may be served when another gives an
	// address up, by key (waiting.go).
	waiting map[string]*waiter
	// freed counts the addresses the decision under way gave up.
	freed int
	// wake queues the reconcile of Services served from elsewhere; it is
	// sent to without the lock.
	wake chan event.GenericEvent
}

// New returns a controller; SetupWithManager starts nothing until the
// manager runs.
func New(opts Options) *Controller {
	return &Controller{
		opts:         opts,
		log:          opts.Log,
		metrics:      newMetrics(),
		configGen:    1,
		lostAtStart:  map[string][]allocator.Loss{},
		dirtyPools:   map[string]bool{},
		poolWritten:  map[string]time.Time{},
		poolEvents:   make(chan event.GenericEvent, 1024),
		waiting:      map[string]*waiter{},
		configEvents: make(chan event.GenericEvent, 1),
		wake:         make(chan event.GenericEvent, 1024),
	}
}

// SetupWithManager registers the controller's watches with a manager.
func (c *Controller) SetupWithManager(mgr ctrl.Manager) error {
	c.client, c.reader = mgr.GetClient(), mgr.GetAPIReader()
	if err := c.metrics.register(c.opts.Registry); err != nil {
		return err
	}
	configChanged := handler.EnqueueRequestsFromMapFunc(c.configChanged)
	specOrLabels := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	b := ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(c.servicesOfNamespace), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(c.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: serviceWorkers, SkipNameValidation: &c.opts.SeveralPerProcess})
	if err := c.setupForbidden(mgr); err != nil {
		return err
	}
	if c.opts.Static == nil {
		b = b.Watches(&v1alpha1.IPPool{}, configChanged, specOrLabels).
			Watches(&v1alpha1.L2Advertisement{}, configChanged, specOrLabels).
			Watches(&v1alpha1.BGPPeer{}, configChanged, specOrLabels).
			Watches(&v1alpha1.BGPAdvertisement{}, configChanged, specOrLabels)
	}
	if err := b.Complete(reconcile.Func(c.reconcileService)); err != nil {
		return err
	}
	if c.opts.Static != nil {
		return nil
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("config-status").
		WatchesRawSource(source.Channel(c.configEvents, &handler.EnqueueRequestForObject{})).
		// The speakers' sessions, which the BGPPeers' status counts.
		Watches(&v1alpha1.NodeAnnouncement{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(configStatusKey)}}
		}), builder.WithPredicates(sessionsPredicate)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &c.opts.SeveralPerProcess}).
		Complete(reconcile.Func(c.reconcileConfigStatus)); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("ippool-status").
		For(&v1alpha1.IPPool{}, specOrLabels).
		WatchesRawSource(source.Channel(c.poolEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &c.opts.SeveralPerProcess}).
		Complete(reconcile.Func(c.reconcilePoolStatus))
}

// configChanged records a configuration change and asks for every Service
// to be looked at again.
func (c *Controller) configChanged(ctx context.Context, _ client.Object) []reconcile.Request {
	c.mu.Lock()
	c.configGen++
	c.mu.Unlock()
	select { // the configuration objects' status, even with no Service
	case c.configEvents <- event.GenericEvent{Object: configStatusKey}:
	default:
	}
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list); err != nil {
		c.log.Error("listing Services after a configuration change", "error", err)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	return reqs
}

func (c *Controller) servicesOfNamespace(ctx context.Context, ns client.Object) []reconcile.Request {
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
		c.log.Error("listing Services of a namespace", "namespace", ns.GetName(), "error", err)
		return nil
	}
	var reqs []reconcile.Request
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	return reqs
}

// syncConfigLocked reloads the configuration when it changed.
func (c *Controller) syncConfigLocked(ctx context.Context) error {
	if c.alloc != nil && c.loadedGen == c.configGen {
		return c.syncForbiddenLocked(ctx)
	}
	gen := c.configGen
	cfg, problems := c.opts.Static, config.Problems(nil)
	var poolNames []string // every IPPool object, valid or not
	if cfg == nil {
		snap, err := kube.ReadSnapshot(ctx, c.client)
		if err != nil {
			return fmt.Errorf("reading the configuration: %w", err)
		}
		cfg, problems = config.Resolve(snap)
		for _, p := range snap.IPPools {
			poolNames = append(poolNames, p.Name)
		}
	}
	for _, p := range problems {
		c.log.Warn("invalid configuration object", "kind", p.Kind, "name", p.Name, "field", p.Field, "error", p.Err)
	}
	if c.alloc == nil {
		c.alloc = allocator.New(cfg)
	} else {
		c.alloc.SetConfig(cfg)
	}
	c.cfg, c.problems, c.loadedGen = cfg, problems, gen
	c.log.Info("configuration loaded", "pools", len(cfg.Pools), "invalidObjects", len(problems))
	if c.opts.Static == nil {
		// Written by reconcileConfigStatus, without the lock.
		select {
		case c.configEvents <- event.GenericEvent{Object: configStatusKey}:
		default: // one is queued already, and reads the newest problems
		}
	}
	for _, p := range cfg.Pools {
		c.poolChangedLocked(p.Name)
	}
	for _, name := range poolNames {
		c.poolChangedLocked(name) // invalid ones too: their Valid condition changed
	}
	return c.syncForbiddenLocked(ctx)
}

// warmUpLocked claims, oldest Service first, the addresses every handled
// Service shows in its status, before any new address is handed out: a
// restart never moves an address, and of two Services claiming one, the
// older keeps it.
func (c *Controller) warmUpLocked(ctx context.Context) error {
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list); err != nil {
		return fmt.Errorf("listing Services: %w", err)
	}
	svcs := list.Items
	slices.SortFunc(svcs, func(a, b corev1.Service) int {
		if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	claimed := 0
	for i := range svcs {
		svc := &svcs[i]
		if !c.opts.Class.Handles(svc) || len(statusIPs(svc)) == 0 {
			continue
		}
		req, _ := requestFor(svc, c.namespaceLabels(ctx, svc.Namespace))
		req.KeepOnly = true // claim only; new addresses come in the reconcile
		res := c.alloc.Assign(req)
		if len(res.Lost) > 0 {
			c.lostAtStart[req.Key] = res.Lost
		}
		claimed++
	}
	c.warm = true
	c.log.Info("claimed the addresses in Service status", "services", claimed)
	return nil
}

func (c *Controller) namespaceLabels(ctx context.Context, name string) labels.Set {
	var ns corev1.Namespace
	if err := c.client.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
		return nil
	}
	return labels.Set(ns.Labels)
}

// serviceWorkers is how many Services are reconciled at once. Decisions
// take turns on the allocator; the API calls that write their outcome
// overlap.
const serviceWorkers = 16

func (c *Controller) reconcileService(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	write, served, err := c.decideAndServe(ctx, req)
	for _, n := range served {
		svc := &corev1.Service{}
		svc.Namespace, svc.Name = n.Namespace, n.Name
		c.wake <- event.GenericEvent{Object: svc}
	}
	if err != nil || write == nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, write(ctx)
}

// decideAndServe decides for the Service and, when that gave addresses
// up, serves the Services waiting for one; it returns the write that
// records the decision and the Services served.
func (c *Controller) decideAndServe(ctx context.Context, req reconcile.Request) (func(context.Context) error, []types.NamespacedName, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.freed = 0
	write, err := c.decideLocked(ctx, req)
	return write, c.serveWaitingLocked(c.freed), err
}

// decideLocked works out what a Service should hold and returns the API
// write that records it, to run without the lock.
func (c *Controller) decideLocked(ctx context.Context, req reconcile.Request) (func(context.Context) error, error) {
	if err := c.syncConfigLocked(ctx); err != nil {
		return nil, err
	}
	if !c.warm {
		if err := c.warmUpLocked(ctx); err != nil {
			return nil, err
		}
	}
	key := req.Namespace + "/" + req.Name
	var svc corev1.Service
	if err := c.client.Get(ctx, req.NamespacedName, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			c.releaseLocked(key)
			return nil, nil
		}
		return nil, err
	}
	if !c.opts.Class.Handles(&svc) {
		return c.forgetLocked(&svc), nil
	}

	r, invalid := requestFor(&svc, c.namespaceLabels(ctx, svc.Namespace))
	before := c.alloc.IPs(key)
	res := c.alloc.Assign(r)
	if invalid != nil {
		res.Err = invalid
	}
	if res.Err != nil && res.Err.Reason == allocator.ReasonUnknownPool {
		if ps := c.problems.For(v1alpha1.KindIPPool, r.Pool); len(ps) > 0 {
			res.Err = &allocator.Error{Reason: ReasonInvalidPool, Message: fmt.Sprintf("IPPool %q is invalid: %s: %v", r.Pool, ps[0].Field, ps[0].Err)}
		}
	}
	lost := append(c.lostAtStart[key], res.Lost...)
	delete(c.lostAtStart, key)
	for _, ip := range symmetricDiff(before, res.IPs) {
		if p := c.cfg.PoolFor(ip); p != nil {
			c.poolChangedLocked(p.Name)
		}
		if !slices.Contains(res.IPs, ip) {
			c.freed++
		}
	}
	c.noteWaitingLocked(&svc, r, res, time.Now())
	d := desiredStatus(&svc, res, c.poolName)
	d = forbiddenStatus(d, res, c.alloc.Excluded)
	return func(ctx context.Context) error {
		c.reportConflicts(ctx, &svc, lost, res.IPs)
		if err := c.writeStatus(ctx, &svc, d); err != nil {
			return err
		}
		return c.writeSourceRanges(ctx, &svc) // sourceranges.go
	}, nil
}

func (c *Controller) poolName(ip netip.Addr) string {
	if p := c.cfg.PoolFor(ip); p != nil {
		return p.Name
	}
	return ""
}

func symmetricDiff(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ip := range a {
		if !slices.Contains(b, ip) {
			out = append(out, ip)
		}
	}
	for _, ip := range b {
		if !slices.Contains(a, ip) {
			out = append(out, ip)
		}
	}
	return out
}

// releaseLocked gives up the addresses of a Service that is gone.
func (c *Controller) releaseLocked(key string) {
	delete(c.waiting, key)
	ips := c.alloc.IPs(key)
	if len(ips) == 0 {
		return
	}
	c.alloc.Release(key)
	delete(c.lostAtStart, key)
	c.freed += len(ips)
	c.log.Info("released", "service", key, "addresses", joinAddrs(ips))
	for _, ip := range ips {
		if p := c.cfg.PoolFor(ip); p != nil {
			c.poolChangedLocked(p.Name)
		}
	}
}

// forgetLocked handles a Service ironlb does not (or no longer) serve:
// its addresses are released, and the returned write removes what ironlb
// wrote into its status. Services that were never ironlb's are not written.
func (c *Controller) forgetLocked(svc *corev1.Service) func(context.Context) error {
	key := svc.Namespace + "/" + svc.Name
	ours := c.alloc.IPs(key)
	c.releaseLocked(key)
	if meta.FindStatusCondition(svc.Status.Conditions, ConditionIPAllocated) == nil {
		return nil
	}
	return func(ctx context.Context) error {
		orig := svc.DeepCopy()
		meta.RemoveStatusCondition(&svc.Status.Conditions, ConditionIPAllocated)
		meta.RemoveStatusCondition(&svc.Status.Conditions, ConditionSourceRangesValid)
		svc.Status.LoadBalancer.Ingress = slices.DeleteFunc(svc.Status.LoadBalancer.Ingress, func(in corev1.LoadBalancerIngress) bool {
			ip, err := netip.ParseAddr(in.IP)
			return err == nil && (slices.Contains(ours, ip) || ours == nil)
		})
		c.log.Info("no longer served: removing its ironlb status", "service", key, "type", svc.Spec.Type)
		err := c.client.Status().Patch(ctx, svc, client.StrategicMergeFrom(orig, client.MergeFromWithOptimisticLock{}))
		return client.IgnoreNotFound(err)
	}
}

// writeStatus writes the Service's status when it differs from what it
// should be, and records an event when the condition changes.
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, d desired) error {
	old := meta.FindStatusCondition(svc.Status.Conditions, ConditionIPAllocated)
	if sameIngress(svc.Status.LoadBalancer.Ingress, d.ingress) && sameCondition(old, d.cond) {
		return nil
	}
	changed := !sameCondition(old, d.cond)
	orig := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = d.ingress
	meta.SetStatusCondition(&svc.Status.Conditions, d.cond)
	if err := c.client.Status().Patch(ctx, svc, client.StrategicMergeFrom(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile; its deletion is queued and releases the address
		}
		return fmt.Errorf("writing the status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	if changed {
		c.metrics.results.WithLabelValues(d.cond.Reason).Inc()
		// A problem is worth an event, which kubectl describe shows; an
		// address handed out is not: the condition and the log say so, and
		// an event per Service would double the writes of a catch-up.
		if d.cond.Reason != ReasonAllocated {
			c.event(svc, corev1.EventTypeWarning, d.cond.Reason, "%s", d.cond.Message)
		}
		c.log.Info("service status", "service", svc.Namespace+"/"+svc.Name, "reason", d.cond.Reason, "message", d.cond.Message)
	}
	return nil
}

// reportConflicts sends a Warning event to both Services when one showed
// an address in its status that another held first.
func (c *Controller) reportConflicts(ctx context.Context, svc *corev1.Service, lost []allocator.Loss, now []netip.Addr) {
	for _, l := range lost {
		// Each event is read in its Service's namespace: a Service of
		// another namespace is not named (allocator/sharing.go).
		ns, name, _ := strings.Cut(l.Holder, "/")
		holderName, claimerName := "Service "+l.Holder, "Service "+svc.Namespace+"/"+svc.Name
		if ns != svc.Namespace {
			holderName, claimerName = "a Service of another namespace", "a Service of another namespace"
		}
		c.event(svc, corev1.EventTypeWarning, ReasonIPConflict, "%s is held by %s, which had it first; this Service now has %s", l.Addr, holderName, joinAddrs(now))
		var holder corev1.Service
		if err := c.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &holder); err == nil {
			c.event(&holder, corev1.EventTypeWarning, ReasonIPConflict, "%s also claimed %s in its status; this Service had it first and keeps it", claimerName, l.Addr)
		}
	}
}

func (c *Controller) event(obj runtime.Object, eventType, reason, format string, args ...any) {
	if c.opts.Events != nil {
		c.opts.Events.Eventf(obj, nil, eventType, reason, "Allocate", format, args...)
	}
}

// poolChangedLocked updates a pool's metrics and asks for its status to be
// written.
func (c *Controller) poolChangedLocked(name string) {
	for _, f := range []allocator.Family{allocator.IPv4, allocator.IPv6} {
		counts, ok := c.alloc.Counts(name, f)
		if !ok {
			c.metrics.forgetPool(name, f)
			continue
		}
		c.metrics.setPool(name, f, counts)
	}
	if c.opts.Static != nil {
		return
	}
	if c.dirtyPools[name] {
		return // its status write is queued already and reads counts then
	}
	c.dirtyPools[name] = true
	pool := &v1alpha1.IPPool{}
	pool.Name = name
	// At most one event per pool is in flight, and the channel's reader
	// only feeds the work queue, so this send does not block for long.
	c.poolEvents <- event.GenericEvent{Object: pool}
}
