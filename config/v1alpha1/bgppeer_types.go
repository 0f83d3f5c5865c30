package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeerSpec describes a BGP router that speakers on the selected nodes
// open a session with.
//
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress must be of the same address family as peerAddress",fieldPath=".sourceAddress"
// +kubebuilder:validation:XValidation:rule="has(self.peerASN) != has(self.dynamicASN)",message="set exactly one of peerASN and dynamicASN",fieldPath=".peerASN"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || !self.holdTime.matches('^(0|([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$') || !self.keepaliveTime.matches('^(0|([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$') || (duration(self.holdTime) == duration('0s') ? duration(self.keepaliveTime) == duration('0s') : (duration(self.keepaliveTime) >= duration('1s') && duration(self.keepaliveTime) <= duration(self.holdTime)))",message="keepaliveTime must be at least 1s and not longer than holdTime, or 0s when holdTime is 0s",fieldPath=".keepaliveTime"
type BGPPeerSpec struct {
	// PeerAddress is the router's address.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	PeerAddress string `json:"peerAddress"`

	// PeerASN is the router's autonomous system number (1-4294967295).
	// Set exactly one of peerASN and dynamicASN.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	PeerASN int64 `json:"peerASN,omitempty"`

	// DynamicASN accepts the router's AS number from its OPEN message
	// instead of a fixed peerASN: internal (the router is in myASN; iBGP)
	// or external (any AS but myASN; eBGP: a router that answers with
	// myASN is refused and the session reported).
	// +optional
	// +kubebuilder:validation:Enum=internal;external
	DynamicASN string `json:"dynamicASN,omitempty"`

	// MyASN is the speakers' autonomous system number (1-4294967295).
	// The session is iBGP when it equals peerASN, eBGP otherwise.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	MyASN int64 `json:"myASN"`

	// PeerPort is the router's TCP port.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort int32 `json:"peerPort,omitempty"`

	// SourceAddress is the local address sessions are opened from; by
	// default the node's address towards the peer.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	SourceAddress string `json:"sourceAddress,omitempty"`

	// HoldTime is the BGP hold time offered to the router: 0s (no
	// keepalives) or a whole number of seconds from 3s to 65535s.
	// +optional
	// +kubebuilder:default="90s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^(0|([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$')",message="must be a whole number of seconds, written like 90s, 3m or 1m30s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$') || self == '' || duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))",message="must be 0s, or from 3s to 65535s"
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the interval between keepalives: by default a third
	// of the hold time. At least 1s, at most the hold time; 0s only with a
	// hold time of 0s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^(0|([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$')",message="must be a whole number of seconds, written like 30s or 1m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(0|([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$') || self == '' || duration(self) <= duration('65535s')",message="must be at most 65535s"
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is how long the speaker waits between attempts to open
	// the session while it is down: a whole number of seconds from 1s to
	// 65535s, by default 5s. A session that stays down is tried less
	// often, its interval doubling each minute up to 2m (or ConnectTime,
	// if longer).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^(([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$')",message="must be a whole number of seconds, written like 5s or 1m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(([0-9]{1,5}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?)$') || self == '' || (duration(self) >= duration('1s') && duration(self) <= duration('65535s'))",message="must be from 1s to 65535s"
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// MaxReceivedPrefixes is how many prefixes of each address family the
	// router may send before the speaker closes the session with a
	// NOTIFICATION (Cease, maximum number of prefixes reached) and reports
	// it; it tries again after ConnectTime. The speaker uses none of the
	// routes it receives, so routers are best told to send none.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	MaxReceivedPrefixes *int64 `json:"maxReceivedPrefixes,omitempty"`

	// EBGPMultiHop allows an eBGP router that is not directly connected.
	// With bfd set, such a peer runs multihop BFD (RFC 5883, UDP port
	// 4784) instead of single hop.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// BFD, when set, runs a BFD session (RFC 5880) beside the BGP session,
	// single hop (RFC 5881) or, with ebgpMultiHop, multihop (RFC 5883).
	// When a BFD session that was Up goes Down, the speaker closes the BGP
	// session at once (the router drops the node's routes without waiting
	// for the hold time) and opens it again when BFD is Up. A BFD session
	// that never came up does not hold BGP back. The router must run BFD
	// for this address too.
	// +optional
	BFD *BFDSettings `json:"bfd,omitempty"`

	// PasswordSecretRef names a Secret holding the TCP MD5 password of the
	// session.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// GracefulRestart enables BGP graceful restart, so the router keeps the
	// routes of a restarting speaker for a while.
	// +optional
	GracefulRestart bool `json:"gracefulRestart,omitempty"`

	// NodeSelector selects the nodes whose speakers peer with this router;
	// unset means all.
	// +optional
	NodeSelector *Selector `json:"nodeSelector,omitempty"`

	// RouterID is the BGP identifier the speakers use, a dotted-quad IPv4
	// address; by default the node's IPv4 address.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address in dotted-quad form"
	RouterID string `json:"routerID,omitempty"`
}

