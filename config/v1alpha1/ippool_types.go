package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddressRange is one entry of a pool: a CIDR ("198.51.100.0/24",
// "2001:db8::/64"), an inclusive range of two addresses of one family
// ("198.51.100.10-198.51.100.20"), or a single address.
//
// The range-order rule finds the first bit where the two addresses differ
// (CEL has no ordering for IP values) and requires it to be 0 in the first.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=100
// +kubebuilder:validation:XValidation:rule="self.contains('-') || isCIDR(self) || isIP(self)",message="must be a CIDR (198.51.100.0/24, 2001:db8::/64), a range first-last (198.51.100.10-198.51.100.20) or a single address"
// +kubebuilder:validation:XValidation:rule="self.contains('-') || !isCIDR(self) || cidr(self) == cidr(self).masked()",messageExpression="'CIDR has host bits set: the network address is ' + string(cidr(self).masked())"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))",message="a range must be two addresses joined by '-', without spaces or prefix lengths, such as 198.51.100.10-198.51.100.20"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0]) || !isIP(self.split('-')[1]) || ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family()",message="a range must not mix IPv4 and IPv6 addresses"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0]) || !isIP(self.split('-')[1]) || ip(self.split('-')[0]).family() != ip(self.split('-')[1]).family() || ip(self.split('-')[0]) == ip(self.split('-')[1]) || lists.range(ip(self.split('-')[0]).family() == 4 ? 32 : 128).exists(n, cidr(self.split('-')[0] + '/' + string(n)).containsIP(self.split('-')[1]) && !cidr(self.split('-')[0] + '/' + string(n + 1)).containsIP(self.split('-')[1]) && cidr(self.split('-')[0] + '/' + string(n + 1)).masked().ip() == cidr(self.split('-')[0] + '/' + string(n)).masked().ip())",message="the first address of a range must not be above the last"
type AddressRange string

// IPPoolSpec describes a set of addresses that LoadBalancer Services may get.
type IPPoolSpec struct {
	// Addresses are the pool's addresses: CIDRs, inclusive ranges
	// first-last, or single addresses; IPv4 and IPv6 may be mixed. No
	// address may belong to two pools.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Addresses []AddressRange `json:"addresses"`

	// AutoAssign lets Services that do not ask for this pool by name or
	// address get addresses from it.
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255, which some
	// old network equipment mishandles.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// AllocateTo restricts which Services may draw from this pool and
	// orders the pools a Service may use.
	// +optional
	AllocateTo *AllocateTo `json:"allocateTo,omitempty"`
}

// AllocateTo restricts and orders automatic allocation. A Service may draw
// from the pool only if it matches every restriction that is set.
type AllocateTo struct {
	// Priority orders the pools a Service may draw from: lower numbers are
	// tried first; pools without a priority come after all that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Priority *int32 `json:"priority,omitempty"`

	// Namespaces are the namespaces whose Services may draw from the pool.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector selects, by their labels, the namespaces whose
	// Services may draw from the pool.
	// +optional
	NamespaceSelector *Selector `json:"namespaceSelector,omitempty"`

	// ServiceSelector selects, by their labels, the Services that may draw
	// from the pool.
	// +optional
	ServiceSelector *Selector `json:"serviceSelector,omitempty"`
}

// IPPoolStatus is written by the controller. Counts are per address family;
// counts too large for an int64 (large IPv6 pools) are shown as the largest
// int64.
type IPPoolStatus struct {
	// +optional
	IPv4 *AddressCounts `json:"ipv4,omitempty"`
	// +optional
	IPv6 *AddressCounts `json:"ipv6,omitempty"`

	// Conditions: Valid tells whether the pool is in use, and if not why.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AddressCounts counts one family's addresses of a pool.
type AddressCounts struct {
	Total     int64 `json:"total"`
	Assigned  int64 `json:"assigned"`
	Available int64 `json:"available"`
}

// IPPool is a pool of addresses for LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp,categories=ironlb
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="IPv4 Assigned",type=integer,JSONPath=`.status.ipv4.assigned`
// +kubebuilder:printcolumn:name="IPv4 Available",type=integer,JSONPath=`.status.ipv4.available`
// +kubebuilder:printcolumn:name="IPv6 Assigned",type=integer,JSONPath=`.status.ipv6.assigned`
// +kubebuilder:printcolumn:name="IPv6 Available",type=integer,JSONPath=`.status.ipv6.available`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPPoolSpec `json:"spec"`
	// +optional
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolList is a list of IPPools.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}
