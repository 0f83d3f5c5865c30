package inspect

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/planner"
)

// ErrServiceNotFound is returned by Explain for a Service not in the
// Snapshot.
var ErrServiceNotFound = errors.New("not found")

// Explanation says how one Service is served and what to check next.
type Explanation struct {
	Service               string `json:"service"`
	Type                  string `json:"type"`
	LoadBalancerClass     string `json:"loadBalancerClass,omitempty"`
	ExternalTrafficPolicy string `json:"externalTrafficPolicy,omitempty"`
	// Allocation is the controller's ironlb.io/IPAllocated condition;
	// nil when it has not handled the Service.
	Allocation *Condition      `json:"allocation,omitempty"`
	Addresses  []AddressReport `json:"addresses"`
	Endpoints  []Endpoint      `json:"endpoints"`
	// Ready counts the ready endpoints.
	Ready int `json:"readyEndpoints"`
	// Next are the things to check, most important first; empty when
	// nothing looks wrong.
	Next []string `json:"next,omitempty"`
}

// AddressReport is one of the Service's addresses: where it comes from
// and who announces it.
type AddressReport struct {
	Address string `json:"address"`
	// Pool is the IPPool holding the address, "" when none does.
	Pool      string     `json:"pool,omitempty"`
	PoolValid *Condition `json:"poolValid,omitempty"`
	Announcers
	// Layer2Eligible are the nodes that may answer for the address in
	// layer 2 according to the configuration (before liveness: the
	// first-ranked live one answers); nil when no L2Advertisement covers
	// the pool.
	Layer2Eligible []string `json:"layer2Eligible,omitempty"`
	// BGPExpected are the nodes that should advertise it over BGP
	// according to the configuration and endpoints.
	BGPExpected []string `json:"bgpExpected,omitempty"`
}

