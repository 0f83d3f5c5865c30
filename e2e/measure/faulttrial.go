package measure

// This file and the fault*.go beside it hold the fault trials of issue
// 16 as both the suite's scenarios (e2e/suite/faults_test.go) and `lab
// measure-faults` run them. This file readies a lab with one layer 2
// address owned by each node (FaultEnv); load.go is the traffic to
// those addresses (Load); each of faultrestart.go, faultpartition.go,
// faultcable.go, faultfreeze.go and faultkeys.go has the method that
// inflicts one fault, restores the lab and returns when each thing
// happened (RollingRestart, PartitionTrial, CablePullTrial,
// APIFreezeTrial, KeyControl, RotateKey), and the pure functions that
// judge, from those times and the client's records, what the client saw
// (JudgeRestart, JudgePartition, JudgeCable, FirstAnswerAfter,
// SessionsDropped, KeyControlJoined, LowestMembers). What the issue
// bounds is asserted by the suite and reported beside the promise by
// measure-faults.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
	"github.com/ironlb/ironlb/internal/election"
)

const (
	// FaultRequestTimeout is how long a request of the load may take
	// before it counts as failed: longer than any answer of a healthy lab
	// on a busy machine, shorter than the client's first SYN retry (1 s),
	// so a connection whose SYN was lost counts as failed.
	FaultRequestTimeout = 900 * time.Millisecond
	// FaultHoldTimeout is how long an exchange on a long-lived connection
	// may take before the connection counts as broken: a few
	// retransmissions' worth.
	FaultHoldTimeout = 3 * time.Second
	// FaultHeldPerAddr is how many long-lived connections each address
	// gets at a time.
	FaultHeldPerAddr = 3

	// MaxDualAnswers bounds, per address, the time during which two
	// nodes answer the client over a whole partition trial (issue 16).
	MaxDualAnswers = time.Second
	// MaxAnswerAfterKill bounds how long after its owner's speaker is
	// killed another node answers for an address (issue 16).
	MaxAnswerAfterKill = time.Second

	// PartitionHold, CableHold and FreezeHold are how long each fault
	// lasts; FreezeKillAfter is when, into the freeze, the owner's
	// speaker is killed: long enough that every client's requests hang.
	PartitionHold   = 30 * time.Second
	CableHold       = 10 * time.Second
	FreezeHold      = 2 * time.Minute
	FreezeKillAfter = 10 * time.Second

	// faultApp labels the web pods of a FaultEnv, one per node.
	faultApp = "web"
	// settleAfter is how long a trial waits once the lab is back in
	// place, so that whatever the fault disturbed shows within it.
	settleAfter = time.Second
)

// waitPoll is how a FaultEnv waits for the API server's objects.
var waitPoll = lab.Poll{Every: 100 * time.Millisecond, Within: 30 * time.Second}

// faultAddrsFrom is where the search for the addresses of a FaultEnv
// starts: the upper part of the lab's layer 2 pool.
var faultAddrsFrom = netip.MustParseAddr("203.0.113.72")

// nodeAnnouncements is the speakers' NodeAnnouncement resource.
var nodeAnnouncements = schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "nodeannouncements"}

// OwnedAddrs returns, for each of nodes in order, the first address from
// `from` on, inside pool, that the node ranks first for among nodes
// (ClaimV2), and each address's node. It fails when the pool runs out
// before every node has one.
func OwnedAddrs(from netip.Addr, pool netip.Prefix, nodes []string) ([]netip.Addr, map[netip.Addr]string, error) {
	owners := map[netip.Addr]string{}
	byNode := map[string]netip.Addr{}
	for a := from; len(byNode) < len(nodes); a = a.Next() {
		if !pool.Contains(a) {
			return nil, nil, fmt.Errorf("the pool %s has no address from %s on for every node of %v: %v", pool, from, nodes, owners)
		}
		w := election.Winner(election.ClaimV2, a, nodes)
		if _, ok := byNode[w]; ok {
			continue
		}
		byNode[w], owners[a] = a, w
	}
	var addrs []netip.Addr
	for _, n := range nodes {
		addrs = append(addrs, byNode[n])
	}
	return addrs, owners, nil
}

