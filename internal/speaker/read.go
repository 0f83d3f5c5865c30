package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/planner"
)

// sliceServiceField indexes the cached EndpointSlices by the name of
// their Service, so that one Service's slices are found without looking
// at the others.
const sliceServiceField = "ironlb.io/service-name"

// sliceService is the index function of sliceServiceField.
func sliceService(o client.Object) []string {
	if name := o.GetLabels()[discoveryv1.LabelServiceName]; name != "" {
		return []string{name}
	}
	return nil
}

// read brings the plan up to date with what d says changed.
func (s *Speaker) read(ctx context.Context, d dirtySet) error {
	if d.config {
		if err := s.loadConfig(ctx); err != nil {
			return err
		}
	}
	if d.nodes {
		if err := s.readNodes(ctx); err != nil {
			return err
		}
	}
	if d.all {
		return s.readServices(ctx)
	}
	for key := range d.services {
		if err := s.readService(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

func (s *Speaker) loadConfig(ctx context.Context) error {
	if s.opts.Static != nil {
		s.cfg = s.opts.Static
	} else {
		snap, err := kube.ReadSnapshot(ctx, s.reader)
		if err != nil {
			return fmt.Errorf("listing the configuration: %w", err)
		}
		// The controller reports invalid objects in their status; the
		// speaker uses the valid rest, exactly as the controller does.
		s.cfg, _ = config.Resolve(snap)
	}
	s.secrets.want(s.cfg)
	s.state.SetConfig(s.cfg)
	return nil
}

// readNodes gives the plan every Node, and notes this node's addresses.
func (s *Speaker) readNodes(ctx context.Context) error {
	var nodes corev1.NodeList
	if err := s.reader.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing Nodes: %w", err)
	}
	planned := make([]planner.Node, 0, len(nodes.Items))
	var selfAddrs []netip.Addr
	selfIPv4 := netip.Addr{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		planned = append(planned, nodeFor(n))
		if n.Name == s.opts.Node {
			selfAddrs = internalIPs(n)
			selfIPv4 = internalIPv4(n)
		}
	}
	if selfIPv4 != s.selfIPv4 {
		s.selfIPv4, s.bgpFull = selfIPv4, true
	}
	s.state.SetNodes(planned)
	s.state.SetSelfAddrs(selfAddrs)
	return nil
}

// readServices gives the plan every Service and its endpoints, and drops
// those it holds that are gone.
func (s *Speaker) readServices(ctx context.Context) error {
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	// The objects are only read, never changed or kept: the cache's own
	// copies will do, which saves copying thousands of objects.
	for _, l := range []client.ObjectList{&svcs, &eps} {
		if err := s.reader.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("listing %T: %w", l, err)
		}
	}
	endpoints := endpointsOf(eps.Items)
	present := map[string]bool{}
	for i := range svcs.Items {
		key := svcs.Items[i].Namespace + "/" + svcs.Items[i].Name
		present[key] = true
		s.plan(key, &svcs.Items[i], endpoints[key])
	}
	for _, key := range s.state.Services() {
		if !present[key] {
			s.plan(key, nil, nil)
		}
	}
	return nil
}

// readService gives the plan one Service and its endpoints as the caches
// hold them now.
func (s *Speaker) readService(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	var svc corev1.Service
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); apierrors.IsNotFound(err) {
		s.plan(key, nil, nil)
		return nil
	} else if err != nil {
		return fmt.Errorf("reading Service %s: %w", key, err)
	}
	var eps discoveryv1.EndpointSliceList
	if err := s.reader.List(ctx, &eps, client.InNamespace(ns), client.MatchingFields{sliceServiceField: name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing the EndpointSlices of Service %s: %w", key, err)
	}
	s.plan(key, &svc, endpointsOf(eps.Items)[key])
	return nil
}

// plan gives the plan Service key (nil: gone) with its endpoints.
func (s *Speaker) plan(key string, svc *corev1.Service, endpoints []planner.Endpoint) {
	if svc == nil || !s.opts.Class.Handles(svc) {
		s.ranges.forget(key)
		s.state.DeleteService(key)
		delete(s.services, key)
		return
	}
	ps, badRanges := serviceFor(svc, endpoints)
	if len(ps.Addrs) == 0 {
		s.plan(key, nil, nil)
		return
	}
	s.ranges.note(s.log, key, badRanges)
	s.state.SetService(ps)
	if ref := s.services[key]; ref == nil || ref.UID != svc.UID {
		s.services[key] = &corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID}
	}
}
