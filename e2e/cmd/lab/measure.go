package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
)

// measureFailover brings up a three-node lab and measures layer 2 failover as a
// client on the LAN sees it, for IPv4 and IPv6: trials of each fault, and
// the time from a Service's creation to the first answer for its address.
// It writes a Markdown report to out.
func measureFailover(name, dir string, b lab.Binaries, trials int, out string) error {
	ctx := context.Background()
	l, err := startMeasured(ctx, name, dir, b)
	if err != nil {
		return err
	}
	defer l.Close()
	cs := l.Clientset
	service := func(name string, addr netip.Addr) error {
		_, err := cs.CoreV1().Services("default").Create(ctx, lab.LBService(name, addr, nil), metav1.CreateOptions{})
		return err
	}
	var rows []string
	row := func(what, family string, ds []time.Duration, note string) {
		p50, p99, hi := measure.Percentiles(ds)
		rows = append(rows, fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s |", what, family, len(ds), measure.Millis(p50), measure.Millis(p99), measure.Millis(hi), note))
		fmt.Fprintln(os.Stderr, rows[len(rows)-1])
	}

	targets := map[string]netip.Addr{"IPv4": lab.PoolAddr(lab.L2PoolNet, 70), "IPv6": lab.PoolAddr(lab.L2PoolNet6, 0x70)}
	for _, fam := range []string{"IPv4", "IPv6"} {
		// Time to the first answer: a fresh address per trial.
		var first []time.Duration
		for i := range trials {
			addr := lab.PoolAddr(lab.L2PoolNet, 72+i) // .72 to .91: inside the lab's layer 2 pool, clear of the failover target .70
			if fam == "IPv6" {
				addr = lab.PoolAddr(lab.L2PoolNet6, 0x80+i)
			}
			svcName := fmt.Sprintf("first-%s-%d", strings.ToLower(fam), i)
			d, err := measure.FirstAnswer(ctx, l, addr, func() error { return service(svcName, addr) })
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
		for _, fault := range []measure.Fault{measure.FaultKill, measure.FaultLink, measure.FaultRestart} {
			var gaps []time.Duration
			unanswered := 0
			for range trials {
				tr, err := measure.FailoverTrial(ctx, l, target, fault)
				if err != nil {
					return fmt.Errorf("%s %s: %w", fam, fault, err)
				}
				gaps = append(gaps, tr.Failover.Gap)
				unanswered += tr.Unanswered
			}
			if fault == measure.FaultRestart {
				rows = append(rows, fmt.Sprintf("| %s | %s | %d | | | | %d probes in all without an answer within %s |", fault, fam, trials, unanswered, measure.Millis(measure.AnswerWithin)))
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
	l, err := lab.Start(ctx, lab.Options{Name: name, Nodes: 3, Dir: dir, Bin: b, Runtime: labRuntime})
	if err != nil {
		return nil, err
	}
	for node, st := range l.Speakers {
		if st != "ready" {
			l.Close()
			return nil, fmt.Errorf("speaker on %s: %s", node, st)
		}
	}
	err = l.ApplyExample(ctx, "")
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func writeReport(out string, trials int, rows []string) error {
	w, closeOut, err := measure.OpenReport(out)
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
