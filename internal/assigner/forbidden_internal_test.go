package assigner

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/config"
)

func TestForbiddenRangesAndHazards(t *testing.T) {
	node := func(name string, kv ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for i := 0; i < len(kv); i += 2 {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeAddressType(kv[i]), Address: kv[i+1]})
		}
		return n
	}
	ranges := forbiddenRanges(
		[]corev1.Node{
			node("n1", "InternalIP", "203.0.113.5", "Hostname", "n1", "ExternalIP", "2001:db8::5"),
			node("n2", "InternalIP", "not-an-ip", "InternalDNS", "203.0.113.6"),
		},
		[]networkingv1.ServiceCIDR{{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"198.18.0.0/16", "bogus"}}}},
		[]netip.Prefix{netip.MustParsePrefix("203.0.113.9/30")},
	)
	var got []string
	for _, r := range ranges {
		got = append(got, fmt.Sprintf("%s %s: %s", r.reason, r.Range, r.Why))
	}
	want := []string{
		`ContainsServiceCIDR 198.18.0.0/16: in the Service CIDR 198.18.0.0/16 (ServiceCIDR "kubernetes")`,
		`ContainsNodeAddress 203.0.113.5: the InternalIP of Node "n1"`,
		`ContainsServiceCIDR 203.0.113.8/30: in the Service CIDR 203.0.113.8/30 (--service-cidrs)`,
		`ContainsNodeAddress 2001:db8::5: the ExternalIP of Node "n1"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("forbidden ranges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	cfg, problems := config.Resolve(config.Snapshot{IPPools: []v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.0/28", "2001:db8::/120"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "clean"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.64/28"}}},
	}})
	if len(problems) > 0 {
		t.Fatal(problems.Err())
	}
	if hs := poolHazards(cfg.Pool("clean"), ranges); len(hs) != 0 {
		t.Errorf("clean pool: %v", hs)
	}
	hs := poolHazards(cfg.Pool("p"), ranges)
	cond := poolCondition("p", nil, hs, 3)
	if cond.Status != metav1.ConditionFalse || cond.Reason != ReasonContainsNodeAddress || cond.ObservedGeneration != 3 ||
		!strings.Contains(cond.Message, `IPPool "p" contains 203.0.113.5, the InternalIP of Node "n1"; 2001:db8::5, the ExternalIP of Node "n1"; addresses in the Service CIDR 203.0.113.8/30 (--service-cidrs)`) {
		t.Errorf("condition: %+v", cond)
	}
	// An invalid pool says why it is invalid; that comes first.
	if c := poolCondition("p", []*config.ObjectError{{Field: "spec.addresses[0]", Err: fmt.Errorf("bad")}}, hs, 3); c.Reason != "Invalid" {
		t.Errorf("invalid pool: %+v", c)
	}

	// Many Nodes in one pool: the message stays bounded.
	var many []hazard
	for i := range 500 {
		many = append(many, hazard{ReasonContainsNodeAddress, fmt.Sprintf("203.0.113.%d, the InternalIP of Node \"node-%d\"", i%256, i)})
	}
	if c := hazardCondition("p", many, 1); len(c.Message) > 1000 || !strings.Contains(c.Message, "and 492 more") {
		t.Errorf("%d characters: %s", len(c.Message), c.Message)
	}
}

func TestForbiddenStatus(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.5")
	why := func(a netip.Addr) string {
		if a == ip {
			return `the InternalIP of Node "n1"`
		}
		return ""
	}
	ok := desired{cond: metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonAllocated}}
	d := forbiddenStatus(ok, allocator.Result{IPs: []netip.Addr{ip, netip.MustParseAddr("2001:db8::1")}}, why)
	if d.cond.Reason != ReasonAddressForbidden || d.cond.Status != metav1.ConditionTrue || !strings.HasPrefix(d.cond.Message, `203.0.113.5 is the InternalIP of Node "n1". `) {
		t.Errorf("held forbidden address: %+v", d.cond)
	}
	if d := forbiddenStatus(ok, allocator.Result{IPs: []netip.Addr{netip.MustParseAddr("203.0.113.6")}}, why); d.cond.Reason != ReasonAllocated {
		t.Errorf("allowed address: %+v", d.cond)
	}
	failed := desired{cond: metav1.Condition{Status: metav1.ConditionFalse, Reason: "PoolExhausted"}}
	if d := forbiddenStatus(failed, allocator.Result{IPs: []netip.Addr{ip}}, why); d.cond.Reason != "PoolExhausted" {
		t.Errorf("a failure is not hidden: %+v", d.cond)
	}
}