// FaultEnv is a lab readied for the fault trials: a web pod on every
// node, and one IPv4 layer 2 Service for each node, asking for an address
// that node ranks first for, its pods being all the web pods; the client
// asks for every address (ARP) every 10 ms throughout.
type FaultEnv struct {
	Lab   *lab.Lab
	Nodes []string
	// Addrs are the Services' addresses, in the nodes' order; Owners maps
	// each to its node.
	Addrs  []netip.Addr
	Owners map[netip.Addr]string
	// MACs are the nodes' LAN MACs, by node.
	MACs    map[string]net.HardwareAddr
	Probers map[netip.Addr]*traffic.Prober
	// Pods are the web pods' names, sorted.
	Pods []string

	dyn dynamic.Interface
}

// NewFaultEnv readies a lab that runs the example configuration (see
// FaultEnv) and waits until every address is answered by its owner alone
// and every speaker counts them all. Close stops the probers.
func NewFaultEnv(ctx context.Context, l *lab.Lab) (*FaultEnv, error) {
	e := &FaultEnv{Lab: l, MACs: map[string]net.HardwareAddr{}}
	for _, n := range l.Plan.Nodes {
		e.Nodes = append(e.Nodes, n.Name)
		mac, err := lab.NodeMAC(l.Plan, n.Name)
		if err != nil {
			return nil, err
		}
		e.MACs[n.Name] = mac
	}
	var err error
	if e.dyn, err = l.Dynamic(); err != nil {
		return nil, err
	}
	if e.Addrs, e.Owners, err = OwnedAddrs(faultAddrsFrom, lab.L2PoolNet, e.Nodes); err != nil {
		return nil, err
	}
	if err := e.createPods(ctx); err != nil {
		return nil, err
	}
	for _, a := range e.Addrs {
		if err := e.Service(ctx, "fault-"+e.Owners[a], a); err != nil {
			return nil, err
		}
	}
	if e.Probers, err = traffic.StartProbes(ctx, l.Plan, l.Plan.Client, e.Addrs, traffic.DefaultProbeInterval); err != nil {
		return nil, err
	}
	if err := e.WaitOwners(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Close stops the probers. Safe to call twice.
func (e *FaultEnv) Close() {
	for _, pr := range e.Probers {
		pr.Stop()
	}
}

// createPods creates a web pod on every node, once the default
// ServiceAccount exists.
func (e *FaultEnv) createPods(ctx context.Context) error {
	cs := e.Lab.Clientset
	if err := lab.DefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	no := false
	for _, node := range e.Nodes {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: faultApp + "-" + node, Labels: map[string]string{"app": faultApp}},
			Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: faultApp, Image: "none"}}}}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod %s: %w", pod.Name, err)
		}
		e.Pods = append(e.Pods, pod.Name)
	}
	slices.Sort(e.Pods)
	return nil
}

// Service creates a LoadBalancer Service of addr's family asking for
// addr, for the web pods on port 80, and waits until its status shows
// the address and its EndpointSlices list every web pod as ready.
func (e *FaultEnv) Service(ctx context.Context, name string, addr netip.Addr) error {
	cs := e.Lab.Clientset
	svc := lab.LBService(name, addr, map[string]string{"app": faultApp})
	fam := svc.Spec.IPFamilies[0]
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Service %s: %w", name, err)
	}
	if err := waitPoll.Until(ctx, name+"'s address "+addr.String(), func() (bool, string) {
		s, err := cs.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		in := s.Status.LoadBalancer.Ingress
		return len(in) == 1 && in[0].IP == addr.String(), fmt.Sprintf("status %+v", s.Status)
	}); err != nil {
		return err
	}
	return waitPoll.Until(ctx, fmt.Sprintf("%s's ready endpoints to be %v", name, e.Pods), func() (bool, string) {
		list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if err != nil {
			return false, err.Error()
		}
		var ready []string
		for _, s := range list.Items {
			if string(s.AddressType) != string(fam) {
				continue
			}
			for _, ep := range s.Endpoints {
				if ep.TargetRef != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
					ready = append(ready, ep.TargetRef.Name)
				}
			}
		}
		slices.Sort(ready)
		return slices.Equal(ready, e.Pods), fmt.Sprintf("ready %v", ready)
	})
}

// Marks notes where each prober's record stands, to read it from there.
func (e *FaultEnv) Marks() map[netip.Addr]int {
	out := map[netip.Addr]int{}
	for a, pr := range e.Probers {
		out[a] = pr.Len()
	}
	return out
}

// Others returns the nodes but one.
func (e *FaultEnv) Others(node string) []string {
	return slices.DeleteFunc(slices.Clone(e.Nodes), func(n string) bool { return n == node })
}

