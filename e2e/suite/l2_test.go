package suite

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/internal/testutil"
)

// applyExample applies the lab's example configuration.
func applyExample(t *testing.T, l *lab.Lab) {
	t.Helper()
	if err := l.ApplyExample(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
}

// lbService creates a LoadBalancer Service of one family asking for addr
// and waits until its status shows it.
func lbService(t *testing.T, c client.Client, name string, addr netip.Addr, mutate func(*corev1.Service)) *corev1.Service {
	t.Helper()
	ctx := context.Background()
	svc := lab.LBService(name, addr, nil)
	if mutate != nil {
		mutate(svc)
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, name+"'s address "+addr.String(), func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return false, err.Error()
		}
		in := svc.Status.LoadBalancer.Ingress
		return len(in) == 1 && in[0].IP == addr.String(), fmt.Sprintf("%+v", svc.Status)
	})
	return svc
}

// announcedBy returns the nodes whose NodeAnnouncement lists addr.
func announcedBy(c client.Client, addr netip.Addr) ([]string, error) {
	var list v1alpha1.NodeAnnouncementList
	if err := c.List(context.Background(), &list); err != nil {
		return nil, err
	}
	var out []string
	for _, na := range list.Items {
		for _, a := range na.Status.Layer2 {
			if a.Address == addr.String() {
				out = append(out, na.Name)
			}
		}
	}
	return out, nil
}

// TestLayer2Failover: for IPv4 and IPv6, the client resolves the Service's
// address to the MAC of the node its NodeAnnouncement names, and only that
// node answers; when its speaker is killed, or its cable pulled, another
// node answers; across a graceful restart of the owner's speaker no probe
// goes unanswered.
func TestLayer2Failover(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	targets := []netip.Addr{lab.PoolAddr(lab.L2PoolNet, 70), lab.PoolAddr(lab.L2PoolNet6, 0x70)}
	for i, a := range targets {
		lbService(t, c, fmt.Sprintf("l2-%d", i), a, nil)
	}
	for _, target := range targets {
		t.Run(target.String(), func(t *testing.T) {
			owner, err := measure.Owner(ctx, l, target)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "the NodeAnnouncement naming "+owner, func() (bool, string) {
				by, err := announcedBy(c, target)
				return err == nil && len(by) == 1 && by[0] == owner, fmt.Sprintf("announced by %v (%v); the client hears %s", by, err, owner)
			})
			for _, fault := range []measure.Fault{measure.FaultKill, measure.FaultLink, measure.FaultRestart} {
				tr, err := measure.FailoverTrial(ctx, l, target, fault)
				if err != nil {
					t.Fatalf("%s: %v", fault, err)
				}
				t.Logf("%s: %s -> %s, gap %s, %d of %d probes unanswered (the prober paused at most %s); answers: %s", fault, tr.Old, tr.New, tr.Failover.Gap, tr.Unanswered, tr.Probes, tr.ProberPause, tr.Timeline)
				if tr.New == "" || tr.New == tr.Old {
					t.Errorf("%s: no other node took over from %s", fault, tr.Old)
				}
				if fault == measure.FaultRestart && tr.Unanswered != 0 {
					t.Errorf("%s: %d of %d probes went unanswered across a graceful restart", fault, tr.Unanswered, tr.Probes)
				}
			}
		})
	}
}

// TestLayer2LocalPolicy: with externalTrafficPolicy Local the address is
// announced from a node holding a ready endpoint, and moves when that
// node's last ready endpoint goes away.
func TestLayer2LocalPolicy(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	createPods(t, c, "local", 2)
	target := lab.PoolAddr(lab.L2PoolNet, 71)
	lbService(t, c, "local", target, func(s *corev1.Service) {
		s.Spec.Selector = map[string]string{"app": "local"}
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	// podNodes maps each ready pod to its node.
	podNodes := func() map[string]string {
		var list discoveryv1.EndpointSliceList
		_ = c.List(ctx, &list, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "local"})
		out := map[string]string{}
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready && e.NodeName != nil {
					out[e.TargetRef.Name] = *e.NodeName
				}
			}
		}
		return out
	}
	testutil.Eventually(t, "two ready endpoints on two nodes", func() (bool, string) {
		m := podNodes()
		return len(m) == 2 && m["local-0"] != m["local-1"], fmt.Sprint(m)
	})
	nodes := podNodes()
	owner, err := measure.Owner(ctx, l, target)
	if err != nil {
		t.Fatal(err)
	}
	var ownPod, otherNode string
	for pod, n := range nodes {
		if n == owner {
			ownPod = pod
		} else {
			otherNode = n
		}
	}
	if ownPod == "" {
		t.Fatalf("%s announced from %s, which holds none of the ready endpoints %v", target, owner, nodes)
	}
	// The owner's pod turns unready: its node has no ready endpoint left.
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: ownPod}, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{lab.ReadyAnnotation: "false"}
	if err := c.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the announcement to move to "+otherNode, func() (bool, string) {
		by, err := announcedBy(c, target)
		return err == nil && len(by) == 1 && by[0] == otherNode, fmt.Sprintf("announced by %v (%v)", by, err)
	})
	now, err := measure.Owner(ctx, l, target)
	if err != nil || now != otherNode {
		t.Fatalf("the client hears %q (%v), want %s", now, err, otherNode)
	}
}
