package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Family is an IP address family.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", f) }

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy says how many families a Service wants.
type FamilyPolicy uint8

const (
	// SingleStack: the first family only.
	SingleStack FamilyPolicy = iota
	// PreferDualStack: every family a pool can give, at least one.
	PreferDualStack
	// RequireDualStack: every family, or nothing.
	RequireDualStack
)

// Port is one port of a Service, for the sharing rules.
type Port struct {
	Protocol string
	Port     int32
}

// Request is what a Service asks of the allocator.
type Request struct {
	// Key identifies the Service ("namespace/name").
	Key             string
	Namespace       string
	NamespaceLabels labels.Set
	ServiceLabels   labels.Set

	// Families in the Service's order of preference, and the policy.
	Families []Family
	Policy   FamilyPolicy

	// IPs are the addresses the Service asks for, at most one per family.
	IPs []netip.Addr
	// Pool, when set, is the only pool the Service may draw from.
	Pool string

	// SharingKey lets Services with the same key share an address.
	SharingKey string
	Ports      []Port
	// Local is externalTrafficPolicy: Local; Selector is the canonical
	// form of the Service's pod selector. Services sharing an address
	// with a Local one must select the same pods.
	Local    bool
	Selector string

	// Current are the addresses the Service's status shows. They are kept
	// when the allocator does not know the Service yet (after a restart).
	Current []netip.Addr

	// KeepOnly keeps what the Service holds and takes nothing new: for a
	// Service whose request cannot be understood.
	KeepOnly bool
}

// wanted returns the families the request must or may get.
func (r *Request) wanted() []Family {
	if len(r.Families) == 0 {
		return nil
	}
	if r.Policy == SingleStack {
		return r.Families[:1]
	}
	return r.Families
}

// sharesWith tells whether the Service of r may hold an address together
// with a Service whose request is o.
func (r *Request) sharesWith(o *Request) bool {
	if r.SharingKey == "" || r.SharingKey != o.SharingKey {
		return false
	}
	for _, p := range r.Ports {
		if slices.Contains(o.Ports, p) {
			return false
		}
	}
	if (r.Local || o.Local) && r.Selector != o.Selector {
		return false
	}
	return true
}

// conflictReason explains why r may not share with o.
func (r *Request) conflictReason(o *Request) string {
	switch {
	case r.SharingKey == "" || o.SharingKey == "":
		return fmt.Sprintf("Service %s holds it without a sharing key (%s)", o.Key, annotationHint)
	case r.SharingKey != o.SharingKey:
		return fmt.Sprintf("Service %s holds it with the sharing key %q, not %q", o.Key, o.SharingKey, r.SharingKey)
	}
	for _, p := range r.Ports {
		if slices.Contains(o.Ports, p) {
			return fmt.Sprintf("Service %s uses port %d/%s on it too", o.Key, p.Port, strings.ToUpper(p.Protocol))
		}
	}
	return fmt.Sprintf("Service %s uses externalTrafficPolicy: Local and selects other pods", o.Key)
}

const annotationHint = "ironlb.io/allow-shared-ip"
