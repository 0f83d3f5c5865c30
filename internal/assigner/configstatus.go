package assigner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
	"github.com/ironlb/ironlb/internal/kube"
)

// ConditionValid is the condition on every configuration object telling
// whether ironlb uses it.
const ConditionValid = "Valid"

// validCondition says whether an object is valid, with its problems.
func validCondition(problems []*config.ObjectError, generation int64) metav1.Condition {
	if len(problems) == 0 {
		return metav1.Condition{Type: ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid", Message: "in use", ObservedGeneration: generation}
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Field + ": " + p.Err.Error()
	}
	return metav1.Condition{Type: ConditionValid, Status: metav1.ConditionFalse, Reason: "Invalid", Message: strings.Join(msgs, "; "), ObservedGeneration: generation}
}

// configStatusKey names the one work item of reconcileConfigStatus.
var configStatusKey = &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "configuration"}}

// reconcileConfigStatus writes the Valid condition of every advertisement
// and peer whose condition changed, and the peers' session counts; pools
// get theirs with their counts, in reconcilePoolStatus. The problems are read under the lock, the writes
// made without it; a failed write fails the reconcile, which the work
// queue retries with backoff.
func (c *Controller) reconcileConfigStatus(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	c.mu.Lock()
	err := c.syncConfigLocked(ctx)
	problems := c.problems
	c.mu.Unlock()
	if err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, c.writeConfigStatus(ctx, problems)
}

