package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
)

// pollEvery is how often the router is asked during a measurement; one
// vtysh call takes about as long, so figures are good to a few tens of ms.
const pollEvery = 10 * time.Millisecond

// measureBGP brings up a three-node lab and measures BGP as the lab's FRR
// router sees it: Service created → route with a path per node; speaker
// SIGTERM → its path withdrawn; speaker SIGKILL with a 3 s hold time → its
// path dropped; and 1,000 then 10,000 IPv6 Service addresses → all held
// by the router, with the speakers' memory. It writes a Markdown report.
func measureBGP(name, dir string, b lab.Binaries, trials int, scale []int, out string) error {
	ctx := context.Background()
	l, err := startMeasured(ctx, name, dir, b)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := deployment(ctx, l.Clientset, "m", 3); err != nil {
		return err
	}
	r := &bgpRun{ctx: ctx, l: l, trials: trials}
	for _, n := range l.Plan.Nodes {
		r.all = append(r.all, n.Addr.Addr())
	}
	slices.SortFunc(r.all, netip.Addr.Compare)

	// Service created → a path per node at the router. The first Service
	// also waits for the pods.
	keep := lab.PoolAddr(lab.BGPPoolNet, 100)
	if err := r.create("keep", keep); err != nil {
		return err
	}
	keepPfx := netip.PrefixFrom(keep, 32)
	if _, err := r.pathsAre(keepPfx, r.allPaths); err != nil {
		return err
	}
	if err := r.firstPaths(); err != nil {
		return err
	}
	if err := r.faults(keepPfx); err != nil {
		return err
	}
	scaleRows, err := r.scale(scale)
	if err != nil {
		return err
	}
	return writeBGPReport(out, trials, r.rows, scaleRows, r.cpu)
}

// bgpRun is one run of measureBGP: the lab, the paths the router should
// hold, and the report's rows as they are measured.
type bgpRun struct {
	ctx    context.Context
	l      *lab.Lab
	trials int
	// all are the nodes' addresses, sorted: the next hops of a prefix
	// every node advertises.
	all  []netip.Addr
	rows []string
	// cpu says, per scale row, the CPU time each program used while the
	// Services were created, with the speakers stopped and running.
	cpu []string
}

// row adds a row of durations to the report.
func (r *bgpRun) row(what string, ds []time.Duration, note string) {
	p50, p99, hi := measure.Percentiles(ds)
	r.rows = append(r.rows, fmt.Sprintf("| %s | %d | %s | %s | %s | %s |", what, len(ds), measure.Millis(p50), measure.Millis(p99), measure.Millis(hi), note))
	fmt.Fprintln(os.Stderr, r.rows[len(r.rows)-1])
}

// pathsAre polls the router until pfx's next hops satisfy ok.
func (r *bgpRun) pathsAre(pfx netip.Prefix, ok func([]netip.Addr) bool) (time.Time, error) {
	poll := lab.Poll{Every: pollEvery, Within: 2 * time.Minute}
	var at time.Time
	err := poll.Until(r.ctx, "the router's paths for "+pfx.String(), func() (bool, string) {
		hops, err := lab.RouterPaths(r.l.Plan, pfx)
		at = time.Now()
		return err == nil && ok(hops), fmt.Sprintf("the router holds %v (%v)", hops, err)
	})
	return at, err
}

// allPaths, noPaths and without are conditions on a prefix's next hops
// for pathsAre.
func (r *bgpRun) allPaths(h []netip.Addr) bool { return slices.Equal(h, r.all) }

func noPaths(h []netip.Addr) bool { return len(h) == 0 }

func without(a netip.Addr) func([]netip.Addr) bool {
	return func(h []netip.Addr) bool { return len(h) > 0 && !slices.Contains(h, a) }
}

// create creates a Service of the measurement's pods asking for addr.
func (r *bgpRun) create(name string, addr netip.Addr) error {
	return lbService(r.ctx, r.l.Clientset, name, addr, map[string]string{"app": "m"}, nil)
}

// firstPaths measures, Service by Service, how soon after it is created
// the router holds a path from every node.
func (r *bgpRun) firstPaths() error {
	var first []time.Duration
	for i := range min(r.trials, 20) {
		addr := lab.PoolAddr(lab.BGPPoolNet, 102+i)
		t0 := time.Now()
		if err := r.create(fmt.Sprintf("first-%d", i), addr); err != nil {
			return err
		}
		t1, err := r.pathsAre(netip.PrefixFrom(addr, 32), r.allPaths)
		if err != nil {
			return err
		}
		first = append(first, t1.Sub(t0))
		if err := r.l.Clientset.CoreV1().Services("default").Delete(r.ctx, fmt.Sprintf("first-%d", i), metav1.DeleteOptions{}); err != nil {
			return err
		}
		if _, err := r.pathsAre(netip.PrefixFrom(addr, 32), noPaths); err != nil {
			return err
		}
	}
	r.row("Service created → a path from each of 3 nodes at the router", first, "controller assigns, speakers advertise, FRR selects")
	return nil
}

