package main

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/inspect"
)

// scheme knows the core kinds and ironlb's.
func scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), v1alpha1.AddToScheme(s)); err != nil {
		return nil, err
	}
	return s, nil
}

// reader builds a client from the kubeconfig flags.
func (o *options) reader() (client.Reader, error) {
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	s, err := scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: s})
}

// namespace is the namespace of -n, or the kubeconfig context's.
func (o *options) namespace() (string, error) {
	ns, _, err := o.kube.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// parts of the Snapshot a command reads.
type parts struct {
	config, announcements, nodes bool
	// services: "" none, a namespace, or all namespaces with allServices.
	servicesIn  string
	allServices bool
}

// read fills a Snapshot from the cluster. Nodes are optional: a user who
// may not list them still gets the rest of the answer.
func read(ctx context.Context, c client.Reader, p parts) (*inspect.Snapshot, error) {
	s := &inspect.Snapshot{}
	var pools v1alpha1.IPPoolList
	if err := list(ctx, c, &pools, "IPPools"); err != nil {
		return nil, err
	}
	s.IPPools = pools.Items
	if p.config {
		var l2 v1alpha1.L2AdvertisementList
		var peers v1alpha1.BGPPeerList
		var bgp v1alpha1.BGPAdvertisementList
		for _, l := range []struct {
			list client.ObjectList
			what string
		}{{&l2, "L2Advertisements"}, {&peers, "BGPPeers"}, {&bgp, "BGPAdvertisements"}} {
			if err := list(ctx, c, l.list, l.what); err != nil {
				return nil, err
			}
		}
		s.L2Advertisements, s.BGPPeers, s.BGPAdvertisements = l2.Items, peers.Items, bgp.Items
	}
	if p.announcements {
		var nas v1alpha1.NodeAnnouncementList
		if err := list(ctx, c, &nas, "NodeAnnouncements"); err != nil {
			return nil, err
		}
		s.NodeAnnouncements = nas.Items
	}
	if p.nodes {
		var nodes corev1.NodeList
		err := list(ctx, c, &nodes, "Nodes")
		if err != nil && !apierrors.IsForbidden(err) {
			return nil, err
		}
		s.Nodes = nodes.Items
	}
	if p.servicesIn != "" || p.allServices {
		var opts []client.ListOption
		where := "in all namespaces"
		if !p.allServices {
			opts = append(opts, client.InNamespace(p.servicesIn))
			where = "in namespace " + p.servicesIn
		}
		var svcs corev1.ServiceList
		if err := list(ctx, c, &svcs, "Services "+where, opts...); err != nil {
			return nil, err
		}
		s.Services = svcs.Items
		if !p.allServices {
			var slices discoveryv1.EndpointSliceList
			if err := list(ctx, c, &slices, "EndpointSlices "+where, opts...); err != nil {
				return nil, err
			}
			s.EndpointSlices = slices.Items
		}
	}
	return s, nil
}

// list lists one kind, with an error that says which and, when ironlb's
// CRDs are missing, that they are.
func list(ctx context.Context, c client.Reader, l client.ObjectList, what string, opts ...client.ListOption) error {
	err := c.List(ctx, l, opts...)
	switch {
	case err == nil:
		return nil
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return fmt.Errorf("listing %s: the API server does not serve them; are ironlb's CRDs installed? %w", what, err)
	}
	return fmt.Errorf("listing %s: %w", what, err)
}
