// Package kube holds the pieces of the API-server edge that the controller
// and the speaker share: reading the configuration snapshot, the sink
// their events go to, and the informer cache options that keep only what
// ironlb reads of the bulky kinds (transform.go).
//
// It is not in internal/config because that package is pure: it turns a
// snapshot into a model and never reads a cluster. What reads the cluster
// lives here, once, so that the two binaries cannot drift apart in what
// they read.
package kube

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

// EventSink records Kubernetes events (events.k8s.io); the manager's
// event recorder is one.
type EventSink interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// ReadSnapshot lists every configuration object the resolver reads
// (config.Resolve): IPPools, L2Advertisements, BGPPeers and
// BGPAdvertisements. The error names the kind that could not be listed.
func ReadSnapshot(ctx context.Context, r client.Reader) (config.Snapshot, error) {
	var (
		snap  config.Snapshot
		pools v1alpha1.IPPoolList
		l2    v1alpha1.L2AdvertisementList
		peers v1alpha1.BGPPeerList
		bgp   v1alpha1.BGPAdvertisementList
	)
	lists := []struct {
		kind string
		list client.ObjectList
	}{
		{v1alpha1.KindIPPool, &pools},
		{v1alpha1.KindL2Advertisement, &l2},
		{v1alpha1.KindBGPPeer, &peers},
		{v1alpha1.KindBGPAdvertisement, &bgp},
	}
	for _, l := range lists {
		if err := r.List(ctx, l.list); err != nil {
			return snap, fmt.Errorf("listing %ss: %w", l.kind, err)
		}
	}
	snap.IPPools, snap.L2Advertisements, snap.BGPPeers, snap.BGPAdvertisements = pools.Items, l2.Items, peers.Items, bgp.Items
	return snap, nil
}
