package migrate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The structs below mirror the spec of MetalLB's kinds (metallb.io v1beta1,
// and v1beta2 for BGPPeer, as of MetalLB v0.16), with the field names and
// JSON spellings of MetalLB's API. Every field MetalLB defines is listed,
// mapped or not, so that fields this converter does not know (from a newer
// MetalLB, or typos) can be told apart and reported. Durations are kept as
// strings so that a bad one is reported with its field.

const (
	metallbGroup = "metallb.io"

	kindIPAddressPool    = "IPAddressPool"
	kindL2Advertisement  = "L2Advertisement"
	kindBGPAdvertisement = "BGPAdvertisement"
	kindBGPPeer          = "BGPPeer"
	kindCommunity        = "Community"
	kindBFDProfile       = "BFDProfile"
)

type ipAddressPoolSpec struct {
	Addresses         []string           `json:"addresses"`
	AutoAssign        *bool              `json:"autoAssign,omitempty"`
	AvoidBuggyIPs     bool               `json:"avoidBuggyIPs,omitempty"`
	ServiceAllocation *serviceAllocation `json:"serviceAllocation,omitempty"`
}

type serviceAllocation struct {
	Priority           int                    `json:"priority,omitempty"`
	Namespaces         []string               `json:"namespaces,omitempty"`
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

type l2AdvertisementSpec struct {
	IPAddressPools         []string                `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector  `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector  `json:"nodeSelectors,omitempty"`
	Interfaces             []string                `json:"interfaces,omitempty"`
	ServiceSelectors       []metav1.LabelSelector  `json:"serviceSelectors,omitempty"`
	PreferredNodeSelectors []preferredNodeSelector `json:"preferredNodeSelectors,omitempty"`
}

type preferredNodeSelector struct {
	Weight     int32                `json:"weight"`
	Preference metav1.LabelSelector `json:"preference"`
}

type bgpAdvertisementSpec struct {
	AggregationLength      *int32                 `json:"aggregationLength,omitempty"`
	AggregationLengthV6    *int32                 `json:"aggregationLengthV6,omitempty"`
	LocalPref              uint32                 `json:"localPref,omitempty"`
	ASPathPrepend          uint8                  `json:"asPathPrepend,omitempty"`
	Communities            []string               `json:"communities,omitempty"`
	IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Peers                  []string               `json:"peers,omitempty"`
	ServiceSelectors       []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// bgpPeerSpec is v1beta2's; v1beta1's fields are a subset with the same
// spellings (its nodeSelectors have the shape of a label selector).
type bgpPeerSpec struct {
	MyASN                  uint32                 `json:"myASN"`
	PeerASN                uint32                 `json:"peerASN,omitempty"`
	LocalASN               uint32                 `json:"localASN,omitempty"`
	DynamicASN             string                 `json:"dynamicASN,omitempty"`
	PeerAddress            string                 `json:"peerAddress,omitempty"`
	Interface              string                 `json:"interface,omitempty"`
	SourceAddress          string                 `json:"sourceAddress,omitempty"`
	PeerPort               uint16                 `json:"peerPort,omitempty"`
	HoldTime               *string                `json:"holdTime,omitempty"`
	KeepaliveTime          *string                `json:"keepaliveTime,omitempty"`
	ConnectTime            *string                `json:"connectTime,omitempty"`
	RouterID               string                 `json:"routerID,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Password               string                 `json:"password,omitempty"`
	PasswordSecret         secretReference        `json:"passwordSecret,omitempty"`
	BFDProfile             string                 `json:"bfdProfile,omitempty"`
	EnableGracefulRestart  bool                   `json:"enableGracefulRestart,omitempty"`
	EBGPMultiHop           bool                   `json:"ebgpMultiHop,omitempty"`
	VRF                    string                 `json:"vrf,omitempty"`
	DisableMP              bool                   `json:"disableMP,omitempty"`
	DualStackAddressFamily bool                   `json:"dualStackAddressFamily,omitempty"`
}

type secretReference struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

type communitySpec struct {
	Communities []communityAlias `json:"communities,omitempty"`
}

type communityAlias struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

type bfdProfileSpec struct {
	ReceiveInterval  *uint32 `json:"receiveInterval,omitempty"`
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`
	EchoInterval     *uint32 `json:"echoInterval,omitempty"`
	EchoMode         *bool   `json:"echoMode,omitempty"`
	PassiveMode      *bool   `json:"passiveMode,omitempty"`
	MinimumTTL       *uint32 `json:"minimumTtl,omitempty"`
}

// specType returns a pointer to a new spec struct for a MetalLB kind and
// whether the apiVersion's version serves that kind.
func specType(kind, version string) (any, bool) {
	v1beta1 := version == "v1beta1"
	switch kind {
	case kindIPAddressPool:
		return &ipAddressPoolSpec{}, v1beta1
	case kindL2Advertisement:
		return &l2AdvertisementSpec{}, v1beta1
	case kindBGPAdvertisement:
		return &bgpAdvertisementSpec{}, v1beta1
	case kindBGPPeer:
		return &bgpPeerSpec{}, v1beta1 || version == "v1beta2"
	case kindCommunity:
		return &communitySpec{}, v1beta1
	case kindBFDProfile:
		return &bfdProfileSpec{}, v1beta1
	}
	return nil, false
}
