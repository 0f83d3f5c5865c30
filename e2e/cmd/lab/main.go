// Command lab runs ironlb's lab: `lab up` brings a whole cluster up in
// network namespaces on this machine, runs the demo and stays up until
// interrupted; `lab down` removes what a killed lab left behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/traffic"
)

func main() {
	fs := flag.NewFlagSet("lab", flag.ExitOnError)
	name := fs.String("name", "ilb", "the lab's name, prefix of its namespaces")
	nodes := fs.Int("nodes", 3, fmt.Sprintf("how many nodes (1 to %d)", lab.MaxNodes))
	dir := fs.String("dir", "_output/lab", "folder for the lab's files and logs")
	bin := fs.String("bin", "../bin", "folder holding etcd, kube-apiserver, kube-controller-manager, helm, controller and speaker; the chart is found beside it, in ../charts/ironlb")
	trials := fs.Int("trials", 20, "measure, measure-bgp, measure-forwarding, measure-faults: trials of each fault (make lab-forwarding asks for 5, make lab-faults for 10)")
	out := fs.String("out", "", "measure, measure-bgp, measure-forwarding, measure-faults: write the report to this file instead of standard output")
	faults := fs.String("faults", faultNames(), "measure-faults: the faults to measure, comma-separated")
	scale := fs.String("scale", "1000,10000", "measure-bgp: Service counts to grow to, in order")
	runtimeName := fs.String("runtime", os.Getenv(lab.RuntimeEnv), "image: run the controller and the speakers from the images of make images (the default), with podman; binary: run the binaries in -bin (quicker to iterate on); the default comes from "+lab.RuntimeEnv)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lab [flags] up|down|measure|measure-bgp|measure-forwarding|measure-faults\n\nup: bring the lab up, run the demo, stay up until interrupted, tear down.\ndown: remove what a killed lab left behind.\nmeasure: bring a lab up, measure layer 2 failover, write a report, tear down.\nmeasure-bgp: bring a lab up, measure BGP advertisement, withdrawal and scale, write a report, tear down.\nmeasure-forwarding: bring a lab up, measure HTTP through faults of the announcing node (layer 2, BGP) and throughput through LoadBalancer addresses against pods reached directly, write a report, tear down.\nmeasure-faults: for each fault (rolling restart, memberlist partition, pulled cable, frozen API server, key rotation), bring a lab up, measure what a client sees, tear down; write a report beside the design's promises.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	rt, rtErr := lab.ParseRuntime(*runtimeName)
	if rtErr != nil {
		fmt.Fprintf(os.Stderr, "lab: -runtime: %v\n", rtErr)
		os.Exit(2)
	}
	labRuntime = rt
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab: needs root (network namespaces, veth pairs, FRR); run it with sudo or as root")
		os.Exit(1)
	}
	var err error
	switch fs.Arg(0) {
	case "down":
		left := lab.Leftovers(*name)
		if err = lab.Down(*name); err == nil {
			fmt.Printf("lab %s: removed %d leftovers %v\n", *name, len(left), left)
		}
	case "up", "":
		err = up(*name, *nodes, *dir, *bin)
	case "measure":
		d, _ := filepath.Abs(*dir)
		err = measureFailover(*name, d, binaries(*bin), *trials, *out)
	case "measure-forwarding":
		d, _ := filepath.Abs(*dir)
		err = measureForwarding(*name, d, binaries(*bin), *trials, *out)
	case "measure-faults":
		kinds, selErr := selectFaults(*faults)
		if selErr != nil {
			fmt.Fprintf(os.Stderr, "lab: %v\n", selErr)
			os.Exit(2)
		}
		d, _ := filepath.Abs(*dir)
		err = measureFaults(*name, d, binaries(*bin), *trials, kinds, *out)
	case "measure-bgp":
		d, _ := filepath.Abs(*dir)
		var counts []int
		for _, f := range strings.Split(*scale, ",") {
			n, convErr := strconv.Atoi(strings.TrimSpace(f))
			if convErr != nil || n < 1 || n > 65000 {
				fmt.Fprintf(os.Stderr, "lab: -scale %q: want Service counts from 1 to 65000, comma-separated\n", *scale)
				os.Exit(2)
			}
			counts = append(counts, n)
		}
		err = measureBGP(*name, d, binaries(*bin), *trials, counts, *out)
	default:
		fs.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab: %v\n", err)
		os.Exit(1)
	}
}

// labRuntime is how every lab this command starts runs the controller
// and the speakers (-runtime).
var labRuntime = lab.RuntimeImage