// Explain explains the Service namespace/name. It reads every kind of
// the Snapshot; Services must hold the Service and those sharing its
// addresses, EndpointSlices theirs.
func Explain(s *Snapshot, namespace, name string) (*Explanation, error) {
	i := slices.IndexFunc(s.Services, func(svc corev1.Service) bool { return svc.Namespace == namespace && svc.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("service %s/%s %w", namespace, name, ErrServiceNotFound)
	}
	svc := &s.Services[i]
	e := &Explanation{Service: key(svc), Type: string(svc.Spec.Type), ExternalTrafficPolicy: string(svc.Spec.ExternalTrafficPolicy),
		Allocation: conditionOf(svc.Status.Conditions, ConditionIPAllocated), Addresses: []AddressReport{}, Endpoints: s.endpointsOf(svc)}
	if svc.Spec.LoadBalancerClass != nil {
		e.LoadBalancerClass = *svc.Spec.LoadBalancerClass
	}
	if e.Endpoints == nil {
		e.Endpoints = []Endpoint{}
	}
	for _, ep := range e.Endpoints {
		if ep.Ready {
			e.Ready++
		}
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		e.Next = append(e.Next, fmt.Sprintf("the Service is of type %s: ironlb serves only Services of type LoadBalancer", svc.Spec.Type))
		return e, nil
	}
	e.Next = append(e.Next, allocationHints(e)...)

	cfg, _ := s.resolve()
	in := planner.Input{Config: cfg, Nodes: s.plannerNodes(), Services: s.plannerServices()}
	w := plans{cfg: cfg, l2: planner.Layer2(in), bgp: expectedBGP(in), services: in.Services}
	for _, ps := range in.Services {
		if ps.Key == e.Service {
			w.local = ps
		}
	}
	for _, a := range addrsOf(svc) {
		ar, next := s.explainAddress(w, a)
		e.Addresses = append(e.Addresses, ar)
		e.Next = append(e.Next, next...)
	}
	e.Next = append(e.Next, s.endpointHints(svc, e)...)
	return e, nil
}

// plans is what the resolver and the planner expect for the Snapshot,
// which explainAddress compares with what the speakers report.
type plans struct {
	cfg   *config.Config
	l2    planner.Plan
	bgp   map[string][]netip.Prefix
	local planner.Service
	// services are all the Services as the planner sees them.
	services []planner.Service
}

// explainAddress reports one of the Service's addresses: its pool, who
// announces it and who should, and what to check when they differ.
func (s *Snapshot) explainAddress(w plans, a netip.Addr) (AddressReport, []string) {
	ar := AddressReport{Address: a.String(), Pool: s.poolOf(w.cfg, a), Announcers: s.announcers(a)}
	if ar.Pool == "" {
		return ar, []string{fmt.Sprintf("%s is in no IPPool: no speaker announces it. Add it to an IPPool's spec.addresses, or have the Service ask for another address (annotation ironlb.io/loadBalancerIPs)", a)}
	}
	if p := s.pool(ar.Pool); p != nil {
		ar.PoolValid = conditionOf(p.Status.Conditions, ConditionValid)
	}
	pool := w.cfg.Pool(ar.Pool)
	if pool == nil {
		msg := fmt.Sprintf("IPPool %s, which holds %s, is invalid, so no speaker announces its addresses", ar.Pool, a)
		if ar.PoolValid != nil && ar.PoolValid.Message != "" {
			msg += ": " + ar.PoolValid.Message
		}
		return ar, []string{msg}
	}
	var next []string
	l2Advs := l2AdvertisementsOf(w.cfg, pool.Name)
	bgpAdvs := bgpAdvertisementsOf(w.cfg, pool.Name)
	if len(l2Advs) == 0 && len(bgpAdvs) == 0 {
		next = append(next, fmt.Sprintf("no L2Advertisement or BGPAdvertisement covers IPPool %s, so nothing announces %s: create one with spec.ipPools: [%s]", pool.Name, a, pool.Name))
	}
	if len(l2Advs) > 0 {
		ar.Layer2Eligible = []string{}
		if plan := w.l2.L2[a]; plan != nil {
			ar.Layer2Eligible = plan.Eligible.Names()
		}
		hint, left := selectorHint(a, w.local, w.services, l2Selective(l2Advs))
		if hint != "" {
			next = append(next, hint)
		}
		if !left {
			next = append(next, s.layer2Hints(a, ar, l2Advs, w.local)...)
		}
	}
	if len(bgpAdvs) > 0 {
		ar.BGPExpected = []string{}
		for node, pfxs := range w.bgp {
			if slices.ContainsFunc(pfxs, func(p netip.Prefix) bool { return p.Contains(a) }) {
				ar.BGPExpected = append(ar.BGPExpected, node)
			}
		}
		slices.Sort(ar.BGPExpected)
		hint, left := selectorHint(a, w.local, w.services, bgpSelective(bgpAdvs))
		if hint != "" {
			next = append(next, hint)
		}
		if !left {
			next = append(next, s.bgpHints(a, ar, bgpAdvs, w.local)...)
		}
	}
	return ar, next
}

// allocationHints explains the controller's condition.
func allocationHints(e *Explanation) []string {
	c := e.Allocation
	if c == nil {
		if e.LoadBalancerClass != "" && e.LoadBalancerClass != DefaultClass {
			return []string{fmt.Sprintf("the Service's spec.loadBalancerClass is %s: ironlb handles it only when its controller runs with --lb-class=%s (the default is %s)", e.LoadBalancerClass, e.LoadBalancerClass, DefaultClass)}
		}
		msg := "the Service has no " + ConditionIPAllocated + " condition: the ironlb controller has not handled it. Check that the controller runs (kubectl get pods -n ironlb-system) and read its log"
		if e.LoadBalancerClass == "" {
			msg += "; a controller started with --require-class handles only Services with spec.loadBalancerClass " + DefaultClass
		}
		return []string{msg}
	}
	if c.Status == "True" {
		switch c.Reason {
		case "AddressOutsidePools", "SharedAcrossNamespaces", "AddressForbidden":
			return []string{c.Reason + ": " + c.Message}
		}
		return nil
	}
	why := c.Reason + ": " + c.Message + ". "
	switch c.Reason {
	case "PoolExhausted":
		return []string{why + "Every IPPool the Service may use is full (kubectl ironlb status shows their use): add addresses to one's spec.addresses, free an address, or let the Service use another pool (the pools' spec.allocateTo, annotation ironlb.io/ip-pool)"}
	case "NoMatchingPool":
		return []string{why + "Check the IPPools' spec.autoAssign and spec.allocateTo (namespaces, namespaceSelector, serviceSelector) against the Service's namespace and labels, or name a pool with the annotation ironlb.io/ip-pool"}
	case "UnknownPool":
		return []string{why + "The annotation ironlb.io/ip-pool names an IPPool that does not exist or is invalid: compare it with kubectl get ippools"}
	case "InvalidPool":
		return []string{why + "Fix the IPPool: its Valid condition (kubectl ironlb status) names the field"}
	case "RequestedIPUnavailable":
		return []string{why + "Ask for another address (annotation ironlb.io/loadBalancerIPs or spec.loadBalancerIP), or remove the request to get any free address"}
	case "RequestedIPNotInAnyPool":
		return []string{why + "Add the address to an IPPool's spec.addresses, or ask for one that is in a pool"}
	case "SharingConflict":
		return []string{why + "Services sharing an address (annotation ironlb.io/allow-shared-ip) must not use the same port and protocol, and with externalTrafficPolicy Local must select the same pods: change the ports or the sharing key"}
	case "InvalidRequest":
		return []string{why + "Fix the annotations ironlb.io/loadBalancerIPs and ironlb.io/ip-pool, or spec.ipFamilies and spec.ipFamilyPolicy, so that they agree"}
	}
	return []string{why + "See the Service's events (kubectl describe service)"}
}

func l2AdvertisementsOf(cfg *config.Config, pool string) []*config.L2Advertisement {
	var out []*config.L2Advertisement
	for _, adv := range cfg.L2Advertisements {
		if slices.ContainsFunc(adv.Pools, func(p *config.Pool) bool { return p.Name == pool }) {
			out = append(out, adv)
		}
	}
	return out
}

func bgpAdvertisementsOf(cfg *config.Config, pool string) []*config.BGPAdvertisement {
	var out []*config.BGPAdvertisement
	for _, adv := range cfg.BGPAdvertisements {
		if slices.ContainsFunc(adv.Pools, func(p *config.Pool) bool { return p.Name == pool }) {
			out = append(out, adv)
		}
	}
	return out
}

// expectedBGP plans, for every node, the prefixes it should advertise.
func expectedBGP(in planner.Input) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, n := range in.Nodes {
		in.Self = n.Name
		for pfx := range planner.BGP(in).Prefixes {
			out[n.Name] = append(out[n.Name], pfx)
		}
	}
	return out
}

