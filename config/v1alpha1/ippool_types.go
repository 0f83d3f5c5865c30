package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddressRange is one entry of a pool: a CIDR ("198.51.100.0/24",
// "2001:db8::/64"), an inclusive range of two addresses of one family
// ("198.51.100.10-198.51.100.20"), or a single address.
//
// CEL has no ordering for IP values, so the range-order rule looks for a
// prefix length n at which the first address's /n+1 network equals the last
// address's /n network (same first n bits, bit n of the first is 0) while
// the last lies outside the first's /n+1 (its bit n is 1). Prefix lengths are written out as
// literals because the API server cannot bound the cost of building them
// from numbers. The longest entry, two full IPv6 addresses and a dash, has
// 79 characters; the bound keeps the rules within the CEL cost budget.
//
// No entry may hold even one address that must never reach a Service:
// unspecified, loopback, multicast, link-local or limited broadcast. A CIDR
// is judged by containment (it overlaps such a block exactly when one of
// the two contains the other's first address); a range by its two ends,
// and, where both ends are safe, by whether it spans a block: with no
// ordering in CEL, "the first end lies below the block and the last above
// it" is written as membership of the last end in the CIDRs that make up
// the space above the block, while the first end is not in them. The
// resolver (internal/config/unsafe.go) checks the same with the same
// messages, for objects that bypassed the schema.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=79
// +kubebuilder:validation:XValidation:rule="self.contains('-') || isCIDR(self) || isIP(self)",message="must be a CIDR (198.51.100.0/24, 2001:db8::/64), a range first-last (198.51.100.10-198.51.100.20) or a single address"
// +kubebuilder:validation:XValidation:rule="self.contains('-') || !isCIDR(self) || cidr(self) == cidr(self).masked()",messageExpression="'CIDR has host bits set: the network address is %s'.format([string(cidr(self).masked())])"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]))",message="a range must be two addresses joined by '-', without spaces or prefix lengths, such as 198.51.100.10-198.51.100.20"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0]) || !isIP(self.split('-')[1]) || ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family()",message="a range must not mix IPv4 and IPv6 addresses"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0]) || !isIP(self.split('-')[1]) || ip(self.split('-')[0]).family() != ip(self.split('-')[1]).family() || ip(self.split('-')[0]) == ip(self.split('-')[1]) || ['/0,/1','/1,/2','/2,/3','/3,/4','/4,/5','/5,/6','/6,/7','/7,/8','/8,/9','/9,/10','/10,/11','/11,/12','/12,/13','/13,/14','/14,/15','/15,/16','/16,/17','/17,/18','/18,/19','/19,/20','/20,/21','/21,/22','/22,/23','/23,/24','/24,/25','/25,/26','/26,/27','/27,/28','/28,/29','/29,/30','/30,/31','/31,/32','/32,/33','/33,/34','/34,/35','/35,/36','/36,/37','/37,/38','/38,/39','/39,/40','/40,/41','/41,/42','/42,/43','/43,/44','/44,/45','/45,/46','/46,/47','/47,/48','/48,/49','/49,/50','/50,/51','/51,/52','/52,/53','/53,/54','/54,/55','/55,/56','/56,/57','/57,/58','/58,/59','/59,/60','/60,/61','/61,/62','/62,/63','/63,/64','/64,/65','/65,/66','/66,/67','/67,/68','/68,/69','/69,/70','/70,/71','/71,/72','/72,/73','/73,/74','/74,/75','/75,/76','/76,/77','/77,/78','/78,/79','/79,/80','/80,/81','/81,/82','/82,/83','/83,/84','/84,/85','/85,/86','/86,/87','/87,/88','/88,/89','/89,/90','/90,/91','/91,/92','/92,/93','/93,/94','/94,/95','/95,/96','/96,/97','/97,/98','/98,/99','/99,/100','/100,/101','/101,/102','/102,/103','/103,/104','/104,/105','/105,/106','/106,/107','/107,/108','/108,/109','/109,/110','/110,/111','/111,/112','/112,/113','/113,/114','/114,/115','/115,/116','/116,/117','/117,/118','/118,/119','/119,/120','/120,/121','/121,/122','/122,/123','/123,/124','/124,/125','/125,/126','/126,/127','/127,/128'].exists(p, int(p.split(',')[1].substring(1)) <= (ip(self.split('-')[0]).family() == 4 ? 32 : 128) && cidr(self.split('-')[0] + p.split(',')[1]).masked().ip() == cidr(self.split('-')[1] + p.split(',')[0]).masked().ip() && !cidr(self.split('-')[0] + p.split(',')[1]).containsIP(self.split('-')[1]))",message="the first address of a range must not be above the last"
// +kubebuilder:validation:XValidation:rule="self.contains('-') ? !(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family() && (ip(self.split('-')[0]).isUnspecified() || ip(self.split('-')[1]).isUnspecified())) : (isCIDR(self) ? !(cidr(self).masked().ip().isUnspecified()) : (!isIP(self) || !(ip(self).isUnspecified())))",messageExpression="self + ' contains the unspecified address (0.0.0.0, ::), which a pool must not hold'"
// +kubebuilder:validation:XValidation:rule="self.contains('-') ? !(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family() && (ip(self.split('-')[0]).isLoopback() || ip(self.split('-')[1]).isLoopback() || (cidr('0.0.0.0/1').containsIP(self.split('-')[0]) && cidr('128.0.0.0/1').containsIP(self.split('-')[1])) || (ip(self.split('-')[0]).family() == 6 && ip(self.split('-')[0]).isUnspecified() && !ip(self.split('-')[1]).isUnspecified()))) : (isCIDR(self) ? !(cidr(self).masked().ip().isLoopback() || cidr(self).masked().containsIP('127.0.0.0') || cidr(self).masked().containsIP('::1')) : (!isIP(self) || !(ip(self).isLoopback())))",messageExpression="self + ' contains loopback addresses (127.0.0.0/8, ::1), which a pool must not hold'"
// +kubebuilder:validation:XValidation:rule="self.contains('-') ? !(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family() && (cidr('224.0.0.0/4').containsIP(self.split('-')[0]) || cidr('224.0.0.0/4').containsIP(self.split('-')[1]) || cidr('ff00::/8').containsIP(self.split('-')[0]) || cidr('ff00::/8').containsIP(self.split('-')[1]) || (cidr('240.0.0.0/4').containsIP(self.split('-')[1]) && !cidr('240.0.0.0/4').containsIP(self.split('-')[0])))) : (isCIDR(self) ? !(cidr(self).masked().containsIP('224.0.0.0') || cidr('224.0.0.0/4').containsIP(cidr(self).masked().ip()) || cidr(self).masked().containsIP('ff00::') || cidr('ff00::/8').containsIP(cidr(self).masked().ip())) : (!isIP(self) || !(cidr('224.0.0.0/4').containsIP(self) || cidr('ff00::/8').containsIP(self))))",messageExpression="self + ' contains multicast addresses (224.0.0.0/4, ff00::/8), which a pool must not hold'"
// +kubebuilder:validation:XValidation:rule="self.contains('-') ? !(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family() && (ip(self.split('-')[0]).isLinkLocalUnicast() || ip(self.split('-')[1]).isLinkLocalUnicast() || (['169.255.0.0/16', '170.0.0.0/7', '172.0.0.0/6', '176.0.0.0/4', '192.0.0.0/2'].exists(c, cidr(c).containsIP(self.split('-')[1])) && !['169.255.0.0/16', '170.0.0.0/7', '172.0.0.0/6', '176.0.0.0/4', '192.0.0.0/2'].exists(c, cidr(c).containsIP(self.split('-')[0]))) || ((cidr('fec0::/10').containsIP(self.split('-')[1]) || cidr('ff00::/8').containsIP(self.split('-')[1])) && !(cidr('fec0::/10').containsIP(self.split('-')[0]) || cidr('ff00::/8').containsIP(self.split('-')[0]))))) : (isCIDR(self) ? !(cidr(self).masked().ip().isLinkLocalUnicast() || cidr(self).masked().containsIP('169.254.0.0') || cidr(self).masked().containsIP('fe80::')) : (!isIP(self) || !(ip(self).isLinkLocalUnicast())))",messageExpression="self + ' contains link-local addresses (169.254.0.0/16, fe80::/10), which a pool must not hold'"
// +kubebuilder:validation:XValidation:rule="self.contains('-') ? !(self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family() && (ip(self.split('-')[0]) == ip('255.255.255.255') || ip(self.split('-')[1]) == ip('255.255.255.255'))) : (isCIDR(self) ? !(cidr(self).masked().containsIP('255.255.255.255')) : (!isIP(self) || !(ip(self) == ip('255.255.255.255'))))",messageExpression="self + ' contains the limited-broadcast address (255.255.255.255), which a pool must not hold'"
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

	// AllowSharingAcrossNamespaces lets Services of different namespaces
	// share an address of this pool under one sharing key
	// (ironlb.io/allow-shared-ip), as long as every Service sharing it has
	// externalTrafficPolicy Cluster. By default a sharing key matches only
	// Services of the same namespace, so that one tenant cannot join, or
	// learn about, another tenant's address.
	// +optional
	AllowSharingAcrossNamespaces bool `json:"allowSharingAcrossNamespaces,omitempty"`

	// AllocateTo restricts which Services may draw from this pool and
	// orders the pools a Service may use.
	// +optional
	AllocateTo *AllocateTo `json:"allocateTo,omitempty"`
}

