package assigner_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testutil"
)

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestEndpoints: /healthz, /readyz and the ironlb_ metrics are served.
func TestEndpoints(t *testing.T) {
	ns := namespace(t, nil)
	pool := ns + "-p"
	apply(t, nsPool(pool, ns, "2001:db8:e006::/120"))
	metrics, health := freePort(t), freePort(t)
	start(t, func(o *assigner.RunOptions) {
		o.MetricsAddr, o.HealthAddr = metrics, health
		o.Registry = nil // Run's default: the registry the manager serves
		// Plain HTTP: this test reads what is served; who may read it is
		// controller/main_test.go's TestMetrics.
		o.MetricsServing.Insecure = true
	})
	create(t, lbService(ns, "a", ipv6Only))
	waitCondition(t, ns, "a", assigner.ReasonAllocated)

	for _, path := range []string{"/healthz", "/readyz"} {
		testutil.Eventually(t, path+" to answer 200", func() (bool, string) {
			code, body, err := get("http://" + health + path)
			return err == nil && code == http.StatusOK, fmt.Sprintf("%d %q %v", code, body, err)
		})
	}
	want := []string{
		fmt.Sprintf(`ironlb_pool_addresses{family="ipv6",pool=%q,state="assigned"} 1`, pool),
		fmt.Sprintf(`ironlb_pool_addresses{family="ipv6",pool=%q,state="available"} 255`, pool),
		fmt.Sprintf(`ironlb_pool_size{family="ipv6",pool=%q} 256`, pool),
		`ironlb_allocation_results_total{reason="Allocated"}`,
	}
	testutil.Eventually(t, "the metrics", func() (bool, string) {
		code, body, err := get("http://" + metrics + "/metrics")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%d %v", code, err)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, "missing " + w
			}
		}
		return true, ""
	})
}