func (c *Controller) writeConfigStatus(ctx context.Context, problems config.Problems) error {
	snap, err := kube.ReadSnapshot(ctx, c.client)
	if err != nil {
		return err
	}
	var nodes v1alpha1.NodeAnnouncementList
	if err := c.client.List(ctx, &nodes); err != nil {
		return err
	}
	l2, peers, bgp := snap.L2Advertisements, snap.BGPPeers, snap.BGPAdvertisements
	sessions := countSessions(nodes.Items)
	var objs []statusObject
	var errs []error
	for i := range l2 {
		objs = append(objs, statusObject{obj: &l2[i], conds: &l2[i].Status.Conditions, kind: v1alpha1.KindL2Advertisement})
	}
	for i := range peers {
		st := &peers[i].Status
		objs = append(objs, statusObject{obj: &peers[i], conds: &st.Conditions, kind: v1alpha1.KindBGPPeer,
			set: func() bool { return setSessions(st, sessions[peers[i].Name]) }})
	}
	for i := range bgp {
		objs = append(objs, statusObject{obj: &bgp[i], conds: &bgp[i].Status.Conditions, kind: v1alpha1.KindBGPAdvertisement})
	}
	for _, o := range objs {
		orig := o.obj.DeepCopyObject().(client.Object)
		changed := false
		cond := validCondition(problems.For(o.kind, o.obj.GetName()), o.obj.GetGeneration())
		if !sameCondition(meta.FindStatusCondition(*o.conds, ConditionValid), cond) {
			meta.SetStatusCondition(o.conds, cond)
			changed = true
		}
		if o.set != nil && o.set() {
			changed = true
		}
		if !changed {
			continue
		}
		if err := c.client.Status().Patch(ctx, o.obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("writing the status of %s %s: %w", o.kind, o.obj.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

type statusObject struct {
	obj   client.Object
	conds *[]metav1.Condition
	kind  string
	// set, when not nil, sets the rest of the status the controller
	// writes and says whether it changed anything.
	set func() bool
}

// sessionCount is how many nodes report a session with one BGPPeer, and
// how many of those sessions are up.
type sessionCount struct {
	total, established int32
}

// countSessions counts, per BGPPeer name, the sessions the speakers
// report in their NodeAnnouncements. It is pure.
func countSessions(nodes []v1alpha1.NodeAnnouncement) map[string]sessionCount {
	out := map[string]sessionCount{}
	for _, n := range nodes {
		for _, s := range n.Status.BGPSessions {
			c := out[s.Peer]
			c.total++
			if s.State == sessionEstablished {
				c.established++
			}
			out[s.Peer] = c
		}
	}
	return out
}

// sessionEstablished is the state a speaker reports for a session that is
// up (internal/bgp's StateEstablished, which the controller does not link).
const sessionEstablished = "Established"

// setSessions writes a peer's session counts into its status and says
// whether they changed.
func setSessions(st *v1alpha1.BGPPeerStatus, c sessionCount) bool {
	text := fmt.Sprintf("%d/%d", c.established, c.total)
	if st.Sessions == text && st.TotalSessions == c.total && st.EstablishedSessions == c.established {
		return false
	}
	st.Sessions, st.TotalSessions, st.EstablishedSessions = text, c.total, c.established
	return true
}

// sessionsPredicate passes the NodeAnnouncement events that change a
// peer's session counts, and not the many that change only addresses.
var sessionsPredicate = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool { return hasSessions(e.Object) },
	DeleteFunc: func(e event.DeleteEvent) bool { return hasSessions(e.Object) },
	UpdateFunc: func(e event.UpdateEvent) bool {
		a, okA := e.ObjectOld.(*v1alpha1.NodeAnnouncement)
		b, okB := e.ObjectNew.(*v1alpha1.NodeAnnouncement)
		return !okA || !okB || sessionsChanged(a, b)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

func hasSessions(o client.Object) bool {
	n, ok := o.(*v1alpha1.NodeAnnouncement)
	return !ok || len(n.Status.BGPSessions) > 0
}

// sessionsChanged tells whether a NodeAnnouncement's change matters to
// the peers' session counts: a session came, went or changed state.
func sessionsChanged(a, b *v1alpha1.NodeAnnouncement) bool {
	return !slices.EqualFunc(a.Status.BGPSessions, b.Status.BGPSessions, func(x, y v1alpha1.BGPSession) bool {
		return x.Peer == y.Peer && x.State == y.State
	})
}

// poolStatusInterval is the least time between two status writes of one
// pool: under a burst of allocations its counts are written once a second,
// not once per Service.
const poolStatusInterval = time.Second

// reconcilePoolStatus writes a pool's counts and Valid condition. It reads
// the pool from the API server rather than the cache, so it never skips a
// write because the cache lags behind its own last one.
func (c *Controller) reconcilePoolStatus(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	want, wait, err := c.poolStatus(ctx, req.Name)
	if err != nil || wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, err
	}
	var pool v1alpha1.IPPool
	if err := c.reader.Get(ctx, types.NamespacedName{Name: req.Name}, &pool); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	cond := poolCondition(req.Name, want.problems, want.hazards, pool.Generation)
	if equalCounts(pool.Status.IPv4, want.ipv4) && equalCounts(pool.Status.IPv6, want.ipv6) &&
		sameCondition(meta.FindStatusCondition(pool.Status.Conditions, ConditionValid), cond) {
		return reconcile.Result{}, nil
	}
	orig := pool.DeepCopy()
	pool.Status.IPv4, pool.Status.IPv6 = want.ipv4, want.ipv6
	meta.SetStatusCondition(&pool.Status.Conditions, cond)
	if err := c.client.Status().Patch(ctx, &pool, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return reconcile.Result{}, fmt.Errorf("writing the status of IPPool %s: %w", req.Name, client.IgnoreNotFound(err))
	}
	c.mu.Lock()
	c.poolWritten[req.Name] = time.Now()
	c.mu.Unlock()
	return reconcile.Result{}, nil
}

type poolWant struct {
	ipv4, ipv6 *v1alpha1.AddressCounts
	problems   []*config.ObjectError
	// hazards are the forbidden addresses the pool holds (forbidden.go).
	hazards []hazard
}

// poolStatus works out a pool's status under the lock, or how long to wait
// before writing it.
func (c *Controller) poolStatus(ctx context.Context, name string) (poolWant, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wait := poolStatusInterval - time.Since(c.poolWritten[name]); wait > 0 {
		return poolWant{}, wait, nil // stays dirty: later changes ride on this requeue
	}
	delete(c.dirtyPools, name)
	// Never write from a configuration older than the cache's: the pool
	// may have just become invalid.
	if err := c.syncConfigLocked(ctx); err != nil {
		return poolWant{}, 0, err
	}
	// Nor before the addresses in Services' status are claimed: a
	// restarted controller would report a full pool as empty.
	if !c.warm {
		if err := c.warmUpLocked(ctx); err != nil {
			return poolWant{}, 0, err
		}
	}
	return poolWant{
		ipv4:     c.countsFor(name, allocator.IPv4),
		ipv6:     c.countsFor(name, allocator.IPv6),
		problems: c.problems.For(v1alpha1.KindIPPool, name),
		hazards:  poolHazards(c.cfg.Pool(name), c.forbid.ranges),
	}, 0, nil
}

func (c *Controller) countsFor(pool string, f allocator.Family) *v1alpha1.AddressCounts {
	counts, ok := c.alloc.Counts(pool, f)
	if !ok {
		return nil
	}
	return countsOf(counts)
}

// countsOf is a family's status counts.
func countsOf(counts allocator.Counts) *v1alpha1.AddressCounts {
	return &v1alpha1.AddressCounts{
		Total: saturate(counts.Total), Assigned: saturate(counts.Assigned), Available: saturate(counts.Available),
		TotalText: iprange.FormatCount(counts.Total), AvailableText: iprange.FormatCount(counts.Available),
	}
}

func equalCounts(a, b *v1alpha1.AddressCounts) bool { return ptrEq(a, b) }

// saturate converts a count to int64, the largest int64 standing for
// anything larger (big IPv6 pools).
func saturate(n *big.Int) int64 {
	if n.IsInt64() {
		return n.Int64()
	}
	return math.MaxInt64
}

func float(n *big.Int) float64 {
	f, _ := new(big.Float).SetInt(n).Float64()
	return f
}