// layer2Hints explains who answers, or why nobody does, for an address
// covered by L2Advertisements.
func (s *Snapshot) layer2Hints(a netip.Addr, ar AddressReport, advs []*config.L2Advertisement, svc planner.Service) []string {
	owners := ar.Layer2
	switch {
	case len(owners) == 1:
		if !slices.Contains(ar.Layer2Eligible, owners[0].Node) {
			return []string{fmt.Sprintf("node %s answers for %s but, by the configuration and endpoints read now, may not: it may be handing the address over, or the configuration just changed", owners[0].Node, a)}
		}
		return nil
	case len(owners) > 1:
		var names []string
		for _, o := range owners {
			names = append(names, o.Node)
		}
		return []string{fmt.Sprintf("nodes %s all answer for %s: normal for a moment during a handover; if it lasts, the speakers do not agree on who is alive (compare their members in kubectl ironlb status)", strings.Join(names, ", "), a)}
	}
	if unsure := intersect(ar.Truncated, ar.Layer2Eligible); len(unsure) > 0 {
		return []string{fmt.Sprintf("no NodeAnnouncement lists %s, but those of %s list only their first 100 addresses: one of them may answer for it", a, strings.Join(unsure, ", "))}
	}
	names := make([]string, len(advs))
	for i, adv := range advs {
		names[i] = adv.Name
	}
	advText := "L2Advertisement " + strings.Join(names, ", ")
	if len(ar.Layer2Eligible) == 0 {
		var selected, usable []string
		for _, n := range s.plannerNodes() {
			if !slices.ContainsFunc(advs, func(adv *config.L2Advertisement) bool { return adv.NodeSelector.Matches(n.Labels) }) {
				continue
			}
			selected = append(selected, n.Name)
			if _, excluded := n.Labels[planner.ExcludeLabel]; !excluded && !n.NetworkUnavailable {
				usable = append(usable, n.Name)
			}
		}
		switch {
		case len(selected) == 0:
			return []string{fmt.Sprintf("no node answers for %s: %s selects no Node (spec.nodeSelector)", a, advText)}
		case len(usable) == 0:
			return []string{fmt.Sprintf("no node answers for %s: the nodes %s selects (%s) are all labelled %s or have their network unavailable", a, advText, strings.Join(selected, ", "), planner.ExcludeLabel)}
		case svc.Local:
			return []string{fmt.Sprintf("no node answers for %s: the Service has externalTrafficPolicy Local, and none of the nodes that may announce it (%s) holds a ready endpoint of it", a, strings.Join(usable, ", "))}
		}
		return []string{fmt.Sprintf("no node may answer for %s (nodes that %s selects: %s)", a, advText, strings.Join(usable, ", "))}
	}
	var why []string
	quiet := 0
	for _, n := range ar.Layer2Eligible {
		na := s.announcement(n)
		switch {
		case na == nil:
			why = append(why, n+" has no speaker reporting (no NodeAnnouncement)")
		case na.Status.Fenced != "":
			why = append(why, n+" is fenced: "+na.Status.Fenced)
		default:
			quiet++
		}
	}
	msg := fmt.Sprintf("no node answers for %s. The nodes that may (%s): ", a, strings.Join(ar.Layer2Eligible, ", "))
	if len(why) > 0 {
		msg += strings.Join(why, "; ")
		if quiet > 0 {
			msg += fmt.Sprintf("; %d other(s) run a speaker that does not answer", quiet)
		}
	} else {
		msg += "each runs a speaker, and none answers"
	}
	return []string{msg + ". The speakers may not have caught up yet; otherwise read the Service's events (kubectl describe service) and the speakers' logs"}
}