// Targets are the addresses' HTTP ports.
func (e *FaultEnv) Targets() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range e.Addrs {
		out = append(out, netip.AddrPortFrom(a, 80))
	}
	return out
}

// Describe lists the addresses with their owners.
func (e *FaultEnv) Describe() string {
	var out []string
	for _, a := range e.Addrs {
		out = append(out, fmt.Sprintf("%s on %s", a, e.Owners[a]))
	}
	return strings.Join(out, ", ")
}

// WaitOwners waits until every address is in place with every speaker
// running: see WaitOwnersSince, from now on.
func (e *FaultEnv) WaitOwners() error { return e.WaitOwnersSince(e.Marks(), e.Nodes) }

// WaitOwnersSince waits until, for every address, the client hears its
// owner alone in the probes since the mark (SettledSince), and the
// speakers of live agree: each one's NodeAnnouncement counts len(live)
// members and lists exactly the addresses it owns. A killed speaker's
// NodeAnnouncement keeps its last status (no one else writes it), so it
// is not read.
func (e *FaultEnv) WaitOwnersSince(since map[netip.Addr]int, live []string) error {
	var stopped error // a prober that ended
	err := lab.Eventually(context.Background(), "every address answered by its owner alone", func() (bool, string) {
		wrong, err := e.ownersWrong(since, live)
		if err != nil {
			stopped = err
			return true, ""
		}
		return len(wrong) == 0, fmt.Sprintf("%d wrong:\n%s", len(wrong), strings.Join(wrong, "\n"))
	})
	if stopped != nil {
		return stopped
	}
	return err
}

// ownersWrong says what is not yet in place; an error is a prober that
// stopped.
func (e *FaultEnv) ownersWrong(since map[netip.Addr]int, live []string) ([]string, error) {
	var wrong []string
	for _, a := range e.Addrs {
		pr := e.Probers[a]
		if err := pr.Err(); err != nil {
			return nil, fmt.Errorf("prober of %s: %w", a, err)
		}
		if hears := SettledSince(e.Lab, pr, since[a]); hears != e.Owners[a] {
			recent := pr.ProbesSince(pr.Len() - 100)
			wrong = append(wrong, fmt.Sprintf("%s: the client hears %q, want %s alone; answers in the last second: %s", a, hears, e.Owners[a], timeline(e.Lab, recent)))
		}
	}
	list, err := e.dyn.Resource(nodeAnnouncements).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return append(wrong, err.Error()), nil
	}
	by := map[netip.Addr][]string{}
	reported := 0
	for _, u := range list.Items {
		var na v1alpha1.NodeAnnouncement
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &na); err != nil {
			return nil, fmt.Errorf("NodeAnnouncement %s: %w", u.GetName(), err)
		}
		if !slices.Contains(live, na.Name) {
			continue
		}
		reported++
		if int(na.Status.Members) != len(live) {
			wrong = append(wrong, fmt.Sprintf("%s's NodeAnnouncement counts %d members, want %d", na.Name, na.Status.Members, len(live)))
		}
		for _, l2 := range na.Status.Layer2 {
			if a, err := netip.ParseAddr(l2.Address); err == nil {
				by[a] = append(by[a], na.Name)
			}
		}
	}
	if reported != len(live) {
		wrong = append(wrong, fmt.Sprintf("%d of the NodeAnnouncements of %v exist", reported, live))
	}
	for _, a := range e.Addrs {
		if len(by[a]) != 1 || by[a][0] != e.Owners[a] {
			wrong = append(wrong, fmt.Sprintf("%s: announced by %v, want %s", a, by[a], e.Owners[a]))
		}
	}
	return wrong, nil
}

// AllCount waits, at most limit, until every speaker counts every node
// as a member, and reports whether they did.
func (e *FaultEnv) AllCount(limit time.Duration) bool {
	poll := lab.Poll{Every: 100 * time.Millisecond, Within: limit}
	return poll.Until(context.Background(), "every speaker to count every node", func() (bool, string) {
		var counts []string
		for _, node := range e.Nodes {
			m, err := e.Lab.SpeakerMembers(node)
			if err != nil || m != len(e.Nodes) {
				counts = append(counts, fmt.Sprintf("%s: %d (%v)", node, m, err))
			}
		}
		return len(counts) == 0, strings.Join(counts, ", ")
	}) == nil
}
