// Package sourceranges reads which clients a LoadBalancer Service
// accepts: spec.loadBalancerSourceRanges or, when that is empty, the
// older annotation service.beta.kubernetes.io/load-balancer-source-ranges.
// The speaker enforces what it reads and the controller reports what it
// cannot read; both read through this package, so that they never
// disagree on what is malformed. It is pure.
//
// How a value is read follows Kubernetes: the field wins over the
// annotation (as cloud providers read them; kube-proxy reads the field
// alone); spaces around each range are ignored (the API server allows
// them); a range with host bits set, which the API server accepted
// before Kubernetes 1.33 and still keeps on old objects, means its
// network, as kube-proxy reads it. Where kube-proxy ignores a range it
// cannot parse, and so may end up open to everyone, ironlb fails closed:
// a Service with a malformed range accepts nobody until it is fixed.
package sourceranges

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Annotation is the older way to give the ranges.
const Annotation = corev1.AnnotationLoadBalancerSourceRangesKey

// Fields where ranges come from, as error messages and conditions name
// them.
const (
	FieldSpec       = "spec.loadBalancerSourceRanges"
	FieldAnnotation = "metadata.annotations[" + Annotation + "]"
)

// Ranges are the clients a Service accepts.
type Ranges struct {
	// Restricted: the Service names ranges; false means every client.
	Restricted bool
	// Prefixes are the ranges, host bits cleared, in the order given. A
	// restricted Service with none accepts nobody.
	Prefixes []netip.Prefix
	// Field is where the ranges came from (FieldSpec or FieldAnnotation);
	// empty when not restricted.
	Field string
	// Masked are the ranges given with host bits set, as written; each
	// counts as its network.
	Masked []string
}

// Error is a range that cannot be read. The Service then accepts nobody.
type Error struct {
	// Field is FieldSpec with the index ("spec.loadBalancerSourceRanges[2]")
	// or FieldAnnotation.
	Field string
	// Value is the range as written, spaces trimmed.
	Value string
	// Why says what is wrong with it.
	Why string
}

func (e *Error) Error() string {
	allowed := "a list of CIDR ranges of either family, such as [198.51.100.0/24, 2001:db8::/64]"
	if e.Field == FieldAnnotation {
		allowed = "CIDR ranges of either family separated by commas, such as 198.51.100.0/24,2001:db8::/64"
	}
	return fmt.Sprintf("%s: %q %s; write %s", e.Field, e.Value, e.Why, allowed)
}

// Of reads the ranges of svc. When a range cannot be read it returns
// the error and Ranges that accept nobody (Restricted, no Prefixes), so
// that a caller that ignores the error still fails closed.
func Of(svc *corev1.Service) (Ranges, error) {
	if len(svc.Spec.LoadBalancerSourceRanges) > 0 {
		return parse(FieldSpec, svc.Spec.LoadBalancerSourceRanges, func(i int) string {
			return FieldSpec + "[" + strconv.Itoa(i) + "]"
		})
	}
	val, ok := svc.Annotations[Annotation]
	// An annotation with nothing in it restricts nothing, as the API
	// server and cloud providers read it.
	if !ok || strings.TrimSpace(val) == "" {
		return Ranges{}, nil
	}
	return parse(FieldAnnotation, strings.Split(val, ","), func(int) string { return FieldAnnotation })
}

func parse(field string, values []string, fieldOf func(int) string) (Ranges, error) {
	r := Ranges{Restricted: true, Field: field}
	for i, v := range values {
		v = strings.TrimSpace(v)
		p, masked, why := parsePrefix(v)
		if why != "" {
			return Ranges{Restricted: true, Field: field}, &Error{Field: fieldOf(i), Value: v, Why: why}
		}
		if masked {
			r.Masked = append(r.Masked, v)
		}
		if !slices.Contains(r.Prefixes, p) {
			r.Prefixes = append(r.Prefixes, p)
		}
	}
	return r, nil
}

// parsePrefix reads one range. Besides what netip reads, it takes IPv4
// with leading zeros in an octet ("010.0.0.0/8", read as decimal), as
// Kubernetes' lenient parser, which kube-proxy uses, does. why is empty
// when the range is good.
func parsePrefix(v string) (p netip.Prefix, masked bool, why string) {
	if v == "" {
		return p, false, "is empty"
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		var ok bool
		if p, ok = leadingZeros(v); !ok {
			return p, false, "is not a CIDR range"
		}
	}
	if p.Addr().Is4In6() {
		return p, false, "is an IPv4-mapped IPv6 range, which no client has on the wire"
	}
	return p.Masked(), p != p.Masked(), ""
}

// leadingZeros reads an IPv4 range whose octets may have leading zeros.
func leadingZeros(v string) (netip.Prefix, bool) {
	addr, bits, ok := strings.Cut(v, "/")
	if !ok || !strings.Contains(addr, ".") {
		return netip.Prefix{}, false
	}
	octets := strings.Split(addr, ".")
	if len(octets) != 4 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	for i, o := range octets {
		n, err := strconv.ParseUint(o, 10, 8)
		if err != nil || len(o) == 0 || len(o) > 3 {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
	}
	n, err := strconv.ParseUint(bits, 10, 8)
	if err != nil || n > 32 || len(bits) == 0 || len(bits) > 2 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), int(n)), true
}
