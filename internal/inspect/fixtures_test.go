package inspect

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// The tests' cluster: three nodes; pool l2 (IPv4 and IPv6) announced in
// layer 2, pool bgp (IPv4 and IPv6) advertised to an IPv4 router only.

func pool(name string, addrs ...string) v1alpha1.IPPool {
	p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	p.Status.Conditions = []metav1.Condition{{Type: ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid", Message: "in use"}}
	return p
}

func node(name string, lbls map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func announcement(name string, st v1alpha1.NodeAnnouncementStatus) v1alpha1.NodeAnnouncement {
	return v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: st}
}

func sessions(state string) []v1alpha1.BGPSession {
	return []v1alpha1.BGPSession{{Peer: "router", Address: "198.51.100.1", State: state}}
}

// service is a LoadBalancer Service of namespace default selecting
// app=name, holding addrs, with the controller's condition.
func service(name string, cond *metav1.Condition, addrs ...string) corev1.Service {
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster}}
	for _, a := range addrs {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a})
	}
	if cond != nil {
		cond.Type = ConditionIPAllocated
		svc.Status.Conditions = []metav1.Condition{*cond}
	}
	return svc
}

func allocated(msg string) *metav1.Condition {
	return &metav1.Condition{Status: metav1.ConditionTrue, Reason: "Allocated", Message: msg}
}

// endpoints is the EndpointSlice of a Service with one endpoint per node
// named, ready or not.
func endpoints(svc string, ready bool, nodes ...string) discoveryv1.EndpointSlice {
	es := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4}
	for i, n := range nodes {
		n := n
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + i)}).String()},
			NodeName:   &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: svc + "-" + n},
		})
	}
	return es
}

// cluster is the tests' starting point; each test changes its copy.
func cluster() *Snapshot {
	return &Snapshot{
		IPPools: []v1alpha1.IPPool{pool("l2", "203.0.113.64/27", "2001:db8:64::/120"), pool("bgp", "203.0.113.96/27", "2001:db8:66::/120")},
		L2Advertisements: []v1alpha1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "l2"},
			Spec: v1alpha1.L2AdvertisementSpec{IPPools: v1alpha1.ObjectNames{"l2"}}}},
		BGPPeers: []v1alpha1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"},
			Spec: v1alpha1.BGPPeerSpec{PeerAddress: "198.51.100.1", PeerASN: 64500, MyASN: 64512}}},
		BGPAdvertisements: []v1alpha1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "bgp"},
			Spec: v1alpha1.BGPAdvertisementSpec{IPPools: v1alpha1.ObjectNames{"bgp"}}}},
		Nodes: []corev1.Node{node("n1", nil), node("n2", nil), node("n3", nil)},
		NodeAnnouncements: []v1alpha1.NodeAnnouncement{
			announcement("n1", v1alpha1.NodeAnnouncementStatus{Members: 3, KnownSpeakers: 3, BGPSessions: sessions("Established")}),
			announcement("n2", v1alpha1.NodeAnnouncementStatus{Members: 3, KnownSpeakers: 3, BGPSessions: sessions("Established")}),
			announcement("n3", v1alpha1.NodeAnnouncementStatus{Members: 3, KnownSpeakers: 3, BGPSessions: sessions("Established")}),
		},
	}
}

// announceL2 makes node n answer for addr on behalf of svc.
func announceL2(s *Snapshot, n, addr, svc string) {
	na := s.announcement(n)
	na.Status.Layer2 = append(na.Status.Layer2, v1alpha1.L2Announcement{Address: addr, Services: []string{svc}, Interfaces: []string{"eth0"}})
	na.Status.Layer2Addresses++
}

// announceBGP makes node n advertise pfx to the router on behalf of svc.
func announceBGP(s *Snapshot, n, pfx, svc string) {
	na := s.announcement(n)
	na.Status.BGP = append(na.Status.BGP, v1alpha1.BGPAnnouncement{Prefix: pfx, Services: []string{svc}, Peers: []string{"router"}})
	na.Status.BGPPrefixes++
}
