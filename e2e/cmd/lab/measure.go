package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/e2e/lab"
)

// measure brings up a three-node lab and measures layer 2 failover as a
// client on the LAN sees it, for IPv4 and IPv6: trials of each fault, and
// the time from a Service's creation to the first answer for its address.
// It writes a Markdown report to out.
func measure(name, dir string, b lab.Binaries, trials int, out string) error {
	ctx := context.Background()
	l, err := startMeasured(ctx, name, dir, b)
	if err != nil {
		return err
	}
	defer l.Close()
	cs := l.Clientset
	service := func(name string, addr netip.Addr) error {
		fam := corev1.IPv4Protocol
		if addr.Is6() {
			fam = corev1.IPv6Protocol
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"ironlb.io/loadBalancerIPs": addr.String()}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{fam},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}},
		}
		_, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
		return err
	}
	var rows []string
	row := func(what, family string, ds []time.Duration, note string) {
		p50, p99, hi := lab.Percentiles(ds)
		rows = append(rows, fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s |", what, family, len(ds), ms(p50), ms(p99), ms(hi), note))
		fmt.Fprintln(os.Stderr, rows[len(rows)-1])
	}

	targets := map[string]netip.Addr{"IPv4": netip.MustParseAddr("203.0.113.70"), "IPv6": netip.MustParseAddr("2001:db8:ff64::70")}
	for _, fam := range []string{"IPv4", "IPv6"} {
		// Time to the first answer: a fresh address per trial.
		var first []time.Duration
		for i := range trials {
			a := netip.MustParseAddr("203.0.113.72").As4() // .72 to .91: inside the lab's layer 2 pool, clear of the failover target .70
			a[3] += byte(i)
			addr := netip.AddrFrom4(a)
			if fam == "IPv6" {
				b := netip.MustParseAddr("2001:db8:ff64::80").As16()
				b[15] += byte(i)
				addr = netip.AddrFrom16(b)
			}
			svcName := fmt.Sprintf("first-%s-%d", strings.ToLower(fam), i)
			d, err := l.FirstAnswer(ctx, addr, func() error { return service(svcName, addr) })
			if err != nil {
				return fmt.Errorf("%s first answer: %w", fam, err)
			}
			first = append(first, d)
			_ = cs.CoreV1().Services("default").Delete(ctx, svcName, metav1.DeleteOptions{})
		}
		row("Service created → first answer", fam, first, "controller assigns, speaker announces")

		target := targets[fam]
		if err := service("failover-"+strings.ToLower(fam), target); err != nil {
			return err
		}
		for _, fault := range []lab.Fault{lab.FaultKill, lab.FaultLink, lab.FaultRestart} {
			var gaps []time.Duration
			unanswered := 0
			for range trials {
				tr, err := l.FailoverTrial(ctx, target, fault)
				if err != nil {
					return fmt.Errorf("%s %s: %w", fam, fault, err)
				}
				gaps = append(gaps, tr.Failover.Gap)
				unanswered += tr.Unanswered
			}
			if fault == lab.FaultRestart {
				rows = append(rows, fmt.Sprintf("| %s | %s | %d | | | | %d probes in all without an answer within %s |", fault, fam, trials, unanswered, ms(lab.AnswerWithin)))
				fmt.Fprintln(os.Stderr, rows[len(rows)-1])
				continue
			}
			row(string(fault)+" → new owner answers", fam, gaps, "gap between the old owner's last answer and the new one's first")
		}
	}
	return writeReport(out, trials, rows)
}

// startMeasured brings up a three-node lab with the example configuration.
func startMeasured(ctx context.Context, name, dir string, b lab.Binaries) (*lab.Lab, error) {
	l, err := lab.Start(ctx, lab.Options{Name: name, Nodes: 3, Dir: dir, Bin: b})
	if err != nil {
		return nil, err
	}
	for node, st := range l.Speakers {
		if st != "ready" {
			l.Close()
			return nil, fmt.Errorf("speaker on %s: %s", node, st)
		}
	}
	dyn, err := dynamicFor(l)
	if err == nil {
		var objs []*unstructured.Unstructured
		if objs, err = lab.ExampleObjects(); err == nil {
			for _, u := range objs {
				gvr := schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: strings.ToLower(u.GetKind()) + "s"}
				if _, err = dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{}); err != nil {
					err = fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
					break
				}
			}
		}
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// bgpPeers is the BGPPeer resource.
var bgpPeers = schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "bgppeers"}

// dynamicFor is a dynamic client of the lab's API server, unthrottled:
// client-go's default limit (5 requests a second) would throttle the
// measurements, not the system under test.
func dynamicFor(l *lab.Lab) (*dynamic.DynamicClient, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return dynamic.NewForConfig(cfg)
}

// openReport opens out for writing, or standard output when out is empty.
func openReport(out string) (io.Writer, func(), error) {
	if out == "" {
		return os.Stdout, func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, nil, err
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func writeReport(out string, trials int, rows []string) error {
	w, closeOut, err := openReport(out)
	if err != nil {
		return err
	}
	defer closeOut()
	host, _ := os.Hostname()
	fmt.Fprintf(w, `# Layer 2 failover, measured on the lab

Regenerate with `+"`make lab-failover`"+` (root; about ten minutes). Written %s on %s (%s/%s, %d CPUs).

A client on the lab's LAN asks for the address every 10 ms (ARP for IPv4, a
neighbour solicitation for IPv6) and records every answer with the MAC it
gives. Three nodes, speaker defaults (memberlist probe interval 80 ms, probe
timeout 40 ms, suspicion multiplier 2, gossip interval 100 ms, handoff
500 ms, leave grace 1 s). Each fault hits the node answering for the address;
after each trial the node is restored and takes the address back. %d trials
per row.

| what | family | trials | p50 | p99 | max | |
|---|---|---|---|---|---|---|
%s
`, time.Now().UTC().Format("2006-01-02"), host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), trials, strings.Join(rows, "\n"))
	return nil
}
