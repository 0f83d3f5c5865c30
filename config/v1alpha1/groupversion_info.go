// Package v1alpha1 holds the configuration API that ironlb users write:
// address pools and how their addresses are announced (layer 2 or BGP).
// All kinds are cluster-scoped. The same types are read from the cluster
// (as CRDs) or from a multi-document YAML file.
//
// +kubebuilder:object:generate=true
// +groupName=ironlb.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every kind in this package.
var GroupVersion = schema.GroupVersion{Group: "ironlb.io", Version: "v1alpha1"}

var schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

// AddToScheme registers the kinds of this package with a scheme.
var AddToScheme = schemeBuilder.AddToScheme

// Kind names, as they appear in apiVersion/kind and in error messages.
const (
	KindIPPool           = "IPPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPPeer          = "BGPPeer"
	KindBGPAdvertisement = "BGPAdvertisement"
	KindNodeAnnouncement = "NodeAnnouncement"
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&IPPool{}, &IPPoolList{},
		&L2Advertisement{}, &L2AdvertisementList{},
		&BGPPeer{}, &BGPPeerList{},
		&BGPAdvertisement{}, &BGPAdvertisementList{},
		&NodeAnnouncement{}, &NodeAnnouncementList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
