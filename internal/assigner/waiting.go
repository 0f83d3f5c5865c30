package assigner

import (
	"cmp"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/allocator"
)

// A waiting Service is one whose request could be met if another Service
// gave up an address: its pools are exhausted, the address it asks for is
// held, or the sharing group it asks to join conflicts. When a Service
// gives up an address (deleted, no longer of type LoadBalancer or of
// ironlb's class, asking for something else, or leaving a sharing group),
// the waiting Services are offered the allocator again at once, the one
// waiting longest first; those that now get addresses are queued to have
// their status written. The order is the time each Service's condition
// turned to its waiting reason (its lastTransitionTime, which survives a
// controller restart), then its creation, then its namespace and name.
type waiter struct {
	name    types.NamespacedName
	req     allocator.Request
	since   time.Time
	created time.Time
}

// waits tells whether a Service refused for this reason may be served
// when another gives up an address.
func waits(r allocator.Reason) bool {
	switch r {
	case allocator.ReasonPoolExhausted, allocator.ReasonRequestedIPUnavailable, allocator.ReasonSharingConflict:
		return true
	}
	return false
}

// noteWaitingLocked records whether the Service waits after its decision.
func (c *Controller) noteWaitingLocked(svc *corev1.Service, req allocator.Request, res allocator.Result, now time.Time) {
	if res.Err == nil || !waits(res.Err.Reason) {
		delete(c.waiting, req.Key)
		return
	}
	w, ok := c.waiting[req.Key]
	if !ok {
		w = &waiter{name: types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, since: now, created: svc.CreationTimestamp.Time}
		if cond := meta.FindStatusCondition(svc.Status.Conditions, ConditionIPAllocated); cond != nil && cond.Reason == string(res.Err.Reason) && !cond.LastTransitionTime.IsZero() {
			w.since = cond.LastTransitionTime.Time
		}
		c.waiting[req.Key] = w
	}
	w.req = req
}

// serveWaitingLocked offers the allocator to the waiting Services, longest
// waiting first, after an address was given up, and returns those that
// got what they asked for: their reconcile writes it. It stops once as
// many have been served as addresses were freed.
func (c *Controller) serveWaitingLocked(freed int) []types.NamespacedName {
	if freed == 0 || len(c.waiting) == 0 {
		return nil
	}
	order := make([]*waiter, 0, len(c.waiting))
	for _, w := range c.waiting {
		order = append(order, w)
	}
	slices.SortFunc(order, func(a, b *waiter) int {
		return cmp.Or(a.since.Compare(b.since), a.created.Compare(b.created), cmp.Compare(a.req.Key, b.req.Key))
	})
	var served []types.NamespacedName
	for _, w := range order {
		before := len(c.alloc.IPs(w.req.Key))
		res := c.alloc.Assign(w.req)
		if res.Err != nil && waits(res.Err.Reason) && len(res.IPs) <= before {
			continue
		}
		for _, ip := range res.IPs {
			if p := c.cfg.PoolFor(ip); p != nil {
				c.poolChangedLocked(p.Name)
			}
		}
		delete(c.waiting, w.req.Key)
		served = append(served, w.name)
		c.log.Info("a waiting Service is served by an address another gave up", "service", w.req.Key, "waitingSince", w.since, "addresses", joinAddrs(res.IPs))
		if len(served) >= freed {
			break
		}
	}
	return served
}
