package speaker

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/sourceranges"
)

// TestServiceForSourceRanges: serviceFor hands the planner the ranges
// the dataplane enforces: none (nil, every client), the field's, which
// win over the annotation's, the annotation's, and for ranges that cannot
// be read no client at all, with the reason.
func TestServiceForSourceRanges(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name       string
		field      []string
		annotation string
		want       *dataplane.SourceRanges
		bad        bool
	}{
		{name: "none", want: nil},
		{name: "field", field: []string{"198.51.100.0/24", "2001:db8:5100::/48"}, want: dataplane.AllowOnly(p("198.51.100.0/24"), p("2001:db8:5100::/48"))},
		{name: "annotation", annotation: "198.51.100.0/24, 2001:db8:5100::/48", want: dataplane.AllowOnly(p("198.51.100.0/24"), p("2001:db8:5100::/48"))},
		{name: "the field wins", field: []string{"203.0.113.0/24"}, annotation: "198.51.100.0/24", want: dataplane.AllowOnly(p("203.0.113.0/24"))},
		{name: "the field wins over a malformed annotation", field: []string{"203.0.113.0/24"}, annotation: "everyone", want: dataplane.AllowOnly(p("203.0.113.0/24"))},
		{name: "malformed annotation: closed", annotation: "198.51.100.0/24,everyone", want: dataplane.AllowOnly(), bad: true},
		{name: "malformed field: closed", field: []string{"198.51.100.0/33"}, annotation: "198.51.100.0/24", want: dataplane.AllowOnly(), bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
			svc.Spec.LoadBalancerSourceRanges = tc.field
			if tc.annotation != "" {
				svc.Annotations = map[string]string{sourceranges.Annotation: tc.annotation}
			}
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.65"}}
			ps, bad := serviceFor(svc, nil)
			if !tc.want.Equal(ps.SourceRanges) {
				t.Errorf("SourceRanges = %v, want %v", ps.SourceRanges, tc.want)
			}
			if (bad != nil) != tc.bad {
				t.Errorf("badRanges = %v, want an error: %v", bad, tc.bad)
			}
			var e *sourceranges.Error
			if tc.bad && !errors.As(bad, &e) {
				t.Errorf("badRanges = %v, want a *sourceranges.Error", bad)
			}
		})
	}
}

// TestRangeLog: a Service's unreadable ranges are logged when they
// appear and when their problem changes, not every time the Service is
// read, and once more when they are fixed; a Service that is gone is
// forgotten without a word.
func TestRangeLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var r rangeLog
	bad := errors.New("metadata.annotations[x]: \"everyone\" is not a CIDR range")
	worse := errors.New("metadata.annotations[x]: \"nobody\" is not a CIDR range")
	steps := []struct {
		problems map[string]error
		want     []string
	}{
		{map[string]error{"ns/a": nil, "ns/b": nil}, nil},
		{map[string]error{"ns/a": bad, "ns/b": nil}, []string{"ns/a everyone"}},
		{map[string]error{"ns/a": bad, "ns/b": nil}, nil},
		{map[string]error{"ns/a": bad, "ns/b": bad}, []string{"ns/b everyone"}},
		{map[string]error{"ns/a": worse, "ns/b": bad}, []string{"ns/a nobody"}},
		{map[string]error{"ns/a": nil, "ns/b": bad}, []string{"ns/a readable again"}},
		{map[string]error{"ns/a": nil, "ns/b": bad}, nil},
		{map[string]error{"ns/b": nil}, []string{"ns/b readable again"}},
	}
	for i, st := range steps {
		buf.Reset()
		for _, key := range slices.Sorted(maps.Keys(st.problems)) {
			r.note(log, key, st.problems[key])
		}
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if buf.Len() == 0 {
			lines = nil
		}
		if len(lines) != len(st.want) {
			t.Fatalf("step %d: logged %q, want %d lines matching %q", i, lines, len(st.want), st.want)
		}
		for j, w := range st.want {
			for _, part := range strings.Fields(w) {
				if !strings.Contains(lines[j], part) {
					t.Errorf("step %d: line %q lacks %q", i, lines[j], part)
				}
			}
		}
	}
}
