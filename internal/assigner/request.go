package assigner

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/config"
)

// Annotations a Service may carry, each with the MetalLB spellings that are
// honoured as aliases so clusters can migrate without editing Services.
var (
	annotationIPs     = []string{"ironlb.io/loadBalancerIPs", "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"}
	annotationPool    = []string{"ironlb.io/ip-pool", "metallb.io/address-pool", "metallb.universe.tf/address-pool"}
	annotationSharing = []string{"ironlb.io/allow-shared-ip", "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"}
)

// Class says which Services this controller handles (shared with the
// speaker, which announces the same ones).
type Class = config.Class

// requestFor builds the allocator's request for a Service. When the
// Service's annotations or spec cannot be understood it returns a request
// that keeps what the Service holds, and an InvalidRequest error saying
// which annotation or field is wrong and what is allowed.
func requestFor(svc *corev1.Service, nsLabels labels.Set) (allocator.Request, *allocator.Error) {
	req := allocator.Request{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		NamespaceLabels: nsLabels,
		ServiceLabels:   labels.Set(svc.Labels),
		Local:           svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		Selector:        labels.SelectorFromSet(svc.Spec.Selector).String(),
		Current:         statusIPs(svc),
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			req.Families = append(req.Families, allocator.IPv4)
		case corev1.IPv6Protocol:
			req.Families = append(req.Families, allocator.IPv6)
		}
	}
	if len(req.Families) == 0 { // the API server always sets it; be safe
		req.Families = []allocator.Family{allocator.IPv4}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			req.Policy = allocator.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.Policy = allocator.RequireDualStack
		}
	}
	for _, p := range svc.Spec.Ports {
		req.Ports = append(req.Ports, allocator.Port{Protocol: string(p.Protocol), Port: p.Port})
	}

	invalid := func(format string, args ...any) (allocator.Request, *allocator.Error) {
		req.KeepOnly = true
		return req, &allocator.Error{Reason: allocator.ReasonInvalidRequest, Message: fmt.Sprintf(format, args...)}
	}
	ipsAnn, ipsValue, err := annotation(svc, annotationIPs)
	if err != nil {
		return invalid("%v", err)
	}
	if ipsAnn != "" {
		for part := range strings.SplitSeq(ipsValue, ",") {
			ip, err := parseIP(strings.TrimSpace(part))
			if err != nil {
				return invalid("annotation %s: %q is not an IP address; write one address per family, separated by a comma, such as 203.0.113.10,2001:db8::10", ipsAnn, part)
			}
			if slices.ContainsFunc(req.IPs, func(o netip.Addr) bool { return o.Is4() == ip.Is4() }) {
				return invalid("annotation %s: more than one %s address; write at most one per family", ipsAnn, allocator.FamilyOf(ip))
			}
			req.IPs = append(req.IPs, ip)
		}
	}
	if lbIP := svc.Spec.LoadBalancerIP; lbIP != "" {
		ip, err := parseIP(lbIP)
		switch {
		case err != nil:
			return invalid("spec.loadBalancerIP: %q is not an IP address", lbIP)
		case ipsAnn != "" && !slices.Contains(req.IPs, ip):
			return invalid("spec.loadBalancerIP (%s) and annotation %s (%s) disagree; set only the annotation", lbIP, ipsAnn, ipsValue)
		case ipsAnn == "":
			req.IPs = []netip.Addr{ip}
		}
	}
	if _, v, err := annotation(svc, annotationPool); err != nil {
		return invalid("%v", err)
	} else {
		req.Pool = v
	}
	if _, v, err := annotation(svc, annotationSharing); err != nil {
		return invalid("%v", err)
	} else {
		req.SharingKey = v
	}
	return req, nil
}

// annotation returns the first of the alias annotations that is set and
// its value; aliases set to different values are an error.
func annotation(svc *corev1.Service, aliases []string) (name, value string, err error) {
	for _, a := range aliases {
		v, ok := svc.Annotations[a]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if name == "" {
			name, value = a, v
			if v == "" {
				return "", "", fmt.Errorf("annotation %s is empty; remove it or give it a value", a)
			}
			continue
		}
		if v != value {
			return "", "", fmt.Errorf("annotations %s (%q) and %s (%q) disagree; keep only %s", name, value, a, v, aliases[0])
		}
	}
	return name, value, nil
}

// parseIP accepts what the CRDs accept: no zones, no IPv4-mapped IPv6.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err == nil && (ip.Zone() != "" || ip.Is4In6()) {
		err = fmt.Errorf("zones and IPv4-mapped addresses are not allowed")
	}
	return ip, err
}

// statusIPs returns the addresses in the Service's status.
func statusIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := parseIP(in.IP); err == nil {
			out = append(out, ip)
		}
	}
	return out
}
