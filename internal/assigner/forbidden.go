package assigner

// Addresses a pool holds but no Service may be given: every Node's
// InternalIP and ExternalIP, and the cluster's Service CIDRs (the
// ServiceCIDR objects when the API serves them, and --service-cidrs). A
// LoadBalancer address equal to a Node's would make every speaker DNAT or
// reject traffic meant for that Node (its kubelet included); one inside the
// Service CIDR would collide with a ClusterIP. The allocator carves them
// out of the pools (allocator.SetExclusions); the pool's Valid condition
// names them.
//
// A Service that already holds an address when it becomes forbidden (a
// Node joins with it, a ServiceCIDR grows over it) keeps it: an assigned
// address never moves silently. Its condition turns to AddressForbidden
// and a Warning event says what happened and how to move; the decision is
// the operator's.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
)

// Reasons of an IPPool's Valid=False condition when the pool is in use
// but holds addresses that are never handed out, and of a Service's
// condition when it holds such an address from before.
const (
	ReasonContainsNodeAddress = "ContainsNodeAddress"
	ReasonContainsServiceCIDR = "ContainsServiceCIDR"
	ReasonAddressForbidden    = "AddressForbidden"
)

// forbidden is an excluded range and the kind of reason it gives a pool.
type forbidden struct {
	allocator.Exclusion
	reason string // ReasonContainsNodeAddress or ReasonContainsServiceCIDR
}

// forbiddenState is the controller's part of this; Controller.mu guards it.
type forbiddenState struct {
	// loaded is cleared by every Node or ServiceCIDR change and set when
	// ranges are read again.
	loaded bool
	ranges []forbidden
	// told are the pools' hazards when every Service was last asked to
	// be looked at again because of them (reconcileForbidden).
	told []string
	// servedCIDRs is set when the API server serves ServiceCIDRs.
	servedCIDRs bool
}

// forbiddenRanges works out the forbidden addresses. It is pure.
func forbiddenRanges(nodes []corev1.Node, cidrs []networkingv1.ServiceCIDR, flag []netip.Prefix) []forbidden {
	var out []forbidden
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue // not ours to judge; the Node's owner sees it
			}
			ip = ip.Unmap().WithZone("")
			out = append(out, forbidden{allocator.Exclusion{Range: iprange.Range{First: ip, Last: ip}, Why: fmt.Sprintf("the %s of Node %q", a.Type, n.Name)}, ReasonContainsNodeAddress})
		}
	}
	addCIDR := func(p netip.Prefix, source string) {
		p = p.Masked()
		out = append(out, forbidden{allocator.Exclusion{Range: iprange.FromPrefix(p), Why: fmt.Sprintf("in the Service CIDR %s (%s)", p, source)}, ReasonContainsServiceCIDR})
	}
	for _, sc := range cidrs {
		for _, s := range sc.Spec.CIDRs {
			if p, err := netip.ParsePrefix(s); err == nil {
				addCIDR(p, fmt.Sprintf("ServiceCIDR %q", sc.Name))
			}
		}
	}
	for _, p := range flag {
		addCIDR(p, "--service-cidrs")
	}
	slices.SortStableFunc(out, func(a, b forbidden) int { return a.Compare(b.Range) })
	return out
}

// hazard is one forbidden range a pool overlaps.
type hazard struct {
	reason, text string
}

// poolHazards lists what the pool holds that is forbidden, Nodes first.
func poolHazards(p *config.Pool, ranges []forbidden) []hazard {
	if p == nil {
		return nil
	}
	var nodes, cidrs []hazard
	for _, f := range ranges {
		if !slices.ContainsFunc(p.Ranges, f.Overlaps) {
			continue
		}
		if f.reason == ReasonContainsNodeAddress {
			nodes = append(nodes, hazard{f.reason, fmt.Sprintf("%s, %s", f.First, f.Why)})
		} else {
			cidrs = append(cidrs, hazard{f.reason, fmt.Sprintf("addresses %s", f.Why)})
		}
	}
	return append(nodes, cidrs...)
}

// maxHazardsShown bounds the condition message of a pool that holds the
// addresses of many Nodes (a pool laid over the node subnet).
const maxHazardsShown = 8

// hazardCondition is the Valid condition of a pool that is in use but holds
// forbidden addresses.
func hazardCondition(pool string, hs []hazard, generation int64) metav1.Condition {
	texts := make([]string, 0, maxHazardsShown+1)
	for i, h := range hs {
		if i == maxHazardsShown {
			texts = append(texts, fmt.Sprintf("and %d more", len(hs)-i))
			break
		}
		texts = append(texts, h.text)
	}
	msg := fmt.Sprintf("IPPool %q contains %s: ironlb never assigns a Node's address or an address of the Service CIDR, so these are left out; the pool's other addresses are in use. Remove them from spec.addresses", pool, strings.Join(texts, "; "))
	return metav1.Condition{Type: ConditionValid, Status: metav1.ConditionFalse, Reason: hs[0].reason, Message: msg, ObservedGeneration: generation}
}

// poolCondition is a pool's Valid condition: invalid (not in use), in use
// with forbidden addresses left out, or valid.
func poolCondition(pool string, problems []*config.ObjectError, hs []hazard, generation int64) metav1.Condition {
	if len(problems) > 0 || len(hs) == 0 {
		return validCondition(problems, generation)
	}
	return hazardCondition(pool, hs, generation)
}

