package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/e2e/traffic"
)

// faultKind is one fault measure-faults knows: its -faults name, how to
// run its trials on a lab readied for them, and what it costs, for the
// estimate of a whole run.
type faultKind struct {
	name string
	// password, when set, protects the BGP sessions with the router.
	password string
	// setup is the time to bring a lab up, ready it and tear it down,
	// perTrial the time of one trial (as measured on an otherwise idle
	// 2-CPU machine).
	setup, perTrial time.Duration
	run             func(*faultMeasure, context.Context) error
}

// faultKinds are the faults in the order they are measured.
var faultKinds = []faultKind{
	{name: "restart", setup: 15 * time.Second, perTrial: 15 * time.Second, run: (*faultMeasure).restart},
	{name: "partition", setup: 15 * time.Second, perTrial: 45 * time.Second, run: (*faultMeasure).partition},
	{name: "cable", setup: 15 * time.Second, perTrial: 25 * time.Second, run: (*faultMeasure).cable},
	{name: "apiserver", password: "ironlb-lab-md5", setup: 20 * time.Second, perTrial: 130 * time.Second, run: (*faultMeasure).apiServer},
	{name: "rotation", setup: 35 * time.Second, perTrial: 25 * time.Second, run: (*faultMeasure).rotation},
}

// makeTrials is what `make lab-faults` asks for.
const makeTrials = 10

// faultNames lists the faults measure-faults knows, comma-separated.
func faultNames() string {
	var out []string
	for _, k := range faultKinds {
		out = append(out, k.name)
	}
	return strings.Join(out, ",")
}

// selectFaults parses -faults: names of faultKinds, comma-separated.
func selectFaults(list string) ([]faultKind, error) {
	var out []faultKind
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		i := slices.IndexFunc(faultKinds, func(k faultKind) bool { return k.name == f })
		if i < 0 {
			return nil, fmt.Errorf("-faults %q: %q is none of %s", list, f, faultNames())
		}
		if !slices.ContainsFunc(out, func(k faultKind) bool { return k.name == f }) {
			out = append(out, faultKinds[i])
		}
	}
	return out, nil
}

// estimate is how long measuring kinds with this many trials takes.
func estimate(kinds []faultKind, trials int) time.Duration {
	var d time.Duration
	for _, k := range kinds {
		d += k.setup + time.Duration(trials)*k.perTrial
	}
	return d
}

// faultRow is one line of the report's table.
type faultRow struct {
	fault  string
	trials int
	// what the client (or the router, or a speaker) saw, the figures, and
	// what the design promises.
	what, figures, promised string
}

func (r faultRow) String() string {
	return fmt.Sprintf("| %s | %d | %s | %s | %s |", r.fault, r.trials, r.what, r.figures, r.promised)
}

// faultMeasure runs the trials of one fault on a lab readied for them.
type faultMeasure struct {
	e      *measure.FaultEnv
	trials int
	rows   []faultRow
	logf   func(format string, args ...any)
}

func (m *faultMeasure) row(fault, what, figures, promised string) {
	r := faultRow{fault: fault, trials: m.trials, what: what, figures: figures, promised: promised}
	m.rows = append(m.rows, r)
	m.logf("%s", r)
}

// measureFaults measures, for each fault of kinds, what a client sees
// over trials, each fault on a lab of its own (its trials share it,
// restoring it in between), and writes a Markdown report to out: the
// design's promises (faultsDesign), then the figures beside them.
func measureFaults(name, dir string, b lab.Binaries, trials int, kinds []faultKind, out string) error {
	ctx := context.Background()
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Since(began).Round(time.Second)}, args...)...)
	}
	var names []string
	for _, k := range kinds {
		names = append(names, k.name)
	}
	logf("measuring %s, %d trials each: about %s", strings.Join(names, ", "), trials, estimate(kinds, trials).Round(time.Minute))
	var rows []faultRow
	for _, k := range kinds {
		start := time.Now()
		rs, err := measureFault(ctx, name, filepath.Join(dir, k.name), b, k, trials, logf)
		if err != nil {
			return fmt.Errorf("%s: %w", k.name, err)
		}
		logf("%s: done in %s", k.name, time.Since(start).Round(time.Second))
		rows = append(rows, rs...)
	}
	return writeFaultsReport(out, trials, names, time.Since(began), rows)
}

