package assigner

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/sourceranges"
)

// TestSourceRangesConditionContent is the condition's content, family by
// family, without an API server.
func TestSourceRangesConditionContent(t *testing.T) {
	dual := []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	for _, tc := range []struct {
		name       string
		field      []string
		annotation string
		families   []corev1.IPFamily
		status     metav1.ConditionStatus // "" for no condition
		parts      []string
	}{
		{name: "no ranges", families: dual},
		{name: "both families", field: []string{"198.51.100.0/24", "2001:db8::/64"}, families: dual, status: metav1.ConditionTrue,
			parts: []string{"from spec.loadBalancerSourceRanges", "IPv4 clients in 198.51.100.0/24", "IPv6 clients in 2001:db8::/64"}},
		{name: "a family without ranges is closed", field: []string{"198.51.100.0/24"}, families: dual, status: metav1.ConditionTrue,
			parts: []string{"IPv4 clients in 198.51.100.0/24", "no IPv6 client (no IPv6 range is given)"}},
		{name: "zero prefix opens a family", annotation: "0.0.0.0/0", families: []corev1.IPFamily{corev1.IPv4Protocol}, status: metav1.ConditionTrue,
			parts: []string{"from " + sourceranges.FieldAnnotation, "every IPv4 client"}},
		{name: "host bits", field: []string{"198.51.100.7/24"}, families: []corev1.IPFamily{corev1.IPv4Protocol}, status: metav1.ConditionTrue,
			parts: []string{"198.51.100.7/24 is read as 198.51.100.0/24"}},
		{name: "malformed", annotation: "198.51.100.0/24,lan", families: dual, status: metav1.ConditionFalse,
			parts: []string{"Service ns/web", sourceranges.FieldAnnotation, `"lan"`, "198.51.100.0/24,2001:db8::/64", "no client can connect"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: 3}}
			svc.Spec.LoadBalancerSourceRanges = tc.field
			svc.Spec.IPFamilies = tc.families
			if tc.annotation != "" {
				svc.Annotations = map[string]string{sourceranges.Annotation: tc.annotation}
			}
			c := sourceRangesCondition(svc)
			if tc.status == "" {
				if c != nil {
					t.Errorf("condition %+v, want none", c)
				}
				return
			}
			if c == nil || c.Status != tc.status || c.ObservedGeneration != 3 || c.Type != ConditionSourceRangesValid {
				t.Fatalf("condition %+v, want status %s", c, tc.status)
			}
			for _, p := range tc.parts {
				if !strings.Contains(c.Message, p) {
					t.Errorf("message %q lacks %q", c.Message, p)
				}
			}
		})
	}
}
