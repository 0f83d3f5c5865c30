package sourceranges

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func svc(field []string, annotation *string) *corev1.Service {
	s := &corev1.Service{}
	s.Spec.LoadBalancerSourceRanges = field
	if annotation != nil {
		s.Annotations = map[string]string{Annotation: *annotation}
	}
	return s
}

func ptr(s string) *string { return &s }

var prefixes = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestOf(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name       string
		field      []string
		annotation *string
		want       Ranges
		// errField and errValue, when set, are what the error must name.
		errField, errValue string
	}{
		{name: "none", want: Ranges{}},
		{name: "empty annotation", annotation: ptr("  "), want: Ranges{}},
		{name: "field", field: []string{"198.51.100.0/24", " 2001:db8::/64 "},
			want: Ranges{Restricted: true, Field: FieldSpec, Prefixes: []netip.Prefix{p("198.51.100.0/24"), p("2001:db8::/64")}}},
		{name: "annotation, spaces trimmed", annotation: ptr(" 198.51.100.0/24 , 2001:db8::/64"),
			want: Ranges{Restricted: true, Field: FieldAnnotation, Prefixes: []netip.Prefix{p("198.51.100.0/24"), p("2001:db8::/64")}}},
		{name: "the field wins over the annotation", field: []string{"198.51.100.0/24"}, annotation: ptr("203.0.113.0/24"),
			want: Ranges{Restricted: true, Field: FieldSpec, Prefixes: []netip.Prefix{p("198.51.100.0/24")}}},
		{name: "the field wins over a malformed annotation", field: []string{"198.51.100.0/24"}, annotation: ptr("nonsense"),
			want: Ranges{Restricted: true, Field: FieldSpec, Prefixes: []netip.Prefix{p("198.51.100.0/24")}}},
		{name: "host bits are the network's, as kube-proxy reads them", field: []string{"198.51.100.7/24", "2001:db8::1/64"},
			want: Ranges{Restricted: true, Field: FieldSpec, Prefixes: []netip.Prefix{p("198.51.100.0/24"), p("2001:db8::/64")},
				Masked: []string{"198.51.100.7/24", "2001:db8::1/64"}}},
		{name: "leading zeros read as decimal, as kube-proxy reads them", annotation: ptr("198.051.100.000/24"),
			want: Ranges{Restricted: true, Field: FieldAnnotation, Prefixes: []netip.Prefix{p("198.51.100.0/24")}}},
		{name: "repeated", field: []string{"198.51.100.0/24", "198.51.100.9/24"},
			want: Ranges{Restricted: true, Field: FieldSpec, Prefixes: []netip.Prefix{p("198.51.100.0/24")}, Masked: []string{"198.51.100.9/24"}}},
		{name: "everything", annotation: ptr("0.0.0.0/0,::/0"),
			want: Ranges{Restricted: true, Field: FieldAnnotation, Prefixes: []netip.Prefix{p("0.0.0.0/0"), p("::/0")}}},

		// Malformed: closed.
		{name: "malformed annotation", annotation: ptr("198.51.100.0/24,198.51.100.300/24"),
			want: Ranges{Restricted: true, Field: FieldAnnotation}, errField: FieldAnnotation, errValue: "198.51.100.300/24"},
		{name: "annotation without a prefix length", annotation: ptr("198.51.100.7"),
			want: Ranges{Restricted: true, Field: FieldAnnotation}, errField: FieldAnnotation, errValue: "198.51.100.7"},
		{name: "empty element", annotation: ptr("198.51.100.0/24,"),
			want: Ranges{Restricted: true, Field: FieldAnnotation}, errField: FieldAnnotation, errValue: ""},
		{name: "prefix too long", annotation: ptr("2001:db8::/129"),
			want: Ranges{Restricted: true, Field: FieldAnnotation}, errField: FieldAnnotation, errValue: "2001:db8::/129"},
		{name: "IPv4-mapped", field: []string{"198.51.100.0/24", "::ffff:198.51.100.0/120"},
			want: Ranges{Restricted: true, Field: FieldSpec}, errField: FieldSpec + "[1]", errValue: "::ffff:198.51.100.0/120"},
		{name: "malformed field", field: []string{"lan"},
			want: Ranges{Restricted: true, Field: FieldSpec}, errField: FieldSpec + "[0]", errValue: "lan"},
		{name: "leading zeros too many", annotation: ptr("0198.51.100.0/24"),
			want: Ranges{Restricted: true, Field: FieldAnnotation}, errField: FieldAnnotation, errValue: "0198.51.100.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Of(svc(tc.field, tc.annotation))
			if diff := cmp.Diff(tc.want, got, prefixes); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
			var e *Error
			switch {
			case tc.errField == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.errField != "" && !errors.As(err, &e):
				t.Errorf("error %v, want an *Error", err)
			case tc.errField != "":
				if e.Field != tc.errField || e.Value != tc.errValue {
					t.Errorf("error names %s = %q, want %s = %q", e.Field, e.Value, tc.errField, tc.errValue)
				}
				// The message names the field, the value and what is allowed.
				for _, part := range []string{tc.errField, `"` + tc.errValue + `"`, "198.51.100.0/24"} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("message %q lacks %q", err, part)
					}
				}
			}
		})
	}
}

func FuzzOf(f *testing.F) {
	for _, s := range []string{"198.51.100.0/24", "198.51.100.7/24, 2001:db8::/64", "010.0.0.0/8", "::ffff:1.2.3.0/120", ",", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := Of(svc(nil, &v))
		if err != nil && (!r.Restricted || len(r.Prefixes) != 0) {
			t.Fatalf("%q: error %v but ranges %+v: a malformed range must let nobody in", v, err, r)
		}
		for _, p := range r.Prefixes {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("%q: prefix %v", v, p)
			}
		}
	})
}
