package main

import (
	"context"
	"flag"
	"testing"

	"github.com/ironlb/ironlb/internal/cmdutil/metricstest"
	"github.com/ironlb/ironlb/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestMetricsNeedAuthorization runs the controller with its default
// metrics flags against a real API server: /metrics is served over HTTPS,
// only to callers the API server authenticates and lets get /metrics
// through the chart's reader role.
func TestMetricsNeedAuthorization(t *testing.T) {
	env := testenv.Get(t)
	reader, other := metricstest.Tokens(t, env.Config)
	addr := metricstest.FreeAddr(t)
	var o Options
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse([]string{
		"--kubeconfig=" + metricstest.Kubeconfig(t, env.Config),
		"--leader-elect=false",
		"--metrics-bind-address=" + addr,
		"--health-probe-bind-address=0",
		"--log-level=error",
	}); err != nil {
		t.Fatal(err)
	}
	metricstest.Run(t, "controller", func(ctx context.Context) error { return run(ctx, &o) })
	metricstest.Check(t, "https://"+addr+"/metrics", reader, other, "# HELP")
}
