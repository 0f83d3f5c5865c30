package assigner

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/allocator"
)

// ConditionIPAllocated is the type of the condition ironlb keeps on every
// Service it handles.
const ConditionIPAllocated = "ironlb.io/IPAllocated"

// Reasons of the condition besides the allocator's.
const (
	ReasonAllocated           = "Allocated"
	ReasonAddressOutsidePools = "AddressOutsidePools"
	// ReasonInvalidPool: the Service asks for a pool that exists but is
	// invalid; the message says why.
	ReasonInvalidPool = "InvalidPool"
	// ReasonIPConflict is the reason of the events sent when two Services
	// claim one address in their status.
	ReasonIPConflict = "IPConflict"
	// ReasonSharedAcrossNamespaces: the Service holds an address together
	// with a Service of another namespace, which the rules would no longer
	// allow; the sharing began before and is kept.
	ReasonSharedAcrossNamespaces = "SharedAcrossNamespaces"
)

// desired is what a Service's status should say.
type desired struct {
	ingress []corev1.LoadBalancerIngress
	cond    metav1.Condition
}

// desiredStatus turns an allocation result into the Service's status. It is
// pure; poolOf names the pool of an address ("" when none).
func desiredStatus(svc *corev1.Service, res allocator.Result, poolOf func(netip.Addr) string) desired {
	vip := corev1.LoadBalancerIPModeVIP
	var d desired
	var parts []string
	for _, ip := range res.IPs {
		d.ingress = append(d.ingress, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
		if p := poolOf(ip); p != "" {
			parts = append(parts, fmt.Sprintf("%s from IPPool %q", ip, p))
		}
	}
	held := joinAddrs(res.IPs)
	d.cond = metav1.Condition{Type: ConditionIPAllocated, ObservedGeneration: svc.Generation}
	switch {
	case res.Err != nil:
		d.cond.Status = metav1.ConditionFalse
		d.cond.Reason = string(res.Err.Reason)
		d.cond.Message = res.Err.Message
		if len(res.IPs) > 0 {
			d.cond.Message += "; the Service keeps " + held
		}
	case len(res.Outside) > 0:
		d.cond.Status = metav1.ConditionTrue
		d.cond.Reason = ReasonAddressOutsidePools
		d.cond.Message = fmt.Sprintf("%s is no longer in any IPPool; the Service keeps it until an IPPool holds it again or the Service asks for another pool or address (annotations ironlb.io/ip-pool, ironlb.io/loadBalancerIPs)", joinAddrs(res.Outside))
	case len(res.Legacy) > 0:
		d.cond.Status = metav1.ConditionTrue
		d.cond.Reason = ReasonSharedAcrossNamespaces
		d.cond.Message = legacyMessage(res.Legacy, poolOf)
	default:
		d.cond.Status = metav1.ConditionTrue
		d.cond.Reason = ReasonAllocated
		d.cond.Message = strings.Join(parts, ", ")
	}
	return d
}

// legacyMessage explains addresses kept although shared across namespaces
// against today's rules. Like every message about another namespace, it
// names nothing of the other Service.
func legacyMessage(ips []netip.Addr, poolOf func(netip.Addr) string) string {
	var pools []string
	for _, ip := range ips {
		if p := poolOf(ip); p != "" && !slices.Contains(pools, strconv.Quote(p)) {
			pools = append(pools, strconv.Quote(p))
		}
	}
	where := "no IPPool"
	if len(pools) > 0 {
		where = "IPPool " + strings.Join(pools, ", ")
	}
	return fmt.Sprintf("%s is also used by a Service of another namespace under the same sharing key. Sharing across namespaces needs spec.allowSharingAcrossNamespaces on the IPPool (here %s) and externalTrafficPolicy: Cluster on every Service sharing the address. This sharing began before that rule applied, so the Service keeps the address, but no other Service can join it. To end it, remove the sharing key (ironlb.io/allow-shared-ip) from this Service or from the other one", joinAddrs(ips), where)
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// sameIngress compares ingress lists by address and mode.
func sameIngress(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && ptrEq(x.IPMode, y.IPMode) && len(x.Ports) == 0 && len(y.Ports) == 0
	})
}

func ptrEq[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// sameCondition compares what a reader sees of a condition.
func sameCondition(a *metav1.Condition, b metav1.Condition) bool {
	return a != nil && a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message && a.ObservedGeneration == b.ObservedGeneration
}
