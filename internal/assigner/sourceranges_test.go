package assigner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/sourceranges"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// waitRanges waits until the Service's source ranges condition is as
// want says: nil for none, or its status and reason, with a message
// holding every one of parts.
func waitRanges(t *testing.T, ns, name string, want *metav1.Condition, parts ...string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	what := "no source ranges condition"
	if want != nil {
		what = fmt.Sprintf("source ranges condition %s %s with %q", want.Status, want.Reason, parts)
	}
	testutil.Eventually(t, fmt.Sprintf("Service %s/%s: %s", ns, name, what), func() (bool, string) {
		svc = getService(t, ns, name)
		c := meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionSourceRangesValid)
		if want == nil || c == nil {
			return (want == nil) == (c == nil), fmt.Sprintf("condition %+v", c)
		}
		ok := c.Status == want.Status && c.Reason == want.Reason
		for _, p := range parts {
			ok = ok && strings.Contains(c.Message, p)
		}
		return ok, fmt.Sprintf("condition %s %s: %s", c.Status, c.Reason, c.Message)
	})
	return svc
}

// TestSourceRangesCondition: against the real API server, a Service
// that restricts its clients gets ironlb.io/SourceRangesValid, True with
// the ranges in force; when its ranges turn unreadable (an annotation
// the API server let in while the field was set, left behind when the
// field is removed), False naming the Service, the annotation, the value
// and what is allowed, with a Warning event, and the Service keeps its
// address; fixed, True again; without ranges, no condition.
func TestSourceRangesCondition(t *testing.T) {
	ns := namespace(t, nil)
	pool := ippool("source-ranges", "203.0.113.240/29")
	pool.Spec.AllocateTo = &v1alpha1.AllocateTo{Namespaces: []string{ns}}
	apply(t, pool)
	start(t, nil)
	c := testenv.Get(t).Client
	ctx := context.Background()

	// The API server itself refuses a malformed annotation on a new
	// Service: the unreadable case below must be reached another way.
	bad := lbService(ns, "refused", func(s *corev1.Service) {
		s.Annotations = map[string]string{sourceranges.Annotation: "everyone"}
	})
	if err := c.Create(ctx, bad); !apierrors.IsInvalid(err) {
		t.Fatalf("creating a Service with annotation %s=everyone: %v, want it refused as invalid", sourceranges.Annotation, err)
	}

	create(t, lbService(ns, "web", func(s *corev1.Service) {
		s.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
		// Not looked at while the field is set, by the API server nor by
		// ironlb.
		s.Annotations = map[string]string{sourceranges.Annotation: "everyone"}
	}))
	applied := &metav1.Condition{Status: metav1.ConditionTrue, Reason: assigner.ReasonSourceRangesApplied}
	waitRanges(t, ns, "web", applied, "spec.loadBalancerSourceRanges", "IPv4 clients in 198.51.100.0/24")
	waitIPs(t, ns, "web", "203.0.113.240")

	update := func(mutate func(*corev1.Service)) {
		t.Helper()
		svc := getService(t, ns, "web")
		mutate(svc)
		if err := c.Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	// The field goes: the annotation, unchanged, is not checked again by
	// the API server, and is now what counts.
	update(func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = nil })
	invalid := &metav1.Condition{Status: metav1.ConditionFalse, Reason: assigner.ReasonInvalidSourceRanges}
	svc := waitRanges(t, ns, "web", invalid, "Service "+ns+"/web", sourceranges.FieldAnnotation, `"everyone"`, "198.51.100.0/24,2001:db8::/64", "no client can connect")
	waitEvent(t, ns, "web", assigner.ReasonInvalidSourceRanges, `"everyone" is not a CIDR range`)
	if got := ingressIPs(svc); len(got) != 1 || got[0] != "203.0.113.240" {
		t.Errorf("the Service's address: %v, want it kept (the speakers drop its traffic, the address stays)", got)
	}
	if a := meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated); a == nil || a.Reason != assigner.ReasonAllocated {
		t.Errorf("IPAllocated: %+v, want Allocated", a)
	}

	update(func(s *corev1.Service) { s.Annotations[sourceranges.Annotation] = "198.51.100.0/25, 2001:db8::/64" })
	waitRanges(t, ns, "web", applied, sourceranges.FieldAnnotation, "IPv4 clients in 198.51.100.0/25")

	update(func(s *corev1.Service) { delete(s.Annotations, sourceranges.Annotation) })
	waitRanges(t, ns, "web", nil)

	// A Service that never had ranges never gets the condition.
	create(t, lbService(ns, "open"))
	waitIPs(t, ns, "open", "203.0.113.241")
	if cond := meta.FindStatusCondition(getService(t, ns, "open").Status.Conditions, assigner.ConditionSourceRangesValid); cond != nil {
		t.Errorf("a Service without ranges has %+v", cond)
	}
}
