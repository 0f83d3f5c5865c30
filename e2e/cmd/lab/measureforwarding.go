package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/e2e/lab"
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
	cs := l.Clientset
	p := l.Plan
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Since(began).Round(time.Second)}, args...)...)
	}

	// The Services: each fault hits the node that announces (layer 2)
	// the Service's address, or one node advertising it (BGP). The
	// lab has no node lifecycle controller, so a pod on a node whose
	// cable is pulled would stay a ready endpoint and lose its share of
	// the connections for as long as the cable is out; each Service's
	// pods are on the other nodes, so that what is measured is ironlb's
	// part. Local is for the throughput comparison.
	l2 := []netip.Addr{netip.MustParseAddr("203.0.113.70"), netip.MustParseAddr("2001:db8:ff64::70")}
	bgp := []netip.Addr{netip.MustParseAddr("203.0.113.100"), netip.MustParseAddr("2001:db8:ff66::100")}
	local := []netip.Addr{netip.MustParseAddr("203.0.113.71"), netip.MustParseAddr("2001:db8:ff64::71")}
	svcName := func(kind string, a netip.Addr) string { return kind + family(a)[3:] } // fo4, fo6, …
	for i := range 2 {
		if err := errors.Join(
			lbService(ctx, cs, svcName("fo", l2[i]), l2[i], map[string]string{"fo" + family(l2[i])[3:]: "yes"}),
			lbService(ctx, cs, svcName("bgp", bgp[i]), bgp[i], map[string]string{"bgp": "yes"}),
			lbServiceWith(ctx, cs, svcName("local", local[i]), local[i], map[string]string{"app": "local"}, func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			})); err != nil {
			return err
		}
	}
	owner := map[netip.Addr]string{}
	for _, a := range l2 {
		if owner[a], err = l.Owner(ctx, a); err != nil {
			return err
		}
	}
	bgpNode := owner[l2[0]]
	logf("layer 2 owners: %s %s, %s %s; BGP faults on %s", l2[0], owner[l2[0]], l2[1], owner[l2[1]], bgpNode)
	localNode := p.Nodes[0].Name
	pods := map[string]map[string]string{} // by node: labels
	for _, n := range p.Nodes {
		labels := map[string]string{}
		for _, a := range l2 {
			if n.Name != owner[a] {
				labels["fo"+family(a)[3:]] = "yes"
			}
		}
		if n.Name != bgpNode {
			labels["bgp"] = "yes"
		}
		pods[n.Name] = labels
	}
	if err := createPod(ctx, cs, "local", localNode, map[string]string{"app": "local"}); err != nil {
		return err
	}
	for node, labels := range pods {
		if err := createPod(ctx, cs, "fo-"+node, node, labels); err != nil {
			return err
		}
	}
	for i := range 2 {
		for svc, n := range map[string]int{svcName("fo", l2[i]): 2, svcName("bgp", bgp[i]): 2, svcName("local", local[i]): 1} {
			if err := readyEndpoints(ctx, cs, svc, n); err != nil {
				return err
			}
		}
	}
	podIP := func(pod string, fam netip.Addr) (netip.Addr, error) {
		po, err := cs.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
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

	// Throughput and connection rate: through the address and straight
	// to the pod.
	var tpRows []string
	for i := range 2 {
		fam := family(l2[i])
		localIP, err := podIP("local", l2[i])
		if err != nil {
			return err
		}
		var remotePod string
		for _, n := range p.Nodes {
			if n.Name != owner[l2[i]] {
				remotePod = "fo-" + n.Name
				break
			}
		}
		remoteIP, err := podIP(remotePod, l2[i])
		if err != nil {
			return err
		}
		for _, c := range []struct {
			direct, lb       netip.AddrPort
			directWhat, what string
		}{
			{netip.AddrPortFrom(localIP, lab.PodPort), netip.AddrPortFrom(local[i], 80),
				fmt.Sprintf("client → pod on %s", localNode),
				fmt.Sprintf("client → %s (Local) → %s → pod on it", local[i], localNode)},
			{netip.AddrPortFrom(remoteIP, lab.PodPort), netip.AddrPortFrom(l2[i], 80),
				fmt.Sprintf("client → pod on %s", remotePod[3:]),
				fmt.Sprintf("client → %s (Cluster) → %s → pod on another node, masqueraded", l2[i], owner[l2[i]])},
		} {
			d, lb, err := throughput(p.Client.NetNS, c.direct, c.lb)
			if err != nil {
				return err
			}
			tpRows = append(tpRows,
				fmt.Sprintf("| %s | %s | %.0f | | %.0f | | %d |", fam, c.directWhat, d.mbps, d.rate, d.failed),
				fmt.Sprintf("| %s | %s | %.0f | %.2f | %.0f | %.2f | %d |", fam, c.what, lb.mbps, lb.mbps/d.mbps, lb.rate, lb.rate/d.rate, lb.failed))
			logf("%s\n%s", tpRows[len(tpRows)-2], tpRows[len(tpRows)-1])
		}
	}

	// Failover: layer 2, one family at a time, from the LAN client.
	var foRows []string
	stale := map[string]int{} // by fault and family: trials whose client still sent to another node
	row := func(path string, fault lab.Fault, fam string, ts []lab.StreamTrial, node string) {
		foRows = append(foRows, streamRow(path, fault, fam, ts, node))
		logf("%s", foRows[len(foRows)-1])
	}
	for _, a := range l2 {
		target := []lab.StreamTarget{{From: p.Client.NetNS, Target: netip.AddrPortFrom(a, 80)}}
		back := func() error { return l.OwnerIs(ctx, a, owner[a]) }
		for _, fault := range []lab.Fault{lab.FaultKill, lab.FaultStop, lab.FaultLink} {
			var ts []lab.StreamTrial
			for range trials {
				// Each trial starts with the client resolving the
				// address anew: a restore can leave its entry on the
				// node that stood in (see the report).
				if via, err := l.NeighborNode(p.Client.NetNS, a); err == nil && via != "" && via != owner[a] {
					stale[fmt.Sprintf("%s %s", fault, family(a))]++
				}
				if err := lab.FlushNeighbor(p.Client.NetNS, a); err != nil {
					return err
				}
				tr, err := l.StreamFaultTrial(ctx, target, owner[a], fault, faultHold, back)
				if err != nil {
					return fmt.Errorf("layer 2 %s %s: %w", family(a), fault, err)
				}
				ts = append(ts, tr...)
			}
			row("layer 2, LAN client", fault, family(a), ts, owner[a])
		}
	}

	// Failover: BGP, both families at once, from the remote client. Hold
	// time 3 s, so that a pulled cable costs seconds, not nine.
	dyn, err := dynamicFor(l)
	if err != nil {
		return err
	}
	for _, peer := range []string{"lab-router", "lab-router-v6"} {
		if _, err := dyn.Resource(bgpPeers).Patch(ctx, peer, types.MergePatchType, []byte(`{"spec":{"holdTime":"3s","keepaliveTime":"1s"}}`), metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	allPaths := func() error {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var missing []string
			for _, a := range bgp {
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
			if len(missing) == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the router forwards %s", strings.Join(missing, ", "))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // the sessions restart with the new timers
	if err := allPaths(); err != nil {
		return err
	}
	var targets []lab.StreamTarget
	for _, a := range bgp {
		targets = append(targets, lab.StreamTarget{From: p.Remote.NetNS, Target: netip.AddrPortFrom(a, 80)})
	}
	for _, fault := range []lab.Fault{lab.FaultKill, lab.FaultStop, lab.FaultLink} {
		byFam := map[string][]lab.StreamTrial{}
		for range trials {
			tr, err := l.StreamFaultTrial(ctx, targets, bgpNode, fault, faultHold, allPaths)
			if err != nil {
				return fmt.Errorf("BGP %s: %w", fault, err)
			}
			for _, t := range tr {
				byFam[family(t.Target.Addr())] = append(byFam[family(t.Target.Addr())], t)
			}
		}
		for _, fam := range slices.Sorted(maps.Keys(byFam)) {
			row("BGP, remote client through FRR (ECMP over 3 nodes)", fault, fam, byFam[fam], "")
		}
	}
	return writeForwardingReport(out, trials, time.Since(began), owner, l2, bgpNode, tpRows, foRows, stale)
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// createPod creates a lab pod bound to node, with labels.
func createPod(ctx context.Context, cs kubernetes.Interface, name, node string, labels map[string]string) error {
	if err := wait(ctx, "the default ServiceAccount", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
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
	return wait(ctx, fmt.Sprintf("%d ready endpoints of %s", n, svc), func() bool {
		list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + svc})
		ready := 0
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready++
				}
			}
		}
		return err == nil && ready == n
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
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := lab.Ask(ns, target, 2*time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return tp{}, tp{}, fmt.Errorf("no answer from %s: %w", target, err)
			}
			time.Sleep(100 * time.Millisecond)
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
			r, _, err := lab.Bulk(ns, target, bulkBytes, time.Minute)
			if err != nil {
				return tp{}, tp{}, err
			}
			bulk[i] = append(bulk[i], r/1e6)
		}
		for _, i := range order {
			target := []netip.AddrPort{a, b}[i]
			r, failed, err := lab.ConnRate(ns, target, rateConns, rateFor)
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
	median := func(xs []float64) float64 {
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	return tp{median(bulk[0]), median(rate[0]), failures[0]}, tp{median(bulk[1]), median(rate[1]), failures[1]}, nil
}

// streamRow sums up the trials of one fault as a table row. node, when
// not empty, is the node the client's traffic should go to before the
// fault; trials where it went elsewhere are noted.
func streamRow(path string, fault lab.Fault, fam string, ts []lab.StreamTrial, node string) string {
	var sent, lost, gaps, last, rlost, rgaps []time.Duration // counts as Durations, for lab.Percentiles
	errs := map[string]int{}
	for _, t := range ts {
		sent = append(sent, time.Duration(t.Fault.Sent))
		lost = append(lost, time.Duration(t.Fault.Lost))
		gaps = append(gaps, t.Fault.LongestGap)
		last = append(last, t.Fault.LastLost)
		rlost = append(rlost, time.Duration(t.Restore.Lost))
		rgaps = append(rgaps, t.Restore.LongestGap)
		for k, n := range t.Fault.Errors {
			errs[k] += n
		}
		for k, n := range t.Restore.Errors {
			errs[k] += n
		}
	}
	count := func(ds []time.Duration) string {
		p50, _, hi := lab.Percentiles(ds)
		return fmt.Sprintf("%d / %d", p50, hi)
	}
	gap := func(ds []time.Duration) string {
		p50, _, hi := lab.Percentiles(ds)
		return fmt.Sprintf("%s / %s", ms(p50), ms(hi))
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, errs[k]))
	}
	elsewhere := 0
	for _, t := range ts {
		if node != "" && t.Via != node {
			elsewhere++
		}
	}
	if elsewhere > 0 {
		kinds = append(kinds, fmt.Sprintf("(in %d trials the client sent to another node than %s at the fault)", elsewhere, node))
	}
	p50sent, _, _ := lab.Percentiles(sent)
	return fmt.Sprintf("| %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s |", path, fault, fam, len(ts), p50sent,
		count(lost), gap(gaps), gap(last), count(rlost), gap(rgaps), strings.Join(kinds, ", "))
}

func writeForwardingReport(out string, trials int, took time.Duration, owner map[netip.Addr]string, l2 []netip.Addr, bgpNode string, tpRows, foRows []string, stale map[string]int) error {
	w, closeOut, err := openReport(out)
	if err != nil {
		return err
	}
	defer closeOut()
	host, _ := os.Hostname()
	fmt.Fprintf(w, `# Forwarding, measured on the lab

Regenerate with `+"`make lab-forwarding`"+` (root; this run took %s). Written %s on %s (%s/%s, %d CPUs).

Three nodes, each speaker with the default forwarding mode (endpoints:
nftables DNAT to the Service's ready endpoints). The lab's pods are
goroutines of the lab's own process, each serving HTTP in a network
namespace of its own on its node's pod bridge; the client on the LAN, the
remote client behind the FRR router and the pods' servers all share the
machine's CPUs with the nodes' kernels.

## Throughput and connection rate

From the client on the LAN: straight to a pod's address (routed by the
pod's node), and through a LoadBalancer address to the same pod (Local: the
announcing node is the pod's and DNATs to it; Cluster: the announcing node
DNATs to a pod on another node and masquerades, so the traffic crosses the
LAN twice). Bulk: a download of %d MiB on a new connection. Connections:
HTTP requests, each on a new connection, %d under way at once for %s; the
client closes each connection with a reset once answered, as load
generators do, so that neither end keeps TIME_WAIT state (otherwise the
client's ports come round again while the server still holds them in
TIME_WAIT, and the rate falls the longer the measurement runs). Direct
and through the address take turns, each going first in every other
round, %d rounds; each figure is the median of its rounds. Ratios are to the direct row above. A request that
failed in the connection rounds is counted, not retried (the first
failure's error is printed while the measurement runs).

| family | path | bulk MB/s | ratio | requests (new connections) / s | ratio | requests failed |
|---|---|---|---|---|---|---|
%s

## Failover with real traffic

A stream of HTTP requests, each on a new connection, one every %s, each
given up after %s (a lost SYN is retried only after a second), while the
node serving the address suffers a fault; after the fault has lasted at
least %s and the stream has been answered again for %d requests in a
row, the node is restored, and the stream runs until the node is back in
its place (layer 2: it announces the address again; BGP: the router has
its path again) and at least %s more, again until %d requests in a row
are answered. "Lost after the fault" counts the requests sent from the
fault until the restore that got no answer; "after the restore" those
sent from the restore on. The longest gap is the longest time between
two answered requests with only lost ones between them (%s when none
was lost); where only some connections are lost (one ECMP path of
three), "last loss" says better how long the fault cost requests: the
time from the fault to the sending of the last lost request (0 when none
was lost). p50 / max over the trials; %d trials per row.

Errors: "timeout" is a request sent where nothing answered (a node
unreachable, a path the router still uses); "reset" is a connection reset
after it had begun, which is what a client sees when its neighbour entry
for a layer 2 address moves to another node while a connection is under
way: the connection's conntrack state lives on the node that saw its SYN,
so the other node DNATs the rest of it afresh, to a pod that knows
nothing of it. Every node holds the rules for every address, so the
node a client wrongly sends to still forwards its new connections.

Faults: speaker SIGKILL (then started again), speaker SIGTERM (it leaves
the memberlist cluster, withdraws its BGP routes, then exits; started
again after the hold), node link down (the node's port on the LAN bridge
goes down; then up again). The speaker's forwarding rules stay in the
node's kernel when it stops, so a node whose speaker is gone still
forwards what reaches it.

Layer 2: the LAN client asks for %s (owned by %s) and %s (owned by %s).
The Service's pods run on the two other nodes: the lab has no node
lifecycle controller, so a pod on a node whose cable is pulled would stay
a ready endpoint and lose its share of the connections for as long as the
cable is out, which is not ironlb's part. BGP: the remote client asks for
203.0.113.100 and 2001:db8:ff66::100 through the FRR router, which spreads
connections over the three nodes by ECMP (hashing ports too); faults hit
%s, the pods run on the two others; hold time 3 s, keepalive 1 s.

| path | fault | family | trials | requests sent after the fault (p50) | lost after the fault | longest gap | last loss | lost after the restore | longest gap after the restore | lost requests by error |
|---|---|---|---|---|---|---|---|---|---|---|
%s
`, took.Round(time.Second), time.Now().UTC().Format("2006-01-02"), host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
		bulkBytes>>20, rateConns, rateFor, tpRounds, strings.Join(tpRows, "\n"),
		ms(lab.StreamInterval), ms(lab.StreamTimeout), faultHold, lab.AnsweredRun, faultHold, lab.AnsweredRun, ms(lab.StreamInterval), trials,
		l2[0], owner[l2[0]], l2[1], owner[l2[1]], bgpNode, strings.Join(foRows, "\n"))
	var st []string
	for _, k := range slices.Sorted(maps.Keys(stale)) {
		st = append(st, fmt.Sprintf("%s: %d of %d", k, stale[k], trials))
	}
	if len(st) == 0 {
		st = append(st, "none")
	}
	fmt.Fprintf(w, `
Before every layer 2 trial the client's neighbour entry for the address
is flushed, so that the trial starts with the client sending to the
owner. Before the flush, the entry still pointed at another node than the
owner (left so by the previous trial's restore, although the owner had
answered the prober alone since) in: %s. Traffic still flowed then,
through that node's rules.
`, strings.Join(st, "; "))
	return nil
}