// AllocateTo restricts and orders allocation. A Service may draw from the
// pool when its namespace is allowed (neither namespaces nor
// namespaceSelector is set, or the namespace is listed, or its labels match
// the selector) and its own labels match serviceSelector when that is set.
type AllocateTo struct {
	// Priority orders the pools a Service may draw from: lower numbers are
	// tried first; pools without a priority come after all that have one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Priority *int32 `json:"priority,omitempty"`

	// Namespaces are namespaces whose Services may draw from the pool, in
	// addition to those that namespaceSelector selects.
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

// IPPoolStatus is written by the controller. Counts are per address family.
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
//
// The integer fields stop at the largest int64, 9223372036854775807,
// which an IPv6 pool as large as a /65 exceeds; such a pool shows that
// number instead. TotalText and AvailableText, which kubectl's columns
// show, give every size in a form that reads well:
//
//   - below 10^12, the exact number: "254", "4294967296";
//   - within a million of a power of two, that power and the difference,
//     still exact: "2^64", "2^64-3", "2^72+256";
//   - anything else, three significant digits: "1.21e+24".
type AddressCounts struct {
	Total     int64 `json:"total"`
	Assigned  int64 `json:"assigned"`
	Available int64 `json:"available"`

	// TotalText is how many addresses of the family the pool holds,
	// written to read well at any size: "254", "2^64", "1.21e+24".
	// +optional
	TotalText string `json:"totalText,omitempty"`

	// AvailableText is how many of them are not assigned, written to read
	// well at any size: "251", "2^64-3", "1.21e+24".
	// +optional
	AvailableText string `json:"availableText,omitempty"`
}

// IPPool is a pool of addresses for LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp,categories=ironlb
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="IPv4 Assigned",type=integer,JSONPath=`.status.ipv4.assigned`
// +kubebuilder:printcolumn:name="IPv4 Available",type=string,JSONPath=`.status.ipv4.availableText`
// +kubebuilder:printcolumn:name="IPv6 Assigned",type=integer,JSONPath=`.status.ipv6.assigned`
// +kubebuilder:printcolumn:name="IPv6 Available",type=string,JSONPath=`.status.ipv6.availableText`
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
