package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// Throughput measurement sizes.
const (
	tpRounds  = 5 // each measured this often, the median taken
	bulkBytes = 1 << 30
	rateFor   = 1500 * time.Millisecond
	rateConns = 8 // requests under way at once
	// faultHold is how long a fault lasts at least, and how long the
	// streams run at least after the node is restored.
	faultHold = 2 * time.Second
)

// measureForwarding brings up a three-node lab and measures ironlb's
// forwarding with real HTTP traffic: streams of requests to a Service's
// address while the node announcing it (layer 2) or one of the nodes
// advertising it (BGP) suffers a fault, and bulk transfers and
// connection rates through LoadBalancer addresses against the same pods
// reached directly. It writes a Markdown report to out.
func measureForwarding(name, dir string, b lab.Binaries, trials int, out string) error {
	ctx := context.Background()
	began := time.Now()
	l, err := startMeasured(ctx, name, dir, b)
	if err != nil {
		return err
	}
	defer l.Close()
	r := &forwardingRun{
		ctx: ctx, l: l, trials: trials,
		logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Since(began).Round(time.Second)}, args...)...)
		},
		l2:    []netip.Addr{lab.PoolAddr(lab.L2PoolNet, 70), lab.PoolAddr(lab.L2PoolNet6, 0x70)},
		bgp:   []netip.Addr{lab.PoolAddr(lab.BGPPoolNet, 100), lab.PoolAddr(lab.BGPPoolNet6, 0x100)},
		local: []netip.Addr{lab.PoolAddr(lab.L2PoolNet, 71), lab.PoolAddr(lab.L2PoolNet6, 0x71)},
		owner: map[netip.Addr]string{},
		stale: map[string]int{},
	}
	if err := r.createServices(); err != nil {
		return err
	}
	if err := r.placePods(); err != nil {
		return err
	}
	if err := r.measureThroughput(); err != nil {
		return err
	}
	if err := r.layer2Failover(); err != nil {
		return err
	}
	if err := r.bgpFailover(); err != nil {
		return err
	}
	return writeForwardingReport(out, trials, time.Since(began), r.owner, r.l2, r.bgp, r.bgpNode, r.tpRows, r.foRows, r.stale)
}

// forwardingRun is one run of measureForwarding: the lab, its Services'
// addresses (both families of each) and their nodes, and the report's
// rows as they are measured.
type forwardingRun struct {
	ctx    context.Context
	l      *lab.Lab
	trials int
	logf   func(format string, args ...any)

	// The Services: each fault hits the node that announces (layer 2)
	// the Service's address, or one node advertising it (BGP). The
	// lab has no node lifecycle controller, so a pod on a node whose
	// cable is pulled would stay a ready endpoint and lose its share of
	// the connections for as long as the cable is out; each Service's
	// pods are on the other nodes, so that what is measured is ironlb's
	// part. Local is for the throughput comparison.
	l2, bgp, local []netip.Addr
	// owner is the node announcing each layer 2 address; the BGP faults
	// hit bgpNode; the Local Service's pod is on localNode.
	owner              map[netip.Addr]string
	bgpNode, localNode string

	tpRows, foRows []string
	// stale counts, by fault and family, the trials whose client still
	// sent to another node.
	stale map[string]int
}

// svcName names a Service of a kind and family: fo4, fo6, …
func svcName(kind string, a netip.Addr) string { return kind + family(a)[3:] }

// createServices creates the Services and finds the layer 2 owners.
func (r *forwardingRun) createServices() error {
	cs := r.l.Clientset
	for i := range 2 {
		if err := errors.Join(
			lbService(r.ctx, cs, svcName("fo", r.l2[i]), r.l2[i], map[string]string{"fo" + family(r.l2[i])[3:]: "yes"}, nil),
			lbService(r.ctx, cs, svcName("bgp", r.bgp[i]), r.bgp[i], map[string]string{"bgp": "yes"}, nil),
			lbService(r.ctx, cs, svcName("local", r.local[i]), r.local[i], map[string]string{"app": "local"}, func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			})); err != nil {
			return err
		}
	}
	for _, a := range r.l2 {
		var err error
		if r.owner[a], err = measure.Owner(r.ctx, r.l, a); err != nil {
			return err
		}
	}
	r.bgpNode = r.owner[r.l2[0]]
	r.logf("layer 2 owners: %s %s, %s %s; BGP faults on %s", r.l2[0], r.owner[r.l2[0]], r.l2[1], r.owner[r.l2[1]], r.bgpNode)
	return nil
}

