package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/cmdutil/metricstest"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestMetrics runs the controller with its default metrics flags against
// a real API server: /metrics is served over HTTPS, only to callers the
// API server authenticates and lets get /metrics through the chart's
// reader role. What it serves follows ironlb's conventions:
// ironlb_build_info, and the family label spelled ipv4 and ipv6 on the
// metrics of a dual-stack pool, whose states add up to its size. (One
// test, as the controller registers its metrics in the process's one
// registry.)
func TestMetrics(t *testing.T) {
	env := testenv.Get(t)
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "conventions"}}
	pool.Spec.Addresses = []v1alpha1.AddressRange{"203.0.113.0/28", "2001:db8:c0::/64"}
	if err := env.Client.Create(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pool) })
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
	url := "https://" + addr + "/metrics"
	metricstest.Check(t, url, reader, other, "# HELP")

	want := []string{
		`ironlb_pool_size{family="ipv4",pool="conventions"} 16`,
		`ironlb_pool_size{family="ipv6",pool="conventions"} 1.8446744073709552e+19`,
		`ironlb_pool_addresses{family="ipv4",pool="conventions",state="available"} 16`,
		`ironlb_pool_addresses{family="ipv6",pool="conventions",state="assigned"} 0`,
	}
	var body string
	testutil.Eventually(t, "the pool's metrics", func() (bool, string) {
		_, b, err := metricstest.Get(url, reader)
		body = b
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, fmt.Sprintf("no %s (%v)", w, err)
			}
		}
		return true, ""
	})
	for _, p := range metricstest.CheckConventions(body) {
		t.Error(p)
	}
}