// forbiddenStatus turns the condition of a Service that holds a forbidden
// address (from before it was forbidden) into AddressForbidden. It is pure;
// why says why an address is excluded ("" when it is not).
func forbiddenStatus(d desired, res allocator.Result, why func(netip.Addr) string) desired {
	if d.cond.Status != metav1.ConditionTrue {
		return d // a failure says more; the address stays either way
	}
	var parts []string
	for _, ip := range res.IPs {
		if w := why(ip); w != "" {
			parts = append(parts, fmt.Sprintf("%s is %s", ip, w))
		}
	}
	if len(parts) == 0 {
		return d
	}
	d.cond.Reason = ReasonAddressForbidden
	d.cond.Message = strings.Join(parts, "; ") + ". ironlb hands out no such address, but does not take one away from a running Service: the Service keeps it until it asks for another address (annotation ironlb.io/loadBalancerIPs) or is recreated. Until then traffic to that address may not reach the Node or ClusterIP it belongs to"
	return d
}

// forbiddenKey names the one work item of reconcileForbidden.
var forbiddenKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "excluded-addresses"}}

// setupForbidden adds the controller that follows Nodes and, when the API
// serves them, ServiceCIDRs. Their events only mark the forbidden
// addresses stale and queue one work item, so a burst (every Node at
// start) costs one reload.
func (c *Controller) setupForbidden(mgr manager.Manager) error {
	changed := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		c.mu.Lock()
		c.forbid.loaded = false
		c.mu.Unlock()
		return []reconcile.Request{forbiddenKey}
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("excluded-addresses").
		Watches(&corev1.Node{}, changed, builder.WithPredicates(nodeAddressesChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: &c.opts.SeveralPerProcess})
	gk := schema.GroupKind{Group: networkingv1.GroupName, Kind: "ServiceCIDR"}
	if _, err := mgr.GetRESTMapper().RESTMapping(gk, networkingv1.SchemeGroupVersion.Version); err != nil {
		c.log.Info("the API server serves no networking.k8s.io/v1 ServiceCIDR; only --service-cidrs tells the Service CIDR", "error", err)
	} else {
		c.forbid.servedCIDRs = true
		b = b.Watches(&networkingv1.ServiceCIDR{}, changed)
	}
	return b.Complete(reconcile.Func(c.reconcileForbidden))
}

// nodeAddressesChanged passes Node events that may change the forbidden
// addresses: creation, deletion and a change of addresses.
func nodeAddressesChanged() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*corev1.Node)
		n, ok2 := e.ObjectNew.(*corev1.Node)
		return !ok1 || !ok2 || !slices.Equal(o.Status.Addresses, n.Status.Addresses)
	}}
}

// reconcileForbidden applies a change of Nodes or ServiceCIDRs once the
// controller is running and, when the forbidden addresses of some pool
// changed since Services were last told, asks for every Service to be
// looked at again: the rare case of a Node or CIDR entering or leaving a
// pool. Before the first reconcile, there is nothing to do: the first
// decision loads them, and every Service is looked at then anyway.
func (c *Controller) reconcileForbidden(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	c.mu.Lock()
	if c.alloc == nil || !c.warm {
		c.mu.Unlock()
		return reconcile.Result{}, nil
	}
	if err := c.syncForbiddenLocked(ctx); err != nil {
		c.mu.Unlock()
		return reconcile.Result{}, err
	}
	now := c.allHazardsLocked()
	same := slices.Equal(now, c.forbid.told)
	c.forbid.told = now
	c.mu.Unlock()
	if same {
		return reconcile.Result{}, nil
	}
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing Services after a change of forbidden addresses: %w", err)
	}
	for i := range list.Items {
		svc := &corev1.Service{}
		svc.Namespace, svc.Name = list.Items[i].Namespace, list.Items[i].Name
		c.wake <- event.GenericEvent{Object: svc}
	}
	return reconcile.Result{}, nil
}

// allHazardsLocked lists every hazard of every valid pool, one line each.
func (c *Controller) allHazardsLocked() []string {
	var out []string
	for _, p := range c.cfg.Pools {
		for _, h := range poolHazards(p, c.forbid.ranges) {
			out = append(out, p.Name+": "+h.text)
		}
	}
	return out
}

// syncForbiddenLocked reloads the forbidden addresses when Nodes or
// ServiceCIDRs changed, and gives them to the allocator. c.alloc is set.
func (c *Controller) syncForbiddenLocked(ctx context.Context) error {
	if c.forbid.loaded {
		return nil
	}
	var nodes corev1.NodeList
	if err := c.client.List(ctx, &nodes); err != nil {
		return fmt.Errorf("listing Nodes: %w", err)
	}
	var cidrs networkingv1.ServiceCIDRList
	if c.forbid.servedCIDRs {
		if err := c.client.List(ctx, &cidrs); err != nil {
			return fmt.Errorf("listing ServiceCIDRs: %w", err)
		}
	}
	ranges := forbiddenRanges(nodes.Items, cidrs.Items, c.opts.ServiceCIDRs)
	c.forbid.loaded = true
	if slices.Equal(ranges, c.forbid.ranges) {
		return nil
	}
	c.forbid.ranges = ranges
	ex := make([]allocator.Exclusion, len(ranges))
	for i, f := range ranges {
		ex[i] = f.Exclusion
	}
	c.alloc.SetExclusions(ex)
	for _, p := range c.cfg.Pools {
		hs := poolHazards(p, ranges)
		for _, h := range hs {
			c.log.Warn("IPPool holds an address that is never assigned", "pool", p.Name, "reason", h.reason, "address", h.text)
		}
		c.poolChangedLocked(p.Name)
	}
	return nil
}