// faults measures SIGTERM, SIGKILL and a pulled cable: the node's path
// leaves the router. The last two with a hold time of 3 s; the cable
// again with BFD.
func (r *bgpRun) faults(keepPfx netip.Prefix) error {
	term, err := r.fault(keepPfx, "term")
	if err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	r.row("speaker SIGTERM → its path withdrawn at the router", term, "the speaker withdraws before it closes the session")

	patch := []byte(`{"spec":{"holdTime":"3s","keepaliveTime":"1s"}}`)
	dyn, err := r.l.Dynamic()
	if err != nil {
		return err
	}
	if _, err := dyn.Resource(lab.BGPPeers).Patch(r.ctx, "lab-router", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return err
	}
	// The sessions restart with the new timers; wait until they all carry
	// the route again.
	time.Sleep(time.Second)
	if _, err := r.pathsAre(keepPfx, r.allPaths); err != nil {
		return err
	}
	killed, err := r.fault(keepPfx, "kill")
	if err != nil {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	r.row("speaker SIGKILL → its path dropped at the router, hold time 3 s", killed, "the node's kernel closes the dead speaker's TCP connection, so the router drops the session at once")
	cut, err := r.fault(keepPfx, "link")
	if err != nil {
		return fmt.Errorf("link down: %w", err)
	}
	r.row("node's link down → its path dropped at the router, hold time 3 s", cut, "nothing tells the router: it waits for the hold time to run out")
	if err := r.bfdOn(keepPfx); err != nil {
		return err
	}
	cut, err = r.fault(keepPfx, "link")
	if err != nil {
		return fmt.Errorf("link down with BFD: %w", err)
	}
	r.row("node's link down → its path dropped at the router, BFD 200 ms × 3", cut, "the router's BFD session misses three packets and closes the BGP session")
	return nil
}

// bfdOn turns BFD on at both ends of the IPv4 sessions and waits until
// every node's path is back.
func (r *bgpRun) bfdOn(keepPfx netip.Prefix) error {
	if err := r.l.EnableBFD(r.ctx, lab.ExamplePeers[0]); err != nil {
		return err
	}
	_, err := r.pathsAre(keepPfx, r.allPaths)
	return err
}

// fault inflicts f ("kill", "term" or "link") on the nodes in turn and
// returns, per trial, how soon the node's path for keepPfx left the
// router; it restores the node after each.
func (r *bgpRun) fault(keepPfx netip.Prefix, f string) ([]time.Duration, error) {
	l := r.l
	var ds []time.Duration
	for i := range r.trials {
		n := l.Plan.Nodes[i%len(l.Plan.Nodes)]
		t0 := time.Now()
		var stopped sync.WaitGroup
		stopped.Go(func() {
			switch f {
			case "kill":
				_ = l.KillSpeaker(n.Name)
			case "term":
				_ = l.StopSpeaker(n.Name)
			case "link":
				_ = lab.LinkDown(l.Plan, n.Name)
			}
		})
		t1, err := r.pathsAre(keepPfx, without(n.Addr.Addr()))
		stopped.Wait()
		if err != nil {
			return nil, err
		}
		ds = append(ds, t1.Sub(t0))
		if f == "link" {
			err = lab.LinkUp(l.Plan, n.Name)
		} else {
			err = l.StartSpeaker(n.Name)
		}
		if err != nil {
			return nil, err
		}
		if _, err := r.pathsAre(keepPfx, r.allPaths); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// scale measures, for each count of scale in turn, creating IPv6
// Services, each with an endpoint written by hand (the lab's pods have no
// IPv6), up to that count: first with the speakers stopped, a baseline of
// as many Services that are deleted again; then with the speakers running,
// until the router holds them all. It returns a row per count.
func (r *bgpRun) scale(scale []int) ([]string, error) {
	l := r.l
	var scaleRows []string
	have := 0
	for _, n := range scale {
		baseline, watched, err := r.baseline(have, n)
		if err != nil {
			return nil, err
		}
		t0, cpu0, req0 := time.Now(), cpuTimes(l.Processes()), apiRequests(r.ctx, l.Clientset)
		if err := scaleServices(r.ctx, l.Clientset, l.Plan.Nodes[0].Name, scaleSet, have, n); err != nil {
			return nil, err
		}
		created := time.Now()
		cpu := cpuSpent(cpu0, cpuTimes(l.Processes()))
		r.cpu = append(r.cpu, fmt.Sprintf("- %d Services, speakers running: %s", n, cpu))
		fmt.Fprintf(os.Stderr, "%d Services, speakers running: CPU %s\n  API %s\n", n, cpu, requestsSpent(req0, apiRequests(r.ctx, l.Clientset)))
		if err := r.routerHolds(n, 15*time.Minute); err != nil {
			return nil, err
		}
		held := time.Now()
		var rss []string
		for _, node := range l.Plan.Nodes {
			rss = append(rss, fmt.Sprintf("%.0f", float64(vmRSS(l.SpeakerPID(node.Name)))/(1<<20)))
		}
		have = n
		took := created.Sub(t0)
		scaleRows = append(scaleRows, fmt.Sprintf("| %d | %.1f s | %.1f s (%.2f) | %.1f s | %.2f | %.1f s | %s MiB |", n, baseline.Seconds(),
			watched.Seconds(), watched.Seconds()/baseline.Seconds(), took.Seconds(),
			took.Seconds()/baseline.Seconds(), held.Sub(created).Seconds(), strings.Join(rss, " / ")))
		fmt.Fprintln(os.Stderr, scaleRows[len(scaleRows)-1])
	}
	return scaleRows, nil
}

// routerHolds waits until the router holds the prefixes of n scale
// Services from every node.
func (r *bgpRun) routerHolds(n int, within time.Duration) error {
	poll := lab.Poll{Every: 100 * time.Millisecond, Within: within}
	return poll.Until(r.ctx, fmt.Sprintf("the router to hold the prefixes of %d Services from every node", n), func() (bool, string) {
		counts, err := lab.RouterPrefixes(r.l.Plan, true)
		done := err == nil && len(counts) == len(r.l.Plan.Nodes)
		for _, c := range counts {
			done = done && c == n
		}
		return done, fmt.Sprintf("the router holds %v (%v)", counts, err)
	})
}

// baseline creates the baseline Services from..to-1 with every speaker
// stopped, and returns how long that took; then again with a bare
// watcher per node running instead of the speakers (see watchers). After
// each it deletes them; then it starts the speakers again and waits until
// the router holds the from scale Services again.
func (r *bgpRun) baseline(from, to int) (bare, watched time.Duration, err error) {
	l := r.l
	for _, n := range l.Plan.Nodes {
		if err := l.StopSpeaker(n.Name); err != nil {
			return 0, 0, err
		}
	}
	if bare, err = r.createTimed(from, to, "speakers stopped"); err != nil {
		return 0, 0, err
	}
	w, err := startWatchers(r.ctx, l.CP.Kubeconfig, len(l.Plan.Nodes))
	if err != nil {
		return 0, 0, err
	}
	watched, err = r.createTimed(from, to, fmt.Sprintf("speakers stopped, %d bare watchers", len(l.Plan.Nodes)))
	w.stop()
	if err != nil {
		return 0, 0, err
	}
	for _, n := range l.Plan.Nodes {
		if err := l.StartSpeaker(n.Name); err != nil {
			return 0, 0, err
		}
	}
	for _, n := range l.Plan.Nodes {
		if _, err := l.WaitSpeakerReady(n.Name); err != nil {
			return 0, 0, err
		}
	}
	return bare, watched, r.routerHolds(from, 5*time.Minute)
}

// createTimed creates the baseline Services from..to-1, records the CPU
// each program used meanwhile under what, deletes them again and
// returns how long creating them took.
func (r *bgpRun) createTimed(from, to int, what string) (time.Duration, error) {
	l := r.l
	t0, cpu0, req0 := time.Now(), cpuTimes(l.Processes()), apiRequests(r.ctx, l.Clientset)
	if err := scaleServices(r.ctx, l.Clientset, l.Plan.Nodes[0].Name, baselineSet, from, to); err != nil {
		return 0, err
	}
	took := time.Since(t0)
	cpu := cpuSpent(cpu0, cpuTimes(l.Processes()))
	r.cpu = append(r.cpu, fmt.Sprintf("- %d Services, %s: %s", to, what, cpu))
	fmt.Fprintf(os.Stderr, "%d Services, %s: %.1f s, CPU %s\n  API %s\n", to, what, took.Seconds(), cpu, requestsSpent(req0, apiRequests(r.ctx, l.Clientset)))
	return took, deleteServices(r.ctx, l.Clientset, baselineSet, from, to)
}

// serviceSet names a set of scale Services and places their addresses.
type serviceSet struct {
	prefix string
	// offset is the index in the IPv6 BGP pool of the Service numbered 0.
	offset int
}

var (
	scaleSet    = serviceSet{"scale-", 0}
	baselineSet = serviceSet{"baseline-", 0x8000}
)

// deployment creates a Deployment of n lab HTTP servers labelled app=name.
func deployment(ctx context.Context, cs kubernetes.Interface, name string, n int32) error {
	if err := lab.DefaultServiceAccount(ctx, cs); err != nil {
		return err
	}
	no := false
	labels := map[string]string{"app": name}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: name, Image: "lab-http-server"}}}}}}
	_, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{})
	return err
}

