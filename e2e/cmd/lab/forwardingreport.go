package main

// This file writes measure-forwarding's report: a row per fault's trials
// (streamRow) and the Markdown around them (writeForwardingReport).

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/measure"
)

// writeForwardingReport writes the report of measureForwarding to out
// (standard output when empty).
func writeForwardingReport(out string, trials int, took time.Duration, owner map[netip.Addr]string, l2, bgp []netip.Addr, bgpNode string, tpRows, foRows []string, stale map[string]int) error {
	w, closeOut, err := measure.OpenReport(out)
	if err != nil {
		return err
	}
	defer closeOut()
	writeThroughputSection(w, took, tpRows)
	writeFailoverSection(w, trials, owner, l2, bgp, bgpNode, foRows)
	writeStaleNote(w, trials, stale)
	return nil
}

// writeThroughputSection writes the report's title and its throughput
// and connection rate section.
func writeThroughputSection(w io.Writer, took time.Duration, tpRows []string) {
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
`, took.Round(time.Second), time.Now().UTC().Format("2006-01-02"), host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
		bulkBytes>>20, rateConns, rateFor, tpRounds, strings.Join(tpRows, "\n"))
}

// writeFailoverSection writes the report's section on failover with real
// traffic.
func writeFailoverSection(w io.Writer, trials int, owner map[netip.Addr]string, l2, bgp []netip.Addr, bgpNode string, foRows []string) {
	fmt.Fprintf(w, `
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
%s and %s through the FRR router, which spreads
connections over the three nodes by ECMP (hashing ports too); faults hit
%s, the pods run on the two others; hold time 3 s, keepalive 1 s.

| path | fault | family | trials | requests sent after the fault (p50) | lost after the fault | longest gap | last loss | lost after the restore | longest gap after the restore | lost requests by error |
|---|---|---|---|---|---|---|---|---|---|---|
%s
`,
		measure.Millis(measure.StreamInterval), measure.Millis(measure.StreamTimeout), faultHold, measure.AnsweredRun, faultHold, measure.AnsweredRun, measure.Millis(measure.StreamInterval), trials,
		l2[0], owner[l2[0]], l2[1], owner[l2[1]], bgp[0], bgp[1], bgpNode, strings.Join(foRows, "\n"))
}

// writeStaleNote writes how often the client's neighbour entry still
// pointed at another node than the owner before a layer 2 trial.
func writeStaleNote(w io.Writer, trials int, stale map[string]int) {
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
}