// placePods creates the Services' pods, each on the nodes its Service's
// faults do not hit, and waits until every Service has its endpoints.
func (r *forwardingRun) placePods() error {
	cs := r.l.Clientset
	r.localNode = r.l.Plan.Nodes[0].Name
	pods := map[string]map[string]string{} // by node: labels
	for _, n := range r.l.Plan.Nodes {
		labels := map[string]string{}
		for _, a := range r.l2 {
			if n.Name != r.owner[a] {
				labels["fo"+family(a)[3:]] = "yes"
			}
		}
		if n.Name != r.bgpNode {
			labels["bgp"] = "yes"
		}
		pods[n.Name] = labels
	}
	if err := createPod(r.ctx, cs, "local", r.localNode, map[string]string{"app": "local"}); err != nil {
		return err
	}
	for node, labels := range pods {
		if err := createPod(r.ctx, cs, "fo-"+node, node, labels); err != nil {
			return err
		}
	}
	for i := range 2 {
		for svc, n := range map[string]int{svcName("fo", r.l2[i]): 2, svcName("bgp", r.bgp[i]): 2, svcName("local", r.local[i]): 1} {
			if err := readyEndpoints(r.ctx, cs, svc, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// podIP is a pod's address of fam's family.
func (r *forwardingRun) podIP(pod string, fam netip.Addr) (netip.Addr, error) {
	po, err := r.l.Clientset.CoreV1().Pods("default").Get(r.ctx, pod, metav1.GetOptions{})
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range po.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is4() == fam.Is4() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod %s has no %s address: %v", pod, family(fam), po.Status.PodIPs)
}

// measureThroughput measures throughput and connection rate: through the
// address and straight to the pod.
func (r *forwardingRun) measureThroughput() error {
	p := r.l.Plan
	for i := range 2 {
		fam := family(r.l2[i])
		localIP, err := r.podIP("local", r.l2[i])
		if err != nil {
			return err
		}
		var remotePod string
		for _, n := range p.Nodes {
			if n.Name != r.owner[r.l2[i]] {
				remotePod = "fo-" + n.Name
				break
			}
		}
		remoteIP, err := r.podIP(remotePod, r.l2[i])
		if err != nil {
			return err
		}
		for _, c := range []struct {
			direct, lb       netip.AddrPort
			directWhat, what string
		}{
			{netip.AddrPortFrom(localIP, lab.PodPort), netip.AddrPortFrom(r.local[i], 80),
				fmt.Sprintf("client → pod on %s", r.localNode),
				fmt.Sprintf("client → %s (Local) → %s → pod on it", r.local[i], r.localNode)},
			{netip.AddrPortFrom(remoteIP, lab.PodPort), netip.AddrPortFrom(r.l2[i], 80),
				fmt.Sprintf("client → pod on %s", remotePod[3:]),
				fmt.Sprintf("client → %s (Cluster) → %s → pod on another node, masqueraded", r.l2[i], r.owner[r.l2[i]])},
		} {
			d, lb, err := throughput(p.Client.NetNS, c.direct, c.lb)
			if err != nil {
				return err
			}
			r.tpRows = append(r.tpRows,
				fmt.Sprintf("| %s | %s | %.0f | | %.0f | | %d |", fam, c.directWhat, d.mbps, d.rate, d.failed),
				fmt.Sprintf("| %s | %s | %.0f | %.2f | %.0f | %.2f | %d |", fam, c.what, lb.mbps, lb.mbps/d.mbps, lb.rate, lb.rate/d.rate, lb.failed))
			r.logf("%s\n%s", r.tpRows[len(r.tpRows)-2], r.tpRows[len(r.tpRows)-1])
		}
	}
	return nil
}

// row adds the failover row of one fault's trials.
func (r *forwardingRun) row(path string, fault measure.Fault, fam string, ts []measure.StreamTrial, node string) {
	r.foRows = append(r.foRows, measure.StreamRow(path, fault, fam, ts, node))
	r.logf("%s", r.foRows[len(r.foRows)-1])
}

// layer2Failover measures failover in layer 2, one family at a time, from
// the LAN client.
func (r *forwardingRun) layer2Failover() error {
	p := r.l.Plan
	for _, a := range r.l2 {
		target := []measure.StreamTarget{{From: p.Client.NetNS, Target: netip.AddrPortFrom(a, 80)}}
		back := func() error { return measure.OwnerIs(r.ctx, r.l, a, r.owner[a]) }
		for _, fault := range []measure.Fault{measure.FaultKill, measure.FaultStop, measure.FaultLink} {
			var ts []measure.StreamTrial
			for range r.trials {
				// Each trial starts with the client resolving the
				// address anew: a restore can leave its entry on the
				// node that stood in (see the report).
				if via, err := r.l.NeighborNode(p.Client.NetNS, a); err == nil && via != "" && via != r.owner[a] {
					r.stale[fmt.Sprintf("%s %s", fault, family(a))]++
				}
				if err := lab.FlushNeighbor(p.Client.NetNS, a); err != nil {
					return err
				}
				tr, err := measure.StreamFaultTrial(r.ctx, r.l, target, r.owner[a], fault, faultHold, back)
				if err != nil {
					return fmt.Errorf("layer 2 %s %s: %w", family(a), fault, err)
				}
				ts = append(ts, tr...)
			}
			r.row("layer 2, LAN client", fault, family(a), ts, r.owner[a])
		}
	}
	return nil
}

// bgpFailover measures failover in BGP, both families at once, from the
// remote client. Hold time 3 s, so that a pulled cable costs seconds, not
// nine; then the pulled cable again with BFD.
func (r *forwardingRun) bgpFailover() error {
	dyn, err := r.l.Dynamic()
	if err != nil {
		return err
	}
	for _, peer := range []string{"lab-router", "lab-router-v6"} {
		if _, err := dyn.Resource(lab.BGPPeers).Patch(r.ctx, peer, types.MergePatchType, []byte(`{"spec":{"holdTime":"3s","keepaliveTime":"1s"}}`), metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	time.Sleep(time.Second) // the sessions restart with the new timers
	if err := r.allPaths(); err != nil {
		return err
	}
	var targets []measure.StreamTarget
	for _, a := range r.bgp {
		targets = append(targets, measure.StreamTarget{From: r.l.Plan.Remote.NetNS, Target: netip.AddrPortFrom(a, 80)})
	}
	for _, fault := range []measure.Fault{measure.FaultKill, measure.FaultStop, measure.FaultLink} {
		if err := r.bgpTrials("BGP, remote client through FRR (ECMP over 3 nodes)", targets, fault); err != nil {
			return err
		}
	}
	// BFD tells the router of a pulled cable without waiting for the
	// hold time.
	if err := r.l.EnableBFD(r.ctx, lab.ExamplePeers...); err != nil {
		return err
	}
	if err := r.allPaths(); err != nil {
		return err
	}
	return r.bgpTrials("BGP with BFD (200 ms × 3), remote client through FRR", targets, measure.FaultLink)
}

// bgpTrials runs r.trials trials of fault on the BGP node with streams
// to targets, and writes a row per family under what.
func (r *forwardingRun) bgpTrials(what string, targets []measure.StreamTarget, fault measure.Fault) error {
	byFam := map[string][]measure.StreamTrial{}
	for range r.trials {
		tr, err := measure.StreamFaultTrial(r.ctx, r.l, targets, r.bgpNode, fault, faultHold, r.allPaths)
		if err != nil {
			return fmt.Errorf("%s, %s: %w", what, fault, err)
		}
		for _, t := range tr {
			byFam[family(t.Target.Addr())] = append(byFam[family(t.Target.Addr())], t)
		}
	}
	for _, fam := range slices.Sorted(maps.Keys(byFam)) {
		r.row(what, fault, fam, byFam[fam], "")
	}
	return nil
}

// allPaths waits until the router forwards every BGP address to every
// node.
func (r *forwardingRun) allPaths() error {
	p := r.l.Plan
	poll := lab.Poll{Every: 50 * time.Millisecond, Within: 2 * time.Minute}
	return poll.Until(r.ctx, "the router to forward every BGP address to every node", func() (bool, string) {
		var missing []string
		for _, a := range r.bgp {
			var want []netip.Addr
			for _, n := range p.Nodes {
				want = append(want, hostAddr(n.Host, a))
			}
			slices.SortFunc(want, netip.Addr.Compare)
			hops, err := lab.RouterFIB(p, netip.PrefixFrom(a, a.BitLen()))
			if err != nil || !slices.Equal(hops, want) {
				missing = append(missing, fmt.Sprintf("%s via %v (%v)", a, hops, err))
			}
		}
		return len(missing) == 0, "the router forwards " + strings.Join(missing, ", ")
	})
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// createPod creates a lab pod bound to node, with labels.
func createPod(ctx context.Context, cs kubernetes.Interface, name, node string, labels map[string]string) error {
	if err := lab.DefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	no := false
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: "http", Image: "lab-http-server"}}}}
	_, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	return err
}

// readyEndpoints waits until a Service's EndpointSlices list n ready
// endpoints.
func readyEndpoints(ctx context.Context, cs kubernetes.Interface, svc string, n int) error {
	return minutePoll.Until(ctx, fmt.Sprintf("%d ready endpoints of %s", n, svc), func() (bool, string) {
		list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc})
		ready := 0
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready++
				}
			}
		}
		return err == nil && ready == n, lab.Why(err, fmt.Sprintf("%d ready", ready))
	})
}

