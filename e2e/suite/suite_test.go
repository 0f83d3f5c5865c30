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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// startLab brings up a lab of n nodes for one test and, when the test
// ends, tears it down and checks that no namespace, mount, interface or
// process of it is left. Its speakers run with speakerArgs added to the
// chart's arguments. The controller and the speakers run from the images
// of make images, or from the binaries with IRONLB_LAB_RUNTIME=binary.
// Without root, the binaries or the images it fails in CI and skips
// elsewhere.
func startLab(t *testing.T, nodes int, speakerArgs ...string) (*lab.Lab, client.Client) {
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
	rt, err := lab.ParseRuntime(os.Getenv(lab.RuntimeEnv))
	if err != nil {
		t.Fatal(err)
	}
	if rt == lab.RuntimeImage {
		if _, err := bin.ImageArchives(); err != nil {
			if ci {
				t.Fatalf("%v", err)
			}
			t.Skipf("%v", err)
		}
	}
	name := fmt.Sprintf("s%04d", time.Now().UnixNano()%10000)
	l, err := lab.Start(context.Background(), lab.Options{Name: name, Nodes: nodes, Dir: t.TempDir(), Bin: bin, Log: slog.Default(), SpeakerArgs: speakerArgs, Runtime: rt})
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
		// ironlb runs with the chart's RBAC: a refused request means the
		// chart lacks a permission the code needs.
		for _, line := range l.Forbidden() {
			t.Errorf("refused for want of permission: %s", line)
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
	// A scheme of its own: client-go's global one is in use by the lab's
	// clients already.
	scheme := kruntime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
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

// createPods creates n pods labelled app=<app>, named <app>-0 onwards, in
// the default namespace, once its ServiceAccount exists; the node agent
// binds them to nodes round-robin and serves HTTP from them.
func createPods(t *testing.T, c client.Client, app string, n int) {
	t.Helper()
	ctx := context.Background()
	testutil.Eventually(t, "the default ServiceAccount", func() (bool, string) {
		var sa corev1.ServiceAccount
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "default"}, &sa)
		return err == nil, fmt.Sprint(err)
	})
	no := false
	for i := range n {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("%s-%d", app, i), Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: &no, Containers: []corev1.Container{{Name: app, Image: "none"}}}}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
}
