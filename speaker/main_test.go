package main

import (
	"context"
	"flag"
	"testing"

	"github.com/ironlb/ironlb/internal/cmdutil/metricstest"
	"github.com/ironlb/ironlb/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestMetrics runs the speaker with its default metrics flags against a
// real API server: /metrics is served over HTTPS, only to callers the API
// server authenticates and lets get /metrics through the chart's reader
// role.
func TestMetrics(t *testing.T) {
	env := testenv.Get(t)
	reader, other := metricstest.Tokens(t, env.Config)
	addr := metricstest.FreeAddr(t)
	memberlist := metricstest.FreeAddr(t)
	var o Options
	fs := flag.NewFlagSet("speaker", flag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse([]string{
		"--kubeconfig=" + metricstest.Kubeconfig(t, env.Config),
		"--node-name=metrics-test",
		"--metrics-bind-address=" + addr,
		"--health-probe-bind-address=0",
		"--memberlist-bind-address=127.0.0.1",
		"--memberlist-port=" + memberlist[len("127.0.0.1:"):],
		"--memberlist-join=127.0.0.1:1",
		"--memberlist-secret=",
		"--fencing=off",
		"--forwarding-mode=none",
		"--log-level=error",
	}); err != nil {
		t.Fatal(err)
	}
	metricstest.Run(t, "speaker", func(ctx context.Context) error { return run(ctx, &o) })
	url := "https://" + addr + "/metrics"
	metricstest.Check(t, url, reader, other, "ironlb_memberlist_members")

	// What it serves follows ironlb's conventions: ironlb_build_info, and
	// the family label, wherever it occurs, spelled ipv4 or ipv6 (the
	// layer 2 and forwarding metrics' own tests give them both families).
	_, body, err := metricstest.Get(url, reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range metricstest.CheckConventions(body) {
		t.Error(p)
	}
}

// TestHealthOnLoopback: the speaker runs in the host network, so its
// probes answer on loopback unless told otherwise.
func TestHealthOnLoopback(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("speaker", flag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.HealthAddr != "127.0.0.1:7475" || o.Metrics.Insecure {
		t.Errorf("defaults: --health-probe-bind-address=%s --metrics-insecure=%t, want 127.0.0.1:7475 and false", o.HealthAddr, o.Metrics.Insecure)
	}
}
