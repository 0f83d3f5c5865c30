// Package config turns a snapshot of ironlb's configuration objects, read
// from the cluster or from a file, into an immutable, typed model. It is pure:
// no I/O, no clocks, no logging.
//
// Resolve checks what the CRD schema cannot see (pools overlapping each
// other, references to objects that do not exist) and re-checks what it can,
// so that a snapshot that bypassed the schema cannot poison the model. A bad
// object never stops the good ones from being used: it is left out of the
// model and reported, and everything else resolves.
package config

import (
	"net/netip"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/iprange"
)

// Snapshot is everything the resolver reads: the objects as users wrote them.
type Snapshot struct {
	IPPools           []v1alpha1.IPPool
	L2Advertisements  []v1alpha1.L2Advertisement
	BGPPeers          []v1alpha1.BGPPeer
	BGPAdvertisements []v1alpha1.BGPAdvertisement
}

// Config is the resolved configuration. It and everything it points to
// must not be modified.
type Config struct {
	// Pools, L2Advertisements, BGPPeers and BGPAdvertisements hold the valid
	// objects of each kind, sorted by name.
	Pools             []*Pool
	L2Advertisements  []*L2Advertisement
	BGPPeers          []*BGPPeer
	BGPAdvertisements []*BGPAdvertisement

	poolByName map[string]*Pool
	// ranges holds every range of every valid pool, sorted; ranges do not
	// overlap, so an address belongs to at most one.
	ranges []poolRange
}

type poolRange struct {
	iprange.Range
	pool  *Pool
	index int // position in the pool's spec.addresses
}

// NoPriority is the Priority of a pool that has none: after all that do.
const NoPriority = int64(1) << 62

// Pool is a valid IPPool.
type Pool struct {
	Name   string
	Labels labels.Set
	// Ranges are sorted and do not overlap.
	Ranges        []iprange.Range
	AutoAssign    bool
	AvoidBuggyIPs bool
	// AllowSharingAcrossNamespaces lets a sharing key match Services of
	// other namespaces for the pool's addresses.
	AllowSharingAcrossNamespaces bool
	// Priority orders pools for allocation, lowest first.
	Priority int64
	// Namespaces, when not nil, are the only namespaces that may use the pool.
	Namespaces map[string]bool
	// NamespaceSelector and ServiceSelector restrict allocation; nil means
	// no restriction.
	NamespaceSelector labels.Selector
	ServiceSelector   labels.Selector
}

// HasFamily tells whether the pool has addresses of the family (4 or 6).
func (p *Pool) HasFamily(is4 bool) bool {
	return slices.ContainsFunc(p.Ranges, func(r iprange.Range) bool { return r.Is4() == is4 })
}

// L2Advertisement is a valid L2Advertisement.
type L2Advertisement struct {
	Name string
	// Pools are the pools announced, sorted by name.
	Pools []*Pool
	// NodeSelector selects the nodes that announce; never nil.
	NodeSelector labels.Selector
	// ServiceSelector limits the advertisement to the Services it
	// matches; nil means every Service (see SelectsService).
	ServiceSelector labels.Selector
	// Interfaces to answer on; nil means every up, non-loopback interface.
	Interfaces []string
	// Balanced: the pools' addresses are placed in balance over the nodes
	// (spec.placement Balanced) rather than by the hash ranking alone. A
	// pool is balanced when any advertisement announcing it is.
	Balanced bool
}

// BGPPeer is a valid BGPPeer.
type BGPPeer struct {
	Name    string
	Address netip.Addr
	Port    uint16
	// ASN is the router's AS: spec.peerASN, myASN for dynamicASN
	// internal, 0 for dynamicASN external (any AS but MyASN).
	ASN   uint32
	MyASN uint32
	// ConnectTime is the interval between connection attempts (0: the
	// speaker's default); MaxReceived how many prefixes per family the
	// router may send.
	ConnectTime time.Duration
	MaxReceived uint32
	// BFD is nil when the peer runs no BFD session.
	BFD *BFD
	// SourceAddress is the zero Addr when unset.
	SourceAddress netip.Addr
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	EBGPMultiHop  bool
	// Password is nil when the session has no TCP MD5 password.
	Password        *v1alpha1.SecretKeyRef
	GracefulRestart bool
	// NodeSelector selects the nodes that peer; never nil.
	NodeSelector labels.Selector
	// RouterID is the zero Addr when unset (the node's address is used).
	RouterID netip.Addr
}

