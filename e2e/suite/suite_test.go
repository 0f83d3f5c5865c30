// Package suite holds ironlb's end-to-end scenarios, each run on a lab of
// its own (e2e/lab). One file per feature: the speaker and forwarding
// issues add theirs beside lb_test.go.
package suite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
)

// startLab brings up a lab of n nodes for one test and, when the test
// ends, tears it down and checks that no namespace, mount, interface or
// process of it is left. Without root or the binaries it fails in CI and
// skips elsewhere.
func startLab(t *testing.T, nodes int) (*lab.Lab, client.Client) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("the lab needs root, and CI runs as root")
		}
		t.Skip("the lab needs root")
	}
	_, file, _, _ := runtime.Caller(0)
	bin, err := lab.BinariesIn(filepath.Join(filepath.Dir(file), "..", "..", "bin"))
	if err != nil {
		if ci {
			t.Fatalf("%v (make tools build)", err)
		}
		t.Skipf("%v (run make tools build)", err)
	}
	name := fmt.Sprintf("s%04d", time.Now().UnixNano()%10000)
	l, err := lab.Start(context.Background(), lab.Options{Name: name, Nodes: nodes, Dir: t.TempDir(), Bin: bin, Log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), "ironlb-e2e-"+name)
			if err := os.CopyFS(keep, os.DirFS(l.Dir)); err == nil {
				t.Logf("the lab's logs are kept in %s", keep)
			}
		}
		pids := l.Processes() // restarted speakers included
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := lab.Leftovers(name); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d of the lab survived its teardown", pid)
			}
		}
	})
	for node, state := range l.Speakers {
		if state != "ready" {
			t.Fatalf("speaker on %s: %s", node, state)
		}
	}
	scheme := clientgoscheme.Scheme
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

// eventually polls cond until it holds; the minute is a guard against a
// hung test, not a measure of speed.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	last := ""
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %s", what, last)
}