// bgpHints explains who advertises, or why nobody does, an address
// covered by BGPAdvertisements.
func (s *Snapshot) bgpHints(a netip.Addr, ar AddressReport, advs []*config.BGPAdvertisement, svc planner.Service) []string {
	var out []string
	for _, b := range ar.BGP {
		for _, p := range b.Peers {
			if p.State != SessionEstablished {
				out = append(out, fmt.Sprintf("node %s advertises %s to BGPPeer %s, but its session with it is %s: that router has no path through %s", b.Node, b.Prefix, p.Peer, p.State, b.Node))
			}
		}
	}
	advertising := map[string]bool{}
	for _, b := range ar.BGP {
		advertising[b.Node] = true
	}
	for _, n := range ar.BGPExpected {
		if advertising[n] || slices.Contains(ar.Truncated, n) {
			continue
		}
		if s.announcement(n) == nil {
			out = append(out, fmt.Sprintf("node %s should advertise %s over BGP but has no speaker reporting (no NodeAnnouncement)", n, a))
		} else {
			out = append(out, fmt.Sprintf("node %s should advertise %s over BGP but does not say so in its NodeAnnouncement: the speaker may not have caught up yet", n, a))
		}
	}
	if len(ar.BGP) > 0 || len(ar.BGPExpected) > 0 {
		return out
	}
	switch {
	case !svc.Ready:
		return append(out, fmt.Sprintf("no node advertises %s over BGP: the Service has no ready endpoint, and an address is advertised only while it has one", a))
	case svc.Local:
		return append(out, fmt.Sprintf("no node advertises %s over BGP: with externalTrafficPolicy Local only nodes holding a ready endpoint advertise, and none of those (%s) is selected by a BGPAdvertisement covering the pool and one of its BGPPeers", a, strings.Join(svc.ReadyNodes, ", ")))
	}
	var names []string
	family := false
	for _, adv := range advs {
		names = append(names, adv.Name)
		if slices.ContainsFunc(adv.Peers, func(p *config.BGPPeer) bool { return p.Address.Is4() == a.Is4() }) {
			family = true
		}
	}
	if !family {
		fam := "IPv4"
		if a.Is6() {
			fam = "IPv6"
		}
		return append(out, fmt.Sprintf("no node advertises %s over BGP: BGPAdvertisement %s has no BGPPeer with an %s peerAddress (spec.peers), and routes go only over sessions of their own family", a, strings.Join(names, ", "), fam))
	}
	return append(out, fmt.Sprintf("no node advertises %s over BGP: no node is selected both by BGPAdvertisement %s (spec.nodeSelector) and by one of its BGPPeers (spec.nodeSelector), or those nodes are labelled %s", a, strings.Join(names, ", "), planner.ExcludeLabel))
}

// endpointHints explains missing endpoints.
func (s *Snapshot) endpointHints(svc *corev1.Service, e *Explanation) []string {
	switch {
	case e.Ready > 0:
		return nil
	case len(e.Endpoints) > 0:
		return []string{fmt.Sprintf("none of the Service's %d endpoints is ready: traffic that reaches a node has nowhere to go. Check the pods' readiness (kubectl get pods -n %s -l %s)", len(e.Endpoints), svc.Namespace, labels.Set(svc.Spec.Selector))}
	case len(svc.Spec.Selector) == 0:
		return []string{"the Service has no selector and no endpoints: traffic has nowhere to go until EndpointSlices are written for it"}
	case s.hasEndpointSlice(svc):
		return []string{fmt.Sprintf("the Service has no endpoints: no pod matches spec.selector %s", labels.Set(svc.Spec.Selector))}
	}
	return []string{fmt.Sprintf("the Service has no EndpointSlice: check that a pod matches spec.selector %s and that kube-controller-manager runs", labels.Set(svc.Spec.Selector))}
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