// measureFault brings a lab up for one fault, readies it (measure.FaultEnv)
// and runs the fault's trials.
func measureFault(ctx context.Context, name, dir string, b lab.Binaries, k faultKind, trials int, logf func(string, ...any)) ([]faultRow, error) {
	l, err := lab.Start(ctx, lab.Options{Name: name, Nodes: 3, Dir: dir, Bin: b, Runtime: labRuntime})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	for node, st := range l.Speakers {
		if st != "ready" {
			return nil, fmt.Errorf("speaker on %s: %s", node, st)
		}
	}
	if err := l.ApplyExample(ctx, k.password); err != nil {
		return nil, err
	}
	e, err := measure.NewFaultEnv(ctx, l)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	logf("%s: lab %s up, addresses %s", k.name, name, e.Describe())
	m := &faultMeasure{e: e, trials: trials, logf: logf}
	if err := k.run(m, ctx); err != nil {
		return nil, err
	}
	return m.rows, nil
}

func writeFaultsReport(out string, trials int, faults []string, took time.Duration, rows []faultRow) error {
	w, closeOut, err := measure.OpenReport(out)
	if err != nil {
		return err
	}
	defer closeOut()
	host, _ := os.Hostname()
	var lines []string
	for _, r := range rows {
		lines = append(lines, r.String())
	}
	full := estimate(faultKinds, makeTrials)
	fmt.Fprintf(w, `# Faults, measured on the lab

Regenerate with `+"`make lab-faults`"+` (root; about %d minutes: %d trials of each fault). Written %s on %s (%s/%s, %d CPUs); this run: %d trials of each of %s, in %s.

%s
## What a client saw

Each fault runs on a lab of its own: three nodes, the example
configuration, a web pod on every node, and a layer 2 Service for each
node asking for an IPv4 address that node ranks first for, served by all
three pods. The client on the LAN asks for every address by ARP every
10 ms, sends HTTP requests to each, a new connection every %s (a request
not answered within %s has failed), and holds %d long-lived connections to
each, exchanging a request every %s (one that does not answer within %s
is broken). The trials of a fault share its lab: each ends once every
address is answered by its owner alone and every speaker's
NodeAnnouncement counts every node, which is how the next one starts. The
node a trial hits takes turns. Speaker defaults throughout (fencing by
quorum, memberlist probe interval 80 ms).

- **Rolling restart**: one trial stops every speaker gracefully and starts
  it again, one at a time, each ready and everything back in place before
  the next; fresh long-lived connections before every step.
- **Memberlist port cut**: nftables in the node's namespace drops the
  memberlist port (TCP and UDP, both ways) for %s; everything else flows.
- **Cable pulled**: the node's port on the LAN bridge goes down for %s. Its
  rejoining is when the last reading of its speaker's member count that
  counted fewer than three was taken, or its log's first line counting
  three, whichever is later.
- **API server frozen**: kube-apiserver is stopped (SIGSTOP: it keeps its
  sockets, so clients hang) for %s; %s in, the speaker owning an address is
  SIGKILLed, and started again after the thaw. The BGP sessions are
  protected by a password from a Secret; a Service in the BGP pool is
  advertised by every node, and a client behind the router sends it
  requests too.
- **Key rotation**: the three rollouts of
  [install.md](install.md#rotating-the-memberlist-key), every speaker
  restarted in each; every speaker's member count is read every 100 ms
  throughout. A speaker that has not joined (count 0) or does not answer
  (stopped) tells nothing and is skipped.

| fault | trials | what was measured | figures | promised |
|---|---|---|---|---|
%s
`, int(full.Round(5*time.Minute)/time.Minute), makeTrials,
		time.Now().UTC().Format("2006-01-02"), host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), trials, strings.Join(faults, ", "), took.Round(time.Second),
		faultsDesign,
		measure.Millis(measure.StreamInterval), measure.Millis(measure.FaultRequestTimeout), measure.FaultHeldPerAddr, measure.Millis(traffic.HoldInterval), measure.Human(measure.FaultHoldTimeout),
		measure.Human(measure.PartitionHold), measure.Human(measure.CableHold), measure.Human(measure.FreezeHold), measure.Human(measure.FreezeKillAfter),
		strings.Join(lines, "\n"))
	return nil
}