// BFD is a peer's BFD session settings, defaults applied. Multihop BFD
// is used when the peer's EBGPMultiHop is set.
type BFD struct {
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  uint8
}

// IBGP tells whether the session is internal BGP.
func (p *BGPPeer) IBGP() bool { return p.ASN == p.MyASN }

// BGPAdvertisement is a valid BGPAdvertisement.
type BGPAdvertisement struct {
	Name string
	// Pools are the pools advertised, sorted by name.
	Pools []*Pool
	// Peers are the peers advertised to, sorted by name.
	Peers []*BGPPeer
	// NodeSelector selects the nodes that advertise; never nil.
	NodeSelector labels.Selector
	// ServiceSelector limits the advertisement to the Services it
	// matches; nil means every Service (see SelectsService).
	ServiceSelector     labels.Selector
	AggregationLength   int
	AggregationLengthV6 int
	// LocalPref is nil when unset.
	LocalPref   *uint32
	Communities []Community
}

// Community is a BGP community: standard (well-known names included) or large.
type Community struct {
	// Large tells which of the two values below is meaningful.
	Large    bool
	Standard uint32
	Global   uint32
	Local1   uint32
	Local2   uint32
}

// Pool returns the valid pool of that name, or nil.
func (c *Config) Pool(name string) *Pool { return c.poolByName[name] }

// PoolFor returns the valid pool holding the address, or nil.
func (c *Config) PoolFor(a netip.Addr) *Pool {
	// Addr.Compare orders every IPv4 address before every IPv6 one, the
	// same order the ranges were sorted in.
	i, found := slices.BinarySearchFunc(c.ranges, a, func(r poolRange, a netip.Addr) int {
		switch {
		case r.Last.Compare(a) < 0:
			return -1
		case a.Compare(r.First) < 0:
			return 1
		}
		return 0
	})
	if !found {
		return nil
	}
	return c.ranges[i].pool
}

// PeersFor returns the peers that a node with these labels peers with.
func (c *Config) PeersFor(node labels.Set) []*BGPPeer {
	var out []*BGPPeer
	for _, p := range c.BGPPeers {
		if p.NodeSelector.Matches(node) {
			out = append(out, p)
		}
	}
	return out
}

// Allows tells whether a Service with these labels, in a namespace with
// this name and these labels, may draw addresses from the pool. The
// namespace is allowed when the pool restricts no namespaces, is listed in
// Namespaces, or matches NamespaceSelector; the Service's labels must match
// ServiceSelector when it is set.
func (p *Pool) Allows(namespace string, namespaceLabels, serviceLabels labels.Set) bool {
	nsRestricted := p.Namespaces != nil || p.NamespaceSelector != nil
	nsOK := !nsRestricted || p.Namespaces[namespace] || (p.NamespaceSelector != nil && p.NamespaceSelector.Matches(namespaceLabels))
	return nsOK && (p.ServiceSelector == nil || p.ServiceSelector.Matches(serviceLabels))
}

// SelectsService tells whether the advertisement applies to a Service
// with these labels.
func (a *L2Advertisement) SelectsService(svc labels.Set) bool {
	return a.ServiceSelector == nil || a.ServiceSelector.Matches(svc)
}

// SelectsService tells whether the advertisement applies to a Service
// with these labels.
func (a *BGPAdvertisement) SelectsService(svc labels.Set) bool {
	return a.ServiceSelector == nil || a.ServiceSelector.Matches(svc)
}
