package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeAnnouncementStatus is what one node's speaker announces right now.
type NodeAnnouncementStatus struct {
	// Layer2 lists the addresses this node answers ARP (IPv4) or NDP
	// (IPv6) for, sorted by address. At most 100 are listed (the lowest);
	// Layer2Addresses counts them all.
	// +optional
	// +listType=map
	// +listMapKey=address
	// +kubebuilder:validation:MaxItems=100
	Layer2 []L2Announcement `json:"layer2,omitempty"`

	// Layer2Addresses is how many addresses this node answers for in
	// layer 2 mode.
	// +optional
	Layer2Addresses int32 `json:"layer2Addresses,omitempty"`

	// BGP lists the prefixes this node advertises over BGP, sorted by
	// prefix. At most 100 are listed; BGPPrefixes counts them all.
	// +optional
	// +listType=map
	// +listMapKey=prefix
	// +kubebuilder:validation:MaxItems=100
	BGP []BGPAnnouncement `json:"bgp,omitempty"`

	// BGPPrefixes is how many prefixes this node advertises over BGP.
	// +optional
	BGPPrefixes int32 `json:"bgpPrefixes,omitempty"`

	// BGPSessions are this node's BGP sessions, one per BGPPeer that
	// selects the node, sorted by peer.
	// +optional
	// +listType=map
	// +listMapKey=peer
	BGPSessions []BGPSession `json:"bgpSessions,omitempty"`

	// BGPSessionSummary is BGPSessions in one line for kubectl's column:
	// each session as peer=State, in the same order, joined by commas
	// ("rtr-a=Established,rtr-b=Active").
	// +optional
	BGPSessionSummary string `json:"bgpSessionSummary,omitempty"`

	// Members is how many speakers this node sees alive in the memberlist
	// cluster, itself included.
	// +optional
	Members int32 `json:"members,omitempty"`

	// KnownSpeakers is how many speakers this node counts as running: the
	// speaker pods the API server reports ready on ready nodes (as last
	// seen), less those that left the memberlist cluster gracefully, plus
	// every alive member. Members must be a majority of them for this node
	// to answer in layer 2 (see Fenced). 0 when fencing is off.
	// +optional
	KnownSpeakers int32 `json:"knownSpeakers,omitempty"`

	// Fenced, when set, says why this node answers nothing in layer 2 at
	// the moment: the speakers it sees alive are not a quorum of the known
	// ones, so it may be on the losing side of a partition. Empty while it
	// may answer.
	// +optional
	Fenced string `json:"fenced,omitempty"`
}

// L2Announcement is one address announced in layer 2 mode from a node.
type L2Announcement struct {
	// Address is the LoadBalancer address.
	Address string `json:"address"`
	// Services are the Services using the address, as namespace/name.
	// +listType=set
	Services []string `json:"services"`
	// Interfaces are the node's interfaces answering for it.
	// +optional
	// +listType=set
	Interfaces []string `json:"interfaces,omitempty"`
	// Since is when this node started announcing the address.
	Since metav1.Time `json:"since"`
}

// BGPAnnouncement is one prefix advertised over BGP from a node.
type BGPAnnouncement struct {
	// Prefix is the Service address, or the aggregate covering it.
	Prefix string `json:"prefix"`
	// Services are the Services it covers, as namespace/name.
	// +listType=set
	Services []string `json:"services"`
	// Peers are the BGPPeers it is advertised to.
	// +listType=set
	Peers []string `json:"peers"`
	// Since is when this node started advertising it.
	Since metav1.Time `json:"since"`
}

// BGPSession is one BGP session of a node.
type BGPSession struct {
	// Peer is the BGPPeer's name.
	Peer string `json:"peer"`
	// Address is the router's address.
	Address string `json:"address"`
	// State is the BGP state: Established when up; Idle, Connect,
	// Active, OpenSent or OpenConfirm while trying; Disabled when the
	// session cannot be configured (Message says why).
	State string `json:"state"`
	// Since is when the session entered State.
	// +optional
	Since metav1.Time `json:"since,omitempty"`
	// Advertised is how many prefixes are advertised to the peer.
	Advertised int32 `json:"advertised"`
	// BFD is the state of the peer's BFD session: Up; Down, Init or
	// AdminDown while it is not up; empty when the peer has no bfd block.
	// While a BFD session that was Up is Down, the BGP session is held
	// down.
	// +optional
	// +kubebuilder:validation:Enum=Up;Down;Init;AdminDown
	BFD string `json:"bfd,omitempty"`
	// Message says what is wrong, when something is.
	// +optional
	Message string `json:"message,omitempty"`
}

// NodeAnnouncement shows what one node's speaker announces. The speaker
// of the node of the same name creates it and is its only writer, so
// speakers never overwrite each other; it is deleted with the Node.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nodeann,categories=ironlb
// +kubebuilder:printcolumn:name="Layer2",type=string,JSONPath=`.status.layer2[*].address`
// +kubebuilder:printcolumn:name="BGP Prefixes",type=integer,JSONPath=`.status.bgpPrefixes`
// +kubebuilder:printcolumn:name="BGP Sessions",type=string,JSONPath=`.status.bgpSessionSummary`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Known",type=integer,JSONPath=`.status.knownSpeakers`
// +kubebuilder:printcolumn:name="Fenced",type=string,JSONPath=`.status.fenced`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status NodeAnnouncementStatus `json:"status,omitempty"`
}

// NodeAnnouncementList is a list of NodeAnnouncements.
//
// +kubebuilder:object:root=true
type NodeAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeAnnouncement `json:"items"`
}