// tp is a throughput measurement.
type tp struct {
	mbps   float64 // bulk transfer, MB/s
	rate   float64 // answered requests a second, each on a new connection
	failed int     // requests of the connection rate rounds that failed
}

// throughput measures bulk transfers and the connection rate from ns to
// two targets, taking turns (so that whatever else the machine does
// weighs on both alike), and returns the medians of tpRounds rounds. It
// waits for a first answer from each: a Service's endpoints reach the
// speakers' rules a moment after the EndpointSlice.
func throughput(ns string, a, b netip.AddrPort) (tp, tp, error) {
	for _, target := range []netip.AddrPort{a, b} {
		if err := minutePoll.Until(context.Background(), "an answer from "+target.String(), func() (bool, string) {
			_, err := traffic.Ask(ns, target, 2*time.Second)
			return err == nil, lab.Why(err, "")
		}); err != nil {
			return tp{}, tp{}, err
		}
	}
	var bulk, rate [2][]float64
	var failures [2]int
	for round := range tpRounds {
		// Each goes first in every other round.
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			target := []netip.AddrPort{a, b}[i]
			r, _, err := traffic.Bulk(ns, target, bulkBytes, time.Minute)
			if err != nil {
				return tp{}, tp{}, err
			}
			bulk[i] = append(bulk[i], r/1e6)
		}
		for _, i := range order {
			target := []netip.AddrPort{a, b}[i]
			r, failed, err := traffic.ConnRate(ns, target, rateConns, rateFor)
			if r == 0 {
				return tp{}, tp{}, err
			}
			if failed > 0 {
				fmt.Fprintf(os.Stderr, "%d requests to %s failed, the first: %v\n", failed, target, err)
			}
			rate[i] = append(rate[i], r)
			failures[i] += failed
		}
	}
	return tp{measure.Median(bulk[0]), measure.Median(rate[0]), failures[0]}, tp{measure.Median(bulk[1]), measure.Median(rate[1]), failures[1]}, nil
}