// binaries finds the lab's programs, the chart and, when the lab runs
// them, the images, from the bin folder; it exits when one is missing.
func binaries(bin string) lab.Binaries {
	bin, _ = filepath.Abs(bin)
	b, err := lab.BinariesIn(bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab: %v (run make tools build)\n", err)
		os.Exit(1)
	}
	if labRuntime == lab.RuntimeImage {
		if _, err := b.ImageArchives(); err != nil {
			fmt.Fprintf(os.Stderr, "lab: %v\n", err)
			os.Exit(1)
		}
	}
	return b
}

// up runs the lab until it is interrupted. Ctrl-C at any point, during the
// bring-up too, tears down what exists and is a clean exit, not an error.
func up(name string, nodes int, dir, bin string) (err error) {
	defer foreground()()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "lab: interrupted (%v)\n", err)
			err = nil
		}
	}()
	dir, _ = filepath.Abs(dir)
	b := binaries(bin)
	start := time.Now()
	l, err := lab.Start(ctx, lab.Options{Name: name, Nodes: nodes, Dir: dir, Bin: b, Log: slog.Default(), Runtime: labRuntime})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\ntearing the lab down…")
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "lab: teardown: %v\n", err)
		}
		fmt.Println("done.")
	}()
	fmt.Printf("lab %s up in %s: %d nodes, control plane at %s\n", name, time.Since(start).Round(10*time.Millisecond), nodes, l.CP.URL)
	fmt.Printf("ironlb installed from %s in namespace %s; the controller and speakers run with its ServiceAccounts' tokens (%s, %s)\n",
		l.Bin().Chart, lab.ChartNamespace, l.ComponentKubeconfig("controller"), l.ComponentKubeconfig("speaker"))
	for node, state := range l.Speakers {
		fmt.Printf("  speaker on %s: %s\n", node, state)
	}
	l2, bgp, err := demo(ctx, l)
	if err != nil {
		return err
	}
	p := l.Plan
	fmt.Printf(`
demo Services (three pods, one per node, externalTrafficPolicy Cluster):
  default/demo      EXTERNAL-IP %[1]s  (layer 2: a node answers ARP/NDP for it on the LAN)
  default/demo-bgp  EXTERNAL-IP %[2]s  (BGP: every node advertises it to the FRR router)

look around:
  export KUBECONFIG=%[3]s
  kubectl get svc,pods,endpointslices -o wide
  kubectl get ippools
  PATH=$PATH:%[11]s kubectl ironlb status      (also: explain svc/demo, who-has %[5]s)
  ip netns exec %[4]s curl http://%[5]s/
  ip netns exec %[6]s curl http://%[7]s/
  ip netns exec %[8]s nft list ruleset
  vtysh -N %[9]s -c 'show bgp summary'
  logs: %[10]s/*.log

`, joinAddrs(l2), joinAddrs(bgp), l.CP.Kubeconfig, p.Client.NetNS, urlHost(l2[0]), p.Remote.NetNS, urlHost(bgp[0]), p.Nodes[0].NetNS, p.Router.NetNS, dir, filepath.Dir(b.Controller))
	nodeOf, err := podNodes(ctx, l, "app=demo")
	if err != nil {
		return err
	}
	for _, a := range l2 {
		fmt.Printf("%s\n", spread(l, nodeOf, p.Client, a, 30))
	}
	for _, a := range bgp {
		// Every node's session comes up within seconds of the others.
		var hops []netip.Addr
		_ = minutePoll.Until(ctx, "a BGP path from every node at the router", func() (bool, string) {
			var err error
			hops, err = lab.RouterFIB(p, netip.PrefixFrom(a, a.BitLen()))
			return len(hops) == len(p.Nodes), lab.Why(err, hops)
		})
		fmt.Printf("%s\n", spread(l, nodeOf, p.Remote, a, 30))
		fmt.Printf("  through the FRR router, which forwards %s to %v (ECMP over the nodes' BGP paths)\n", a, hops)
	}
	fmt.Println("\nthe lab stays up until interrupted (Ctrl-C)")
	<-ctx.Done()
	return nil
}

