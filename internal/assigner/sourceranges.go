package assigner

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/sourceranges"
)

// ConditionSourceRangesValid is kept on the Services that restrict their
// clients (spec.loadBalancerSourceRanges or the older annotation): True
// with the ranges in force, False when a range cannot be read, in which
// case the speakers let no client in (fail closed). The API server
// checks the field and the annotation, but not a value it accepted
// before (an annotation left in place while the field was set and then
// removed, say), so a malformed one can still reach ironlb.
const ConditionSourceRangesValid = "ironlb.io/SourceRangesValid"

// Reasons of ConditionSourceRangesValid; ReasonInvalidSourceRanges is
// also the reason of the Warning event.
const (
	ReasonSourceRangesApplied = "SourceRangesApplied"
	ReasonInvalidSourceRanges = "InvalidSourceRanges"
)

// sourceRangesCondition is the condition svc's source ranges call for;
// nil when it names none, so that Services without ranges carry nothing
// more. It is pure.
func sourceRangesCondition(svc *corev1.Service) *metav1.Condition {
	r, err := sourceranges.Of(svc)
	if err == nil && !r.Restricted {
		return nil
	}
	c := &metav1.Condition{Type: ConditionSourceRangesValid, ObservedGeneration: svc.Generation}
	if err != nil {
		c.Status, c.Reason = metav1.ConditionFalse, ReasonInvalidSourceRanges
		c.Message = fmt.Sprintf("Service %s/%s: %v. Until it is fixed, no client can connect to the Service's LoadBalancer addresses through ironlb", svc.Namespace, svc.Name, err)
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, ReasonSourceRangesApplied
	c.Message = rangesMessage(svc, r)
	return c
}

// rangesMessage says which clients may connect, family by family of the
// Service, and how ranges with host bits were read.
func rangesMessage(svc *corev1.Service, r sourceranges.Ranges) string {
	var parts []string
	for _, fam := range svc.Spec.IPFamilies {
		v4 := fam == corev1.IPv4Protocol
		var in []string
		all := false
		for _, p := range r.Prefixes {
			if p.Addr().Is4() == v4 {
				in = append(in, p.String())
				all = all || p.Bits() == 0
			}
		}
		switch {
		case all:
			parts = append(parts, fmt.Sprintf("every %s client", fam))
		case len(in) == 0:
			parts = append(parts, fmt.Sprintf("no %s client (no %s range is given)", fam, fam))
		default:
			parts = append(parts, fmt.Sprintf("%s clients in %s", fam, strings.Join(in, ", ")))
		}
	}
	if len(parts) == 0 { // the API server always sets ipFamilies; be safe
		parts = append(parts, "clients in "+joinPrefixes(r.Prefixes))
	}
	msg := fmt.Sprintf("from %s: %s may connect", r.Field, strings.Join(parts, "; "))
	for _, m := range r.Masked {
		if p, err := netip.ParsePrefix(m); err == nil {
			msg += fmt.Sprintf("; %s is read as %s (host bits ignored, as kube-proxy reads them)", m, p.Masked())
		}
	}
	return msg
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// writeSourceRanges keeps svc's ConditionSourceRangesValid as its ranges
// call for, and records a Warning event when they turn unreadable or
// their problem changes. It writes nothing when the condition is right.
func (c *Controller) writeSourceRanges(ctx context.Context, svc *corev1.Service) error {
	want := sourceRangesCondition(svc)
	old := meta.FindStatusCondition(svc.Status.Conditions, ConditionSourceRangesValid)
	if (want == nil && old == nil) || (want != nil && sameCondition(old, *want)) {
		return nil
	}
	warn := want != nil && want.Status == metav1.ConditionFalse && (old == nil || old.Message != want.Message)
	orig := svc.DeepCopy()
	if want == nil {
		meta.RemoveStatusCondition(&svc.Status.Conditions, ConditionSourceRangesValid)
	} else {
		meta.SetStatusCondition(&svc.Status.Conditions, *want)
	}
	if err := c.client.Status().Patch(ctx, svc, client.StrategicMergeFrom(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing the source ranges condition of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	key := svc.Namespace + "/" + svc.Name
	switch {
	case warn:
		c.log.Warn("source ranges cannot be read; the Service accepts no client", "service", key, "message", want.Message)
		if c.opts.Events != nil {
			c.opts.Events.Eventf(svc, nil, corev1.EventTypeWarning, ReasonInvalidSourceRanges, "CheckSourceRanges", "%s", want.Message)
		}
	case want != nil:
		c.log.Info("source ranges", "service", key, "message", want.Message)
	}
	return nil
}