// BFDSettings are the timers of a peer's BFD session. The intervals are
// what this side asks for: the session runs at the slower of its own and
// the router's.
type BFDSettings struct {
	// ReceiveInterval is the shortest interval between received BFD
	// packets this side can handle: whole milliseconds from 10ms to 60s,
	// by default 300ms.
	// +optional
	// +kubebuilder:default="300ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^(([0-9]{1,2}m)?([0-9]{1,5}s)?([0-9]{1,8}ms)?)$')",message="must be a whole number of milliseconds, written like 300ms, 1s or 1s500ms"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(([0-9]{1,2}m)?([0-9]{1,5}s)?([0-9]{1,8}ms)?)$') || self == '' || (duration(self) >= duration('10ms') && duration(self) <= duration('60s'))",message="must be from 10ms to 60s"
	ReceiveInterval *metav1.Duration `json:"receiveInterval,omitempty"`

	// TransmitInterval is the interval between sent BFD packets this side
	// would like while the session is Up (it sends one a second before):
	// whole milliseconds from 10ms to 60s, by default 300ms.
	// +optional
	// +kubebuilder:default="300ms"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self != '' && self.matches('^(([0-9]{1,2}m)?([0-9]{1,5}s)?([0-9]{1,8}ms)?)$')",message="must be a whole number of milliseconds, written like 300ms, 1s or 1s500ms"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^(([0-9]{1,2}m)?([0-9]{1,5}s)?([0-9]{1,8}ms)?)$') || self == '' || (duration(self) >= duration('10ms') && duration(self) <= duration('60s'))",message="must be from 10ms to 60s"
	TransmitInterval *metav1.Duration `json:"transmitInterval,omitempty"`

	// DetectMultiplier is how many of this side's transmit intervals the
	// router waits without a packet before it declares the session down
	// (2-255, by default 3).
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`

	// EchoMode must be false: the speaker does not send BFD echo packets.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self",message="echo mode is not supported: set false or leave it out"
	EchoMode bool `json:"echoMode,omitempty"`
}

// SecretKeyRef points at one key of a Secret.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`

	// Key in the Secret's data.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// BGPPeerStatus is written by the controller.
type BGPPeerStatus struct {
	// Conditions: Valid tells whether the peer is in use, and if not why.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Sessions is EstablishedSessions and TotalSessions as one text,
	// "established/total" ("2/3": two of the three nodes that peer with
	// this router have their session up), for kubectl's column.
	// +optional
	Sessions string `json:"sessions,omitempty"`

	// TotalSessions is how many nodes' speakers hold a session with this
	// peer, as they last reported it in their NodeAnnouncements (see
	// NodeAnnouncement's status.bgpSessions).
	// +optional
	TotalSessions int32 `json:"totalSessions,omitempty"`

	// EstablishedSessions is how many of those sessions are Established.
	// +optional
	EstablishedSessions int32 `json:"establishedSessions,omitempty"`
}

// BGPPeer is a BGP router that speakers peer with.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories=ironlb
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Sessions",type=string,JSONPath=`.status.sessions`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec"`
	// +optional
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
