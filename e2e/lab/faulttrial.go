package lab

// This file holds the fault trials of issue 16 as both the suite's
// scenarios (e2e/suite/faults_test.go) and `lab measure-faults` run them:
// a lab readied with one layer 2 address owned by each node (FaultEnv),
// the traffic to those addresses (Load), one method per fault that
// inflicts it, restores the lab and returns when each thing happened
// (RollingRestart, PartitionTrial, CablePullTrial, APIFreezeTrial,
// KeyControl, RotateKey), and pure functions that judge, from those times
// and the client's records, what the client saw (JudgeRestart,
// JudgePartition, JudgeCable, FirstAnswerAfter, SessionsDropped,
// KeyControlJoined, LowestMembers). What the issue bounds is asserted by
// the suite and reported beside the promise by measure-faults.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/config/v1alpha1"
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
	Lab   *Lab
	Nodes []string
	// Addrs are the Services' addresses, in the nodes' order; Owners maps
	// each to its node.
	Addrs  []netip.Addr
	Owners map[netip.Addr]string
	// MACs are the nodes' LAN MACs, by node.
	MACs    map[string]net.HardwareAddr
	Probers map[netip.Addr]*Prober
	// Pods are the web pods' names, sorted.
	Pods []string

	dyn dynamic.Interface
}

