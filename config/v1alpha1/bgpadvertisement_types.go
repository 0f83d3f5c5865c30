package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAdvertisementSpec says which pools are advertised over BGP, to which
// peers, from which nodes, and with which attributes.
type BGPAdvertisementSpec struct {
	// IPPools names the pools to advertise. When neither ipPools nor
	// ipPoolSelector is set, every pool is advertised.
	// +optional
	// +listType=set
	IPPools ObjectNames `json:"ipPools,omitempty"`

	// IPPoolSelector selects pools to advertise by their labels, in
	// addition to those named in ipPools.
	// +optional
	IPPoolSelector *Selector `json:"ipPoolSelector,omitempty"`

	// Peers names the BGPPeers to advertise to; unset means all.
	// +optional
	// +listType=set
	Peers ObjectNames `json:"peers,omitempty"`

	// NodeSelector selects the nodes that advertise; unset means all.
	// +optional
	NodeSelector *Selector `json:"nodeSelector,omitempty"`

	// ServiceSelector limits the advertisement to the Services whose
	// labels it matches; unset or empty means every Service of the pools.
	// An address that several Services share is advertised when the
	// selector matches at least one of them that has a ready endpoint
	// (on the node, for externalTrafficPolicy Local).
	// +optional
	ServiceSelector *Selector `json:"serviceSelector,omitempty"`

	// AggregationLength is the prefix length IPv4 Service addresses are
	// advertised with (32: each address on its own).
	// +optional
	// +kubebuilder:default=32
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the prefix length IPv6 Service addresses are
	// advertised with (128: each address on its own).
	// +optional
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the LOCAL_PREF attribute sent on iBGP sessions.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalPref *int64 `json:"localPref,omitempty"`

	// Communities attached to the routes.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	Communities []Community `json:"communities,omitempty"`
}

// Community is a BGP community: standard "65000:100" (two numbers from 0 to
// 65535), large "large:65000:1:2" or "l:65000:1:2" (three numbers from 0 to
// 4294967295), or a well-known name: no-export, no-advertise,
// no-export-subconfed, no-peer, blackhole, graceful-shutdown, accept-own,
// llgr-stale, no-llgr.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=40
// +kubebuilder:validation:XValidation:rule="self in ['no-export', 'no-advertise', 'no-export-subconfed', 'no-peer', 'blackhole', 'graceful-shutdown', 'accept-own', 'llgr-stale', 'no-llgr'] || (self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535) || (self.matches('^(large|l):[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(self.split(':')[1]) <= 4294967295 && int(self.split(':')[2]) <= 4294967295 && int(self.split(':')[3]) <= 4294967295)",message="must be a standard community such as 65000:100 (0-65535 each), a large community such as large:65000:1:2 or l:65000:1:2 (0-4294967295 each), or one of no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown, accept-own, llgr-stale, no-llgr"
type Community string

// BGPAdvertisement advertises pools over BGP.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=ironlb
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec BGPAdvertisementSpec `json:"spec,omitempty"`
	// +optional
	Status AdvertisementStatus `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}
