package inspect

import (
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/planner"
)

// Snapshot is what the answers are worked out from: ironlb's objects
// and the Kubernetes objects they concern. A question needs only some of
// them (see the functions); the others may be left empty.
type Snapshot struct {
	IPPools           []v1alpha1.IPPool
	L2Advertisements  []v1alpha1.L2Advertisement
	BGPPeers          []v1alpha1.BGPPeer
	BGPAdvertisements []v1alpha1.BGPAdvertisement
	NodeAnnouncements []v1alpha1.NodeAnnouncement
	Nodes             []corev1.Node
	// Services are those that matter to the question: every Service for
	// who-has, the Service's namespace for explain (Services sharing an
	// address share a namespace, but for sharing that predates that rule).
	Services []corev1.Service
	// EndpointSlices are those of Services.
	EndpointSlices []discoveryv1.EndpointSlice
}

// Condition is a condition as an operator reads it.
type Condition struct {
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Names of conditions and values that other parts of ironlb write. They
// are repeated here, not imported: the plugin does not link the
// controller.
const (
	// ConditionIPAllocated is the controller's condition on a Service.
	ConditionIPAllocated = "ironlb.io/IPAllocated"
	// ConditionValid is the controller's condition on configuration objects.
	ConditionValid = "Valid"
	// SessionEstablished is the state of a BGP session that is up.
	SessionEstablished = "Established"
	// DefaultClass is the loadBalancerClass ironlb handles by default.
	DefaultClass = "ironlb.io/lb"
)

func conditionOf(conds []metav1.Condition, typ string) *Condition {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return nil
	}
	return &Condition{Status: string(c.Status), Reason: c.Reason, Message: c.Message}
}

// timeText writes a status time, or "" when it is unset.
func timeText(t metav1.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (s *Snapshot) pool(name string) *v1alpha1.IPPool {
	for i := range s.IPPools {
		if s.IPPools[i].Name == name {
			return &s.IPPools[i]
		}
	}
	return nil
}

func (s *Snapshot) announcement(node string) *v1alpha1.NodeAnnouncement {
	for i := range s.NodeAnnouncements {
		if s.NodeAnnouncements[i].Name == node {
			return &s.NodeAnnouncements[i]
		}
	}
	return nil
}

// resolve resolves the configuration the way the controller and the
// speakers do.
func (s *Snapshot) resolve() (*config.Config, config.Problems) {
	return config.Resolve(config.Snapshot{
		IPPools: s.IPPools, L2Advertisements: s.L2Advertisements,
		BGPPeers: s.BGPPeers, BGPAdvertisements: s.BGPAdvertisements,
	})
}

// poolOf names the pool whose spec.addresses hold a, valid or not; the
// resolved configuration knows only the valid ones.
func (s *Snapshot) poolOf(cfg *config.Config, a netip.Addr) string {
	if p := cfg.PoolFor(a); p != nil {
		return p.Name
	}
	for _, p := range s.IPPools {
		for _, r := range p.Spec.Addresses {
			if rg, err := parseRange(string(r)); err == nil && rg.Contains(a) {
				return p.Name
			}
		}
	}
	return ""
}

// plannerNodes reads the Nodes as the planner sees them.
func (s *Snapshot) plannerNodes() []planner.Node {
	out := make([]planner.Node, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		pn := planner.Node{Name: n.Name, Labels: labels.Set(n.Labels)}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
				pn.NetworkUnavailable = true
			}
		}
		out = append(out, pn)
	}
	return out
}

// plannerServices reads the Services as the planner sees them: their
// addresses, policy and the nodes holding their ready endpoints.
func (s *Snapshot) plannerServices() []planner.Service {
	out := make([]planner.Service, 0, len(s.Services))
	for i := range s.Services {
		svc := &s.Services[i]
		ps := planner.Service{Key: key(svc), Addrs: addrsOf(svc), Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal, Labels: labels.Set(svc.Labels)}
		for _, ep := range s.endpointsOf(svc) {
			if !ep.Ready {
				continue
			}
			ps.Ready = true
			if ep.Node != "" && !slices.Contains(ps.ReadyNodes, ep.Node) {
				ps.ReadyNodes = append(ps.ReadyNodes, ep.Node)
			}
		}
		out = append(out, ps)
	}
	return out
}

func key(svc *corev1.Service) string { return svc.Namespace + "/" + svc.Name }

// addrsOf returns the addresses in a Service's status.
func addrsOf(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// Endpoint is one endpoint of a Service.
type Endpoint struct {
	Address string `json:"address"`
	Node    string `json:"node,omitempty"`
	Pod     string `json:"pod,omitempty"`
	Ready   bool   `json:"ready"`
	// Terminating: the endpoint is going away.
	Terminating bool `json:"terminating,omitempty"`
}

// endpointsOf lists the endpoints of a Service's EndpointSlices, sorted
// by address; an endpoint with several addresses counts once.
func (s *Snapshot) endpointsOf(svc *corev1.Service) []Endpoint {
	var out []Endpoint
	for _, es := range s.EndpointSlices {
		if es.Namespace != svc.Namespace || es.Labels[discoveryv1.LabelServiceName] != svc.Name {
			continue
		}
		for _, e := range es.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ep := Endpoint{Address: e.Addresses[0], Ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
			if e.NodeName != nil {
				ep.Node = *e.NodeName
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ep.Pod = e.TargetRef.Name
			}
			ep.Terminating = e.Conditions.Terminating != nil && *e.Conditions.Terminating
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		x, errX := netip.ParseAddr(a.Address)
		y, errY := netip.ParseAddr(b.Address)
		if errX != nil || errY != nil {
			return compareStrings(a.Address, b.Address)
		}
		return x.Compare(y)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Snapshot) hasEndpointSlice(svc *corev1.Service) bool {
	return slices.ContainsFunc(s.EndpointSlices, func(es discoveryv1.EndpointSlice) bool {
		return es.Namespace == svc.Namespace && es.Labels[discoveryv1.LabelServiceName] == svc.Name
	})
}