// lbService creates a LoadBalancer Service asking for addr (see
// lab.LBService), with no NodePorts: thousands of them would run out of
// the NodePort range. mutate, when not nil, changes it first.
func lbService(ctx context.Context, cs kubernetes.Interface, name string, addr netip.Addr, selector map[string]string, mutate func(*corev1.Service)) error {
	svc := lab.LBService(name, addr, selector)
	no := false
	svc.Spec.AllocateLoadBalancerNodePorts = &no
	if mutate != nil {
		mutate(svc)
	}
	_, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	return err
}

// scaleServices creates the IPv6 Services of set from..to-1, each with a
// ready endpoint on node, with 16 clients at once.
func scaleServices(ctx context.Context, cs kubernetes.Interface, node string, set serviceSet, from, to int) error {
	return inParallel(from, to, func(i int) error {
		name := set.prefix + strconv.Itoa(i)
		if err := lbService(ctx, cs, name, lab.PoolAddr(lab.BGPPoolNet6, set.offset+i), nil, nil); err != nil {
			return err
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv6,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{lab.PoolAddr(lab.HandEndpointNet6, 1).String()}, NodeName: &node}},
		}
		_, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
		return err
	})
}

// deleteServices deletes the Services of set from..to-1 and their
// EndpointSlices, with 16 clients at once.
func deleteServices(ctx context.Context, cs kubernetes.Interface, set serviceSet, from, to int) error {
	return inParallel(from, to, func(i int) error {
		name := set.prefix + strconv.Itoa(i)
		if err := cs.DiscoveryV1().EndpointSlices("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
		return cs.CoreV1().Services("default").Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// inParallel runs f for from..to-1 with 16 clients at once, and returns
// the first error.
func inParallel(from, to int, f func(i int) error) error {
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
	for i := from; i < to && err == nil; i++ {
		select {
		case work <- i:
		case err = <-errs:
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

// vmRSS is a process's resident memory in bytes, 0 if unknown.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func writeBGPReport(out string, trials int, rows, scaleRows, cpu []string) error {
	w, closeOut, err := measure.OpenReport(out)
	if err != nil {
		return err
	}
	defer closeOut()
	host, _ := os.Hostname()
	fmt.Fprintf(w, `# BGP, measured on the lab

Regenerate with `+"`make lab-bgp`"+` (root; about %s). Written %s on %s (%s/%s, %d CPUs).

Three nodes, each speaker with an eBGP session to the lab's FRR router
(IPv4 and IPv6), hold time 9 s unless said otherwise. The router is asked
every %s with vtysh, which itself takes some tens of milliseconds. A fault
hits one node at a time, in turn; after each the speaker starts again and
the router holds the node's path before the next trial. The last row runs
BFD on the IPv4 sessions (BGPPeer `+"`bfd`"+` and FRR's bfdd, 200 ms both ways,
multiplier 3): a pulled cable leaves the TCP session open until the hold
time runs out, and BFD is what tells the router sooner.

| what | trials | p50 | p99 | max | |
|---|---|---|---|---|---|
%s

## Many Services

IPv6 LoadBalancer Services (externalTrafficPolicy Cluster), each with a ready
endpoint, created by 16 clients at once; each row adds to the one before.
Before each row, as many Services are created with the three speakers
stopped (the controller runs), timed, and deleted again: the baseline,
which the API server and the controller set. Then once more with a bare
watcher per node instead of the speakers: an informer of all Services and
EndpointSlices and nothing else, over its own connection, which is what
every per-node agent of any load balancer needs; its ratio to the baseline
is the floor the speakers' ratio stands on. "Held" is when the router has
every prefix from every node; memory is each speaker's resident set then.
The router sends the speakers no routes (a route-map denies all), as
internal/bgp's README advises.

| Services | created, speakers stopped | bare watchers instead (ratio) | created, speakers running | ratio | then held after | speaker memory (node1 / node2 / node3) |
|---|---|---|---|---|---|---|
%s

CPU time used while the Services were created, by program (the three
speakers summed; "speaker's children" are the nft runs of their
dataplanes), which on this machine all share the same CPUs:

%s
`, "half an hour, most of it creating 10,000 Services twice", time.Now().UTC().Format("2006-01-02"), host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
		pollEvery, strings.Join(rows, "\n"), strings.Join(scaleRows, "\n"), strings.Join(cpu, "\n"))
	_ = trials
	return nil
}
