package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AdvertisementSpec says which pools are announced in layer 2 mode (ARP
// for IPv4, NDP for IPv6), from which nodes and on which interfaces.
type L2AdvertisementSpec struct {
	// IPPools names the pools to announce. When neither ipPools nor
	// ipPoolSelector is set, every pool is announced.
	// +optional
	// +listType=set
	IPPools ObjectNames `json:"ipPools,omitempty"`

	// IPPoolSelector selects pools to announce by their labels, in addition
	// to those named in ipPools.
	// +optional
	IPPoolSelector *Selector `json:"ipPoolSelector,omitempty"`

	// NodeSelector selects the nodes that may announce; unset means all.
	// +optional
	NodeSelector *Selector `json:"nodeSelector,omitempty"`

	// ServiceSelector limits the advertisement to the Services whose
	// labels it matches; unset or empty means every Service of the pools.
	// An address that several Services share is announced when the
	// selector matches at least one of them.
	// +optional
	ServiceSelector *Selector `json:"serviceSelector,omitempty"`

	// Interfaces are the network interfaces to answer on. Unset means
	// every interface that is up, has an Ethernet address and is not a
	// loopback, except those a node has for pods, tunnels and containers:
	// bridge and bond ports, NOARP interfaces, veths holding no global
	// address (pods' ends), vxlan, geneve, gretap, dummy, VRF and netkit
	// devices, and CNI and container-engine devices by name (cali*,
	// cilium*, lxc*, cni*, flannel*, cbr*, docker*, weave, kube-bridge,
	// kube-ipvs*, nodelocaldns and the like; see docs/configuration.md).
	// An interface named here is used whatever its type or name.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Interfaces []InterfaceName `json:"interfaces,omitempty"`

	// Placement says how the addresses of the selected pools are shared
	// out among the nodes that may announce them. Hash (the default) gives
	// each address to the node ranking highest for it, like a random
	// draw, so one node may hold more than its share. Balanced gives no
	// node more than ceil(K/N) of a pool's K addresses among N nodes, at
	// the cost of moving a few more addresses when a node joins or leaves;
	// it takes effect once every speaker speaks claim version 3. A pool
	// is placed Balanced when any L2Advertisement announcing it asks so.
	// +optional
	// +kubebuilder:default=Hash
	Placement L2Placement `json:"placement,omitempty"`
}

// L2Placement is how layer 2 addresses are shared out among nodes.
// +kubebuilder:validation:Enum=Hash;Balanced
type L2Placement string

// The placements of an L2Advertisement.
const (
	L2PlacementHash     L2Placement = "Hash"
	L2PlacementBalanced L2Placement = "Balanced"
)

// InterfaceName is the name of a network interface on a node.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=15
// +kubebuilder:validation:Pattern=`^[^/:\s]+$`
// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="must be a network interface name"
type InterfaceName string

// AdvertisementStatus is written by the controller.
type AdvertisementStatus struct {
	// Conditions: Valid tells whether the object is in use, and if not why.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// L2Advertisement announces pools in layer 2 mode.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2adv,categories=ironlb
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Placement",type=string,JSONPath=`.spec.placement`,priority=1
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec L2AdvertisementSpec `json:"spec,omitempty"`
	// +optional
	Status AdvertisementStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}