// NewFaultEnv readies a lab that runs the example configuration (see
// FaultEnv) and waits until every address is answered by its owner alone
// and every speaker counts them all. Close stops the probers.
func NewFaultEnv(ctx context.Context, l *Lab) (*FaultEnv, error) {
	e := &FaultEnv{Lab: l, MACs: map[string]net.HardwareAddr{}}
	for _, n := range l.Plan.Nodes {
		e.Nodes = append(e.Nodes, n.Name)
		mac, err := NodeMAC(l.Plan, n.Name)
		if err != nil {
			return nil, err
		}
		e.MACs[n.Name] = mac
	}
	var err error
	if e.dyn, err = l.dynamic(); err != nil {
		return nil, err
	}
	if e.Addrs, e.Owners, err = OwnedAddrs(faultAddrsFrom, L2PoolNet, e.Nodes); err != nil {
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
	if e.Probers, err = StartProbes(ctx, l.Plan, l.Plan.Client, e.Addrs, DefaultProbeInterval); err != nil {
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

// dynamic is a dynamic client of the lab's API server, unthrottled.
func (l *Lab) dynamic() (dynamic.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return dynamic.NewForConfig(cfg)
}

// createPods creates a web pod on every node, once the default
// ServiceAccount exists.
func (e *FaultEnv) createPods(ctx context.Context) error {
	cs := e.Lab.Clientset
	if err := waitFor(ctx, "the default ServiceAccount", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	}); err != nil {
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
	fam := corev1.IPv4Protocol
	if addr.Is6() {
		fam = corev1.IPv6Protocol
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{"ironlb.io/loadBalancerIPs": addr.String()}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{fam}, Selector: map[string]string{"app": faultApp},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(PodPort)}},
		},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Service %s: %w", name, err)
	}
	if err := waitFor(ctx, name+"'s address "+addr.String(), func() (bool, error) {
		s, err := cs.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		in := s.Status.LoadBalancer.Ingress
		return len(in) == 1 && in[0].IP == addr.String(), fmt.Errorf("status %+v", s.Status)
	}); err != nil {
		return err
	}
	return waitFor(ctx, fmt.Sprintf("%s's ready endpoints to be %v", name, e.Pods), func() (bool, error) {
		list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if err != nil {
			return false, err
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
		return slices.Equal(ready, e.Pods), fmt.Errorf("ready %v", ready)
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
	deadline := time.Now().Add(waitLimit)
	for {
		wrong, err := e.ownersWrong(since, live)
		if err != nil {
			return err
		}
		if len(wrong) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for every address answered by its owner alone, not within %s: %d wrong:\n%s", waitLimit, len(wrong), strings.Join(wrong, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		if hears := e.Lab.SettledSince(pr, since[a]); hears != e.Owners[a] {
			recent := pr.ProbesSince(pr.Len() - 100)
			wrong = append(wrong, fmt.Sprintf("%s: the client hears %q, want %s alone; answers in the last second: %s", a, hears, e.Owners[a], e.Lab.timeline(recent)))
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

// WaitPaths waits until the router holds exactly the next hops want for
// pfx, in BGP and in its kernel's forwarding table.
func (l *Lab) WaitPaths(pfx netip.Prefix, want ...netip.Addr) error {
	want = slices.SortedFunc(slices.Values(want), netip.Addr.Compare)
	deadline := time.Now().Add(waitLimit)
	for {
		bgp, err1 := RouterPaths(l.Plan, pfx)
		fib, err2 := RouterFIB(l.Plan, pfx)
		if err1 == nil && err2 == nil && slices.Equal(bgp, want) && slices.Equal(fib, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the router's paths for %s: BGP %v (%v), forwarding %v (%v), want %v", pfx, bgp, err1, fib, err2, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitSpeakerReady waits until a node's speaker answers /readyz and
// returns when it first did; its error ends with the end of the
// speaker's log.
func (l *Lab) WaitSpeakerReady(node string) (time.Time, error) {
	if err := l.waitReady(node); err != nil {
		return time.Time{}, fmt.Errorf("%w; its log ends:\n%s", err, l.LogTail("speaker-"+node, 15))
	}
	return time.Now(), nil
}

// LogTail returns the last n lines of one of the lab's logs.
func (l *Lab) LogTail(name string, n int) string {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// LogLines returns the lines of one of the lab's logs logged at since or
// later (the speakers' text log format: time=RFC 3339 first) that hold
// any of words.
func (l *Lab) LogLines(name string, since time.Time, words ...string) []string {
	var out []string
	l.logScan(name, since, func(_ time.Time, line string) bool {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) }) {
			out = append(out, line)
		}
		return true
	})
	return out
}

// FirstLogAt returns the time of the first line of one of the lab's
// logs logged at since or later that match accepts; zero when none does.
func (l *Lab) FirstLogAt(name string, since time.Time, match func(string) bool) time.Time {
	var first time.Time
	l.logScan(name, since, func(at time.Time, line string) bool {
		if match(line) {
			first = at
			return false
		}
		return true
	})
	return first
}

// logScan calls f with the lines of a log logged at since or later, in
// order, while it returns true.
func (l *Lab) logScan(name string, since time.Time, f func(at time.Time, line string) bool) {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(since) && !f(at, line) {
			return
		}
	}
}

// Load is the traffic of a fault trial: a stream of requests, each on a
// new connection, to each target, and long-lived connections to each.
type Load struct {
	ns      string
	targets []netip.AddrPort
	streams map[netip.AddrPort]*Stream
	holders map[netip.AddrPort][]*Holder
}

// StartLoad streams requests from namespace ns to every target (one
// every StreamInterval, each given FaultRequestTimeout), waits until
// every stream is answered, and holds FaultHeldPerAddr connections to
// each (see Hold). On error it stops what it started.
func StartLoad(ctx context.Context, ns string, targets ...netip.AddrPort) (*Load, error) {
	ld := &Load{ns: ns, targets: targets, streams: map[netip.AddrPort]*Stream{}, holders: map[netip.AddrPort][]*Holder{}}
	var sts []StreamTarget
	var streams []*Stream
	for _, tg := range targets {
		ld.streams[tg] = StartStream(ctx, ns, tg, StreamInterval, FaultRequestTimeout)
		sts = append(sts, StreamTarget{From: ns, Target: tg})
		streams = append(streams, ld.streams[tg])
	}
	err := waitAnswered(streams, sts, time.Time{}, "at the start")
	if err == nil {
		err = ld.Hold(ctx)
	}
	if err != nil {
		ld.Stop()
		return nil, err
	}
	return ld, nil
}

// Hold opens FaultHeldPerAddr new long-lived connections to every
// target, beside those opened before (a broken one is not dialled again;
// a trial that wants live connections for its next step holds new ones).
func (ld *Load) Hold(ctx context.Context) error {
	for _, tg := range ld.targets {
		h, err := HoldConns(ctx, ld.ns, tg, FaultHeldPerAddr, HoldInterval, FaultHoldTimeout)
		if err != nil {
			return err
		}
		ld.holders[tg] = append(ld.holders[tg], h)
	}
	return nil
}

// Stop ends the traffic and returns what each target's stream and
// connections saw. Safe to call twice.
func (ld *Load) Stop() (map[netip.AddrPort][]Request, map[netip.AddrPort][]HeldConn) {
	reqs, conns := map[netip.AddrPort][]Request{}, map[netip.AddrPort][]HeldConn{}
	for tg, s := range ld.streams {
		reqs[tg] = s.Stop()
	}
	for tg, hs := range ld.holders {
		for _, h := range hs {
			conns[tg] = append(conns[tg], h.Stop()...)
		}
	}
	return reqs, conns
}

// OpenIn returns the long-lived connections open at some moment from
// `from` until `to`, and those of them that broke then.
func OpenIn(conns []HeldConn, from, to time.Time) (open, broken []HeldConn) {
	for _, c := range conns {
		if !c.Opened.Before(to) || (!c.Held() && c.Broken.Before(from)) {
			continue
		}
		open = append(open, c)
		if !c.Held() && c.Broken.Before(to) {
			broken = append(broken, c)
		}
	}
	return open, broken
}

// RestartStep is one speaker's turn in a rolling restart.
type RestartStep struct {
	Node string
	// From is when it was asked to stop, Stopped when it had, Ready when
	// it answered /readyz again, To when every address was back in place
	// and a moment more had passed.
	From, Stopped, Ready, To time.Time
}

// StepAt names the node restarting at t, "" between steps.
func StepAt(steps []RestartStep, t time.Time) string {
	for _, s := range steps {
		if !t.Before(s.From) && t.Before(s.To) {
			return s.Node
		}
	}
	return ""
}

// RollingRestart stops every speaker gracefully and starts it again, one
// at a time, each ready (joined) before the next, as a DaemonSet rollout
// does; after each, back must say that everything is in place again.
// Before every step but the first, ld holds fresh connections, so each
// step has some also to the addresses whose earlier ones broke when their
// own node restarted.
func (e *FaultEnv) RollingRestart(ctx context.Context, ld *Load, back func() error) ([]RestartStep, error) {
	var steps []RestartStep
	for i, node := range e.Nodes {
		if i > 0 {
			if err := ld.Hold(ctx); err != nil {
				return steps, err
			}
		}
		s := RestartStep{Node: node, From: time.Now()}
		if err := e.Lab.StopSpeaker(node); err != nil {
			return steps, err
		}
		s.Stopped = time.Now()
		if err := e.Lab.StartSpeaker(node); err != nil {
			return steps, err
		}
		var err error
		if s.Ready, err = e.Lab.WaitSpeakerReady(node); err != nil {
			return steps, err
		}
		if err := back(); err != nil {
			return steps, fmt.Errorf("after %s restarted: %w", node, err)
		}
		time.Sleep(settleAfter)
		s.To = time.Now()
		steps = append(steps, s)
	}
	return steps, nil
}

// RestartJudgement is what one address saw of a rolling restart.
type RestartJudgement struct {
	Addr  netip.Addr
	Owner string
	// Failed are its requests that failed while another node restarted,
	// between steps, before the first or after the last: none should.
	// OwnFailed failed while its owner restarted, which the issue allows.
	Failed, OwnFailed []Request
	// Conns are its long-lived connections; Broken those that broke while
	// another node restarted or between steps (none should), OwnBroken
	// those that broke while its owner restarted.
	Conns, Broken, OwnBroken []HeldConn
	// Foreign are the answers for it, during each step of a node that does
	// not own it, from that node: there should be none, neither before it
	// is ready (it has not joined) nor after. By node.
	Foreign map[string]Answers
	// Own are its owner's answers for it during the owner's step, once
	// the owner was ready.
	Own Answers
}

// ForeignTotal counts the answers of Foreign.
func (j RestartJudgement) ForeignTotal() (total, solicited int) {
	for _, a := range j.Foreign {
		total += a.Total()
		solicited += a.Solicited
	}
	return total, solicited
}

// JudgeRestart judges one address, owned by owner, through the steps of
// a rolling restart: reqs and conns are its load's record, probes the
// client's prober's record from the first step on, macs the nodes' MACs.
func JudgeRestart(steps []RestartStep, addr netip.Addr, owner string, macs map[string]net.HardwareAddr, reqs []Request, conns []HeldConn, probes []Probe) RestartJudgement {
	j := RestartJudgement{Addr: addr, Owner: owner, Conns: conns, Foreign: map[string]Answers{}}
	for _, r := range reqs {
		if r.Answered() {
			continue
		}
		if StepAt(steps, r.Sent) == owner {
			j.OwnFailed = append(j.OwnFailed, r)
		} else {
			j.Failed = append(j.Failed, r)
		}
	}
	for _, c := range conns {
		switch {
		case c.Held():
		case StepAt(steps, c.Broken) == owner:
			j.OwnBroken = append(j.OwnBroken, c)
		default:
			j.Broken = append(j.Broken, c)
		}
	}
	for _, s := range steps {
		ps := RepliesBetween(probes, s.From, s.To)
		if s.Node == owner {
			j.Own = AnswersFrom(RepliesBetween(ps, s.Ready, s.To), macs[s.Node])
			continue
		}
		j.Foreign[s.Node] = AnswersFrom(ps, macs[s.Node])
	}
	return j
}

// PartitionRecord is when things happened in a partition trial.
type PartitionRecord struct {
	Victim string
	// Since marks the probers at the cut.
	Since map[netip.Addr]int
	// Cut and Heal are when the victim's memberlist traffic was cut and
	// let through again, Settled when everything was back in place, End
	// a moment later.
	Cut, Heal, Settled, End time.Time
}

// PartitionTrial cuts victim's memberlist traffic (and nothing else) for
// hold, heals it, waits until back says everything is in place, and a
// moment more. The cut is healed whatever happens.
func (e *FaultEnv) PartitionTrial(victim string, hold time.Duration, back func() error) (rec PartitionRecord, err error) {
	rec = PartitionRecord{Victim: victim, Since: e.Marks(), Cut: time.Now()}
	if err := e.Lab.PortCut(victim); err != nil {
		return rec, err
	}
	healed := false
	defer func() {
		if !healed {
			err = errors.Join(err, e.Lab.PortHeal(victim))
		}
	}()
	time.Sleep(hold)
	rec.Heal = time.Now()
	healed = true
	if err := e.Lab.PortHeal(victim); err != nil {
		return rec, err
	}
	if err := back(); err != nil {
		return rec, fmt.Errorf("after %s's memberlist port was healed: %w", victim, err)
	}
	rec.Settled = time.Now()
	time.Sleep(2 * settleAfter)
	rec.End = time.Now()
	return rec, nil
}

// PartitionJudgement is what one address saw of a partition trial.
type PartitionJudgement struct {
	Addr  netip.Addr
	Owner string
	// Dual is how long two nodes answered for it in all, in DualSpans,
	// from the cut on; DualAfterHeal how long of it came from the heal
	// on.
	Dual, DualAfterHeal time.Duration
	DualSpans           []Interval
	// SettledHeard names who answered it (node, or MAC when no node has
	// it) from Settled until End, in SettledProbes probes, of which
	// SettledUnanswered got no answer within AnswerWithin. The owner
	// alone should.
	SettledHeard                     []string
	SettledProbes, SettledUnanswered int
}

// JudgePartition judges one address, owned by owner, through a
// partition trial; probes are the client's prober's record from rec's
// mark on, macs the nodes' MACs.
func JudgePartition(rec PartitionRecord, addr netip.Addr, owner string, macs map[string]net.HardwareAddr, probes []Probe) PartitionJudgement {
	j := PartitionJudgement{Addr: addr, Owner: owner}
	j.Dual, j.DualSpans = DualAnswers(probes)
	j.DualAfterHeal, _ = DualAnswers(ProbesBetween(probes, rec.Heal, rec.End))
	settled := ProbesBetween(probes, rec.Settled, rec.End)
	j.SettledProbes, j.SettledUnanswered = len(settled), Unanswered(settled, AnswerWithin)
	for _, p := range settled {
		for _, r := range p.Replies {
			if n := nodeOfMAC(macs, r.MAC); !slices.Contains(j.SettledHeard, n) {
				j.SettledHeard = append(j.SettledHeard, n)
			}
		}
	}
	return j
}

// nodeOfMAC names the node whose MAC mac is, or gives the MAC.
func nodeOfMAC(macs map[string]net.HardwareAddr, mac net.HardwareAddr) string {
	for _, n := range slices.Sorted(maps.Keys(macs)) {
		if bytes.Equal(macs[n], mac) {
			return n
		}
	}
	return mac.String()
}

// CableRecord is when things happened in a cable trial.
type CableRecord struct {
	Victim string
	// Since marks the probers a moment before the cable was pulled.
	Since map[netip.Addr]int
	// Down and Up are when the victim's cable was pulled and plugged
	// back in, End when everything was back in place.
	Down, Up, End time.Time
	// LastAlone is when the last reading of the victim's member count
	// that counted fewer than every node was asked for, after Up (zero
	// when none did); Logged the time of its log's first "speakers alive"
	// line counting every node after Up (zero when none). Rejoined is the
	// later of the two: the readings bound the moment it rejoined from
	// below, its log tells the moment itself. Rejoined not after Up
	// means it had rejoined by the time the cable was back.
	LastAlone, Logged, Rejoined time.Time
	// Readings are the victim's member counts as they changed after Up.
	Readings []string
}

// CablePullTrial pulls victim's LAN cable for hold, plugs it back in,
// reads its speaker's member count until it counts every node again,
// then waits until back says everything is in place. The cable is
// plugged back in whatever happens.
func (e *FaultEnv) CablePullTrial(victim string, hold time.Duration, back func() error) (rec CableRecord, err error) {
	rec = CableRecord{Victim: victim, Since: e.Marks()}
	// A moment of the owner answering, so that the record shows its last
	// answers before the cut.
	time.Sleep(200 * time.Millisecond)
	rec.Down = time.Now()
	if err := LinkDown(e.Lab.Plan, victim); err != nil {
		return rec, err
	}
	plugged := false
	defer func() {
		if !plugged {
			err = errors.Join(err, LinkUp(e.Lab.Plan, victim))
		}
	}()
	time.Sleep(hold)
	rec.Up = time.Now()
	plugged = true
	if err := LinkUp(e.Lab.Plan, victim); err != nil {
		return rec, err
	}
	if err := e.readRejoin(&rec); err != nil {
		return rec, err
	}
	rec.Logged = e.Lab.FirstLogAt("speaker-"+victim, rec.Up, func(line string) bool {
		return strings.Contains(line, `msg="speakers alive"`) && strings.Contains(line, fmt.Sprintf(" count=%d ", len(e.Nodes)))
	})
	rec.Rejoined = rec.LastAlone
	if rec.Logged.After(rec.Rejoined) {
		rec.Rejoined = rec.Logged
	}
	if err := back(); err != nil {
		return rec, fmt.Errorf("after %s's cable was plugged back in: %w", victim, err)
	}
	rec.End = time.Now()
	return rec, nil
}

// readRejoin reads the victim's member count until it counts every node.
func (e *FaultEnv) readRejoin(rec *CableRecord) error {
	n := len(e.Nodes)
	last := ""
	deadline := time.Now().Add(waitLimit)
	for {
		at := time.Now()
		m, err := e.Lab.SpeakerMembers(rec.Victim)
		if r := fmt.Sprintf("%d (%v)", m, err); r != last {
			rec.Readings = append(rec.Readings, fmt.Sprintf("+%s: %s", at.Sub(rec.Up).Round(time.Millisecond), r))
			last = r
		}
		switch {
		case err == nil && m >= n:
			return nil
		case err == nil:
			rec.LastAlone = at
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's speaker did not count %d members within %s of the cable coming back: %s", rec.Victim, n, waitLimit, strings.Join(rec.Readings, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RejoinedAfterUp reports whether the victim rejoined only after its
// cable was back, so that there was a time when it must not answer.
func (rec CableRecord) RejoinedAfterUp() bool { return rec.Rejoined.After(rec.Up) }

// CableJudgement is what one address saw of a cable trial.
type CableJudgement struct {
	Addr  netip.Addr
	Owner string
	// Stale are the victim's answers for it after its cable was back and
	// before it had rejoined: there should be none.
	Stale Answers
	// DualAfterUp is how long two nodes answered for it from the cable's
	// return on, in DualSpans.
	DualAfterUp time.Duration
	DualSpans   []Interval
	// For an address the victim owns: StandIns are the other nodes that
	// answered for it while the cable was out, and Failover the handover
	// from the victim to the first of them as the client saw it (its
	// error when there was none).
	StandIns    []string
	Failover    Failover
	FailoverErr error
}

// JudgeCable judges one address, owned by owner, through a cable trial;
// probes are the client's prober's record from rec's mark on, macs the
// nodes' MACs.
func JudgeCable(rec CableRecord, addr netip.Addr, owner string, macs map[string]net.HardwareAddr, probes []Probe) CableJudgement {
	j := CableJudgement{Addr: addr, Owner: owner}
	mac := macs[rec.Victim]
	if rec.RejoinedAfterUp() {
		j.Stale = AnswersFrom(RepliesBetween(probes, rec.Up, rec.Rejoined), mac)
	}
	j.DualAfterUp, j.DualSpans = DualAnswers(ProbesBetween(probes, rec.Up, rec.End))
	if owner != rec.Victim {
		return j
	}
	for _, p := range RepliesBetween(probes, rec.Down, rec.Up) {
		for _, r := range p.Replies {
			if n := nodeOfMAC(macs, r.MAC); n != rec.Victim && !slices.Contains(j.StandIns, n) {
				j.StandIns = append(j.StandIns, n)
			}
		}
	}
	// The handover: up to the probe that got the first answer from
	// another MAC after the cut.
	for i, p := range probes {
		for _, r := range p.Replies {
			if r.At.Before(rec.Down) || bytes.Equal(r.MAC, mac) {
				continue
			}
			j.Failover, j.FailoverErr = AnalyzeFailover(probes[:i+1], mac, r.MAC)
			return j
		}
	}
	j.FailoverErr = fmt.Errorf("no other node answered for %s after %s's cable was pulled", addr, rec.Victim)
	return j
}

// FreezeRecord is when things happened in an API-freeze trial, and what
// the router and the surviving speakers did meanwhile.
type FreezeRecord struct {
	Victim    string
	Survivors []string
	// Since marks the probers at the kill.
	Since map[netip.Addr]int
	// Freeze and Thaw are when the API server was stopped and resumed,
	// Kill when the victim's speaker was killed, Ready when it answered
	// /readyz after being started again after the thaw, End when
	// everything was back in place.
	Freeze, Kill, Thaw, Ready, End time.Time
	// SessionAddrs are the survivors' addresses the router has sessions
	// with; Before, During and After are the router's sessions before the
	// freeze, at its end and once everything was back in place
	// (DuringErr, AfterErr when they could not be read).
	SessionAddrs          []netip.Addr
	Before, During, After map[netip.Addr]RouterSession
	DuringErr, AfterErr   error
	// PathFaults are the readings of the router's paths, twice a second
	// through the freeze (PathReadings of them), that lacked a survivor's
	// path.
	PathFaults   []string
	PathReadings int
	// Liveness names the survivors whose /healthz failed three probes in
	// a row, as a kubelet probes it (every 10 s, 1 s timeout): it would
	// have restarted them. With when and why.
	Liveness map[string]string
	// Replaced names the survivors whose speaker process changed.
	Replaced []string
}

// APIFreezeTrial freezes the API server for hold and, FreezeKillAfter
// into it, kills victim's speaker; through the freeze it reads the
// router's paths for pfx (a BGP address every node advertises) and the
// survivors' liveness. After the thaw it starts the victim's speaker
// again and waits until back says everything is in place. The API server
// is thawed whatever happens.
func (e *FaultEnv) APIFreezeTrial(victim string, pfx netip.Prefix, hold time.Duration, back func() error) (rec FreezeRecord, err error) {
	l := e.Lab
	rec = FreezeRecord{Victim: victim, Survivors: e.Others(victim), Liveness: map[string]string{}}
	var hops []netip.Addr
	for _, n := range l.Plan.Nodes {
		if n.Name != victim {
			hops = append(hops, n.Addr.Addr())
			rec.SessionAddrs = append(rec.SessionAddrs, n.Addr.Addr(), n.Addr6.Addr())
		}
	}
	pids := map[string]int{}
	for _, n := range rec.Survivors {
		pids[n] = l.SpeakerPID(n)
	}
	if rec.Before, err = RouterSessions(l.Plan); err != nil {
		return rec, err
	}
	if err := l.FreezeAPIServer(); err != nil {
		return rec, err
	}
	thawed := false
	defer func() {
		if !thawed {
			err = errors.Join(err, l.ThawAPIServer())
		}
	}()
	rec.Freeze = time.Now()
	time.Sleep(FreezeKillAfter)
	rec.Since, rec.Kill = e.Marks(), time.Now()
	if err := l.KillSpeaker(victim); err != nil {
		return rec, err
	}
	e.watchFrozen(&rec, pfx, hops, hold)
	rec.During, rec.DuringErr = RouterSessions(l.Plan)
	thawed = true
	if err := l.ThawAPIServer(); err != nil {
		return rec, err
	}
	rec.Thaw = time.Now()
	if err := l.StartSpeaker(victim); err != nil {
		return rec, err
	}
	if rec.Ready, err = l.WaitSpeakerReady(victim); err != nil {
		return rec, err
	}
	if err := back(); err != nil {
		return rec, fmt.Errorf("after the thaw: %w", err)
	}
	rec.End = time.Now()
	for _, n := range rec.Survivors {
		if l.SpeakerPID(n) != pids[n] {
			rec.Replaced = append(rec.Replaced, n)
		}
	}
	rec.After, rec.AfterErr = RouterSessions(l.Plan)
	return rec, nil
}

// watchFrozen reads, until hold has passed since the freeze, the
// router's paths for pfx twice a second, and the survivors' liveness as
// a kubelet would probe it (every 10 s, 1 s timeout, restarted after
// three failures in a row).
func (e *FaultEnv) watchFrozen(rec *FreezeRecord, pfx netip.Prefix, hops []netip.Addr, hold time.Duration) {
	l := e.Lab
	failedInRow := map[string]int{}
	nextLiveness := time.Now()
	for time.Since(rec.Freeze) < hold {
		got, err := RouterPaths(l.Plan, pfx)
		rec.PathReadings++
		missing := slices.DeleteFunc(slices.Clone(hops), func(a netip.Addr) bool { return slices.Contains(got, a) })
		if err != nil || len(missing) > 0 {
			rec.PathFaults = append(rec.PathFaults, fmt.Sprintf("+%s: paths %v (%v), missing %v", time.Since(rec.Freeze).Round(time.Millisecond), got, err, missing))
		}
		if time.Now().After(nextLiveness) {
			nextLiveness = nextLiveness.Add(10 * time.Second)
			for _, n := range rec.Survivors {
				ns, url, err := l.speakerProbe(n, "/healthz")
				if err == nil {
					_, err = HTTPGetFrom(ns, url, time.Second)
				}
				if err == nil {
					failedInRow[n] = 0
					continue
				}
				if failedInRow[n]++; failedInRow[n] >= 3 && rec.Liveness[n] == "" {
					rec.Liveness[n] = fmt.Sprintf("+%s: %v", time.Since(rec.Freeze).Round(time.Millisecond), err)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// FirstAnswerAfter returns the first solicited answer read after `after`
// from another MAC than not.
func FirstAnswerAfter(probes []Probe, not net.HardwareAddr, after time.Time) (Reply, bool) {
	var first Reply
	found := false
	for _, p := range probes {
		for _, r := range p.Replies {
			if r.Solicited && !bytes.Equal(r.MAC, not) && r.At.After(after) && (!found || r.At.Before(first.At)) {
				first, found = r, true
			}
		}
	}
	return first, found
}

// SessionsDropped returns the addresses, of addrs, whose session with
// the router went down between the readings before and after (it
// dropped, however briefly, or is not established).
func SessionsDropped(before, after map[netip.Addr]RouterSession, addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if after[a].Dropped != before[a].Dropped || after[a].State != "Established" {
			out = append(out, a)
		}
	}
	return out
}

// ApplyExample creates the lab's example configuration. With a
// password, the router's sessions with every node ask for it first, a
// Secret holds it and every BGPPeer refers to that Secret; it then waits
// until every session is established.
func (l *Lab) ApplyExample(ctx context.Context, password string) error {
	objs, err := ExampleObjects()
	if err != nil {
		return err
	}
	if password != "" {
		if err := l.passwordPeers(ctx, objs, password); err != nil {
			return err
		}
	}
	dyn, err := l.dynamic()
	if err != nil {
		return err
	}
	for _, o := range objs {
		gvr := schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: strings.ToLower(o.GetKind()) + "s"}
		if _, err := dyn.Resource(gvr).Create(ctx, o, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	if password == "" {
		return nil
	}
	var addrs []netip.Addr
	for _, n := range l.Plan.Nodes {
		addrs = append(addrs, n.Addr.Addr(), n.Addr6.Addr())
	}
	return waitFor(ctx, "every session with the router established, with its password", func() (bool, error) {
		ss, err := RouterSessions(l.Plan)
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if ss[a].State != "Established" {
				return false, fmt.Errorf("sessions %v", ss)
			}
		}
		return true, nil
	})
}

// passwordPeers sets the router's password, creates its Secret and
// points every BGPPeer of objs at it.
func (l *Lab) passwordPeers(ctx context.Context, objs []*unstructured.Unstructured, password string) error {
	if err := RouterPassword(l.Plan, password); err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ChartNamespace, Name: "lab-bgp-password"}, Data: map[string][]byte{"password": []byte(password)}}
	if _, err := l.Clientset.CoreV1().Secrets(secret.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	peers := 0
	for _, o := range objs {
		if o.GetKind() != "BGPPeer" {
			continue
		}
		ref := map[string]any{"name": secret.Name, "namespace": secret.Namespace, "key": "password"}
		if err := unstructured.SetNestedMap(o.Object, ref, "spec", "passwordSecretRef"); err != nil {
			return err
		}
		peers++
	}
	if peers == 0 {
		return errors.New("the example configuration has no BGPPeer to give a password")
	}
	return nil
}

// NewMemberlistKey returns a fresh memberlist key, as the Secret holds
// it (32 random bytes, base64).
func NewMemberlistKey() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// MemberlistKey reads the memberlist key the speakers send with from
// their Secret (see MemberlistSecret).
func (l *Lab) MemberlistKey(ctx context.Context) (string, error) {
	ns, name, err := l.MemberlistSecret()
	if err != nil {
		return "", err
	}
	s, err := l.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(s.Data["key"])), nil
}

// SetMemberlistKeys writes key, and the secondary keys, into the
// speakers' Secret. A speaker reads it only when it starts.
func (l *Lab) SetMemberlistKeys(ctx context.Context, key string, secondary ...string) error {
	ns, name, err := l.MemberlistSecret()
	if err != nil {
		return err
	}
	s, err := l.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.Data = map[string][]byte{"key": []byte(key)}
	if len(secondary) > 0 {
		s.Data["secondaryKeys"] = []byte(strings.Join(secondary, "\n"))
	}
	if _, err := l.Clientset.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", ns, name, err)
	}
	return nil
}

// RestartSpeaker stops a node's speaker gracefully and starts it again.
func (l *Lab) RestartSpeaker(node string) error {
	if err := l.StopSpeaker(node); err != nil {
		return err
	}
	return l.StartSpeaker(node)
}

// AllCount waits, at most limit, until every speaker counts every node
// as a member, and reports whether they did.
func (e *FaultEnv) AllCount(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ok := 0
		for _, node := range e.Nodes {
			if m, err := e.Lab.SpeakerMembers(node); err == nil && m == len(e.Nodes) {
				ok++
			}
		}
		if ok == len(e.Nodes) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// KeyControlRecord is what the negative control of a key rotation saw.
type KeyControlRecord struct {
	Victim string
	// At is when the victim had been restarted with a key the others do
	// not know.
	At time.Time
	// Joined says whether another speaker counted every node as a member
	// meanwhile (2 s after At or later, which leaves the others the time
	// to hear that the old speaker left): it should not.
	Joined bool
	// Seen are the distinct readings "node count" since At.
	Seen []string
}

// keyControlFor is how long the negative control watches.
const keyControlFor = 15 * time.Second

// KeyControl is the negative control of a key rotation: it restarts
// victim with a fresh key alone while the others know only the current
// one, watches w's readings for a while, then restarts it with the
// current key again and waits until every speaker counts every node. A
// lab that could not tell a working rotation from a broken one would
// show Joined.
func (e *FaultEnv) KeyControl(ctx context.Context, w *MemberWatch, victim string) (KeyControlRecord, error) {
	rec := KeyControlRecord{Victim: victim}
	oldKey, err := e.Lab.MemberlistKey(ctx)
	if err != nil {
		return rec, err
	}
	newKey, err := NewMemberlistKey()
	if err != nil {
		return rec, err
	}
	if err := e.Lab.SetMemberlistKeys(ctx, newKey); err != nil {
		return rec, err
	}
	if err := e.Lab.RestartSpeaker(victim); err != nil {
		return rec, err
	}
	rec.At = time.Now()
	time.Sleep(keyControlFor)
	rec.Joined, rec.Seen = KeyControlJoined(w.Samples(), victim, rec.At, len(e.Nodes))
	if err := e.Lab.SetMemberlistKeys(ctx, oldKey); err != nil {
		return rec, err
	}
	if err := e.Lab.RestartSpeaker(victim); err != nil {
		return rec, err
	}
	if _, err := e.Lab.WaitSpeakerReady(victim); err != nil {
		return rec, err
	}
	if !e.AllCount(30 * time.Second) {
		return rec, fmt.Errorf("not every speaker counts %d members after %s was restarted with the old key again: %v", len(e.Nodes), victim, LatestMembers(w.Samples()))
	}
	return rec, nil
}

// KeyControlJoined judges the readings of a negative control: whether a
// speaker other than victim counted n members 2 s after `at` or later,
// and the distinct readings ("node count") since at.
func KeyControlJoined(samples []MemberSample, victim string, at time.Time, n int) (bool, []string) {
	joined := false
	var seen []string
	for _, s := range samples {
		if s.At.Before(at) || s.Err != nil {
			continue
		}
		if s.Node != victim && s.Members >= n && s.At.After(at.Add(2*time.Second)) {
			joined = true
		}
		if r := fmt.Sprintf("%s %d", s.Node, s.Members); !slices.Contains(seen, r) {
			seen = append(seen, r)
		}
	}
	return joined, seen
}

// Rollout is one of the three rollouts of a key rotation.
type Rollout struct {
	Name string
	// From is when the Secret was written, To when every speaker counted
	// every node after the last one restarted.
	From, To time.Time
	// Steps are the restarts, in order.
	Steps []RolloutStep
}

// RolloutStep is one speaker's restart in a rollout: how long after its
// stop it was ready, and every speaker counted every node.
type RolloutStep struct {
	Node           string
	Ready, Counted time.Duration
}

// RotateKey rotates the memberlist key from the current one to a fresh
// one in three rollouts, each restarting the speakers one at a time
// (they read the key's Secret only when they start): (a) the current key
// with the new one secondary, accepted but not sent with; (b) the new
// key with the old one secondary; (c) the new key alone. After each
// restart every speaker must count every node within 20 s; w's readings
// say, on failure, who counted fewer. MembersBelow(w's readings from the
// first rollout's From on, n-1) judges the rotation.
func (e *FaultEnv) RotateKey(ctx context.Context, w *MemberWatch) ([]Rollout, error) {
	oldKey, err := e.Lab.MemberlistKey(ctx)
	if err != nil {
		return nil, err
	}
	newKey, err := NewMemberlistKey()
	if err != nil {
		return nil, err
	}
	n := len(e.Nodes)
	start := time.Now()
	var out []Rollout
	for _, ro := range []struct {
		name      string
		key       string
		secondary []string
	}{
		{"(a) old key, new secondary", oldKey, []string{newKey}},
		{"(b) new key, old secondary", newKey, []string{oldKey}},
		{"(c) new key alone", newKey, nil},
	} {
		r := Rollout{Name: ro.name, From: time.Now()}
		if err := e.Lab.SetMemberlistKeys(ctx, ro.key, ro.secondary...); err != nil {
			return out, err
		}
		for _, node := range e.Nodes {
			t0 := time.Now()
			if err := e.Lab.RestartSpeaker(node); err != nil {
				return out, err
			}
			ready, err := e.Lab.WaitSpeakerReady(node)
			if err != nil {
				return out, fmt.Errorf("rollout %s: %w", ro.name, err)
			}
			if !e.AllCount(20 * time.Second) {
				since := SamplesSince(w.Samples(), start)
				return out, fmt.Errorf("rollout %s, %s restarted: not every speaker counts %d members within 20 s; readings below %d since the rotation began: %s; the latest by node: %v",
					ro.name, node, n, n-1, DescribeSamples(MembersBelow(since, n-1), start), LatestMembers(since))
			}
			r.Steps = append(r.Steps, RolloutStep{Node: node, Ready: ready.Sub(t0), Counted: time.Since(t0)})
		}
		r.To = time.Now()
		out = append(out, r)
	}
	return out, nil
}

// SamplesSince keeps the readings asked for at t or later.
func SamplesSince(samples []MemberSample, t time.Time) []MemberSample {
	var out []MemberSample
	for _, s := range samples {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// DescribeSamples lists readings relative to t0, at most 12.
func DescribeSamples(ss []MemberSample, t0 time.Time) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("+%s %s counted %d", s.At.Sub(t0).Round(time.Millisecond), s.Node, s.Members))
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("and %d more", len(out)-12))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// LowestMembers returns the lowest member count among the readings of
// joined speakers (see MembersBelow for the readings that tell nothing),
// and whether there was one.
func LowestMembers(samples []MemberSample) (int, bool) {
	lowest, found := 0, false
	for _, s := range samples {
		if s.Err == nil && s.Members > 0 && (!found || s.Members < lowest) {
			lowest, found = s.Members, true
		}
	}
	return lowest, found
}