// demo applies the example configuration, a three-pod Deployment and two
// dual-stack LoadBalancer Services for it, one in the layer 2 pool and
// one in the BGP pool, and returns their addresses.
func demo(ctx context.Context, l *lab.Lab) (l2, bgp []netip.Addr, err error) {
	if err := l.ApplyExample(ctx, ""); err != nil {
		return nil, nil, err
	}
	cs := l.Clientset
	if err := deployment(ctx, cs, "demo", 3); err != nil {
		return nil, nil, err
	}
	dual := corev1.IPFamilyPolicyRequireDualStack
	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "demo"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "demo-bgp", Annotations: map[string]string{"ironlb.io/ip-pool": "lab-bgp"}}},
	} {
		svc.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "demo"}, IPFamilyPolicy: &dual,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}}
		if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return nil, nil, err
		}
	}
	addrs := func(name string) (out []netip.Addr, err error) {
		err = minutePoll.Until(ctx, name+"'s EXTERNAL-IPs, one of each family (see controller.log)", func() (bool, string) {
			s, err := cs.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
			out = nil
			for _, in := range s.Status.LoadBalancer.Ingress {
				if a, err := netip.ParseAddr(in.IP); err == nil {
					out = append(out, a)
				}
			}
			return err == nil && len(out) == 2, lab.Why(err, out)
		})
		slices.SortFunc(out, func(a, b netip.Addr) int { return a.BitLen() - b.BitLen() }) // IPv4 first
		return out, err
	}
	if l2, err = addrs("demo"); err != nil {
		return nil, nil, err
	}
	if bgp, err = addrs("demo-bgp"); err != nil {
		return nil, nil, err
	}
	err = minutePoll.Until(ctx, "three ready endpoints of each family in the demo Services' EndpointSlices", func() (bool, string) {
		list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name in (demo, demo-bgp)"})
		ready := 0
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready++
				}
			}
		}
		return err == nil && ready == 2*2*3, lab.Why(err, fmt.Sprintf("%d ready", ready))
	})
	return l2, bgp, err
}

// podNodes maps the names of the pods matching selector to their nodes.
func podNodes(ctx context.Context, l *lab.Lab, selector string) (map[string]string, error) {
	out := map[string]string{}
	err := minutePoll.Until(ctx, "the demo pods on their nodes", func() (bool, string) {
		list, err := l.Clientset.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error()
		}
		clear(out)
		for _, p := range list.Items {
			if p.Spec.NodeName != "" && p.Status.PodIP != "" {
				out[p.Name] = p.Spec.NodeName
			}
		}
		return len(out) == len(list.Items) && len(out) > 0, fmt.Sprint(out)
	})
	return out, err
}

// spread asks addr n times from a client, each on a new connection, and
// describes who answered and whom each pod saw. It waits up to a minute
// for a first answer: the Service's endpoints reach the speakers' rules a
// moment after its address is assigned.
func spread(l *lab.Lab, nodeOf map[string]string, from lab.Host, addr netip.Addr, n int) string {
	target := netip.AddrPortFrom(addr, 80)
	head := fmt.Sprintf("%d requests from %s (%s) to http://%s/, a new connection each:", n, from.NetNS, hostAddr(from, addr), target)
	var first error
	deadline := time.Now().Add(time.Minute)
	for {
		_, first = traffic.Ask(from.NetNS, target, 2*time.Second)
		if first == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if first != nil {
		return fmt.Sprintf("%s no answer (%v)", head, first)
	}
	type seen struct {
		n     int
		saw   []string
		nodes string
	}
	by := map[string]*seen{}
	failed := 0
	for range n {
		a, err := traffic.Ask(from.NetNS, target, 2*time.Second)
		if err != nil {
			failed++
			continue
		}
		s := by[a.Pod]
		if s == nil {
			s = &seen{}
			by[a.Pod] = s
		}
		s.n++
		who := a.Client.Addr().String()
		if a.Client.Addr() == hostAddr(from, addr) {
			who += " (the client itself)"
		} else {
			for _, nd := range l.Plan.Nodes {
				if hostAddr(nd.Host, addr) == a.Client.Addr() {
					who += " (" + nd.Name + ", masqueraded)"
				}
			}
		}
		if !slices.Contains(s.saw, who) {
			s.saw = append(s.saw, who)
		}
	}
	var b strings.Builder
	b.WriteString(head)
	for _, pod := range slices.Sorted(maps.Keys(by)) {
		s := by[pod]
		slices.Sort(s.saw)
		fmt.Fprintf(&b, "\n  %-24s on %s: %2d answers, saw the connection come from %s", pod, nodeOf[pod], s.n, strings.Join(s.saw, ", "))
	}
	if failed > 0 {
		fmt.Fprintf(&b, "\n  %d requests failed", failed)
	}
	return b.String()
}

// hostAddr is h's address of addr's family.
func hostAddr(h lab.Host, addr netip.Addr) netip.Addr {
	if addr.Is6() {
		return h.Addr6.Addr()
	}
	return h.Addr.Addr()
}

func joinAddrs(as []netip.Addr) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// urlHost is addr as a URL's host.
func urlHost(addr netip.Addr) string {
	if addr.Is6() {
		return "[" + addr.String() + "]"
	}
	return addr.String()
}

// minutePoll is how the demo and the measurements wait for the API
// server and the router when the time taken is not what they measure.
var minutePoll = lab.Poll{Every: 100 * time.Millisecond, Within: time.Minute}
