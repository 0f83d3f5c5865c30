// Package testenv runs a real etcd and kube-apiserver, with ironlb's CRDs
// installed, for integration tests. The binaries come from the folder named
// by KUBEBUILDER_ASSETS or, by default, the repository's bin/ (make tools).
//
// Outside CI a machine without the binaries skips these tests and says why;
// with CI=true it fails them.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	// Client knows the core kinds and ironlb's.
	Client client.Client
	env    *envtest.Environment
}

var (
	once     sync.Once
	shared   *Env
	startErr error
)

var errMissing = errors.New("control-plane binaries missing")

// Get returns the package's shared control plane, starting it on first use.
func Get(tb testing.TB) *Env {
	tb.Helper()
	once.Do(func() { shared, startErr = start() })
	if startErr != nil {
		if errors.Is(startErr, errMissing) && os.Getenv("CI") != "true" {
			tb.Skipf("skipping integration test: %v (run `make tools`)", startErr)
		}
		tb.Fatalf("starting the control plane: %v", startErr)
	}
	return shared
}

// Main runs the tests of a package and stops the control plane afterwards.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the shared control plane, if one was started. For a TestMain
// that has more to do after m.Run than Main does.
func Stop() {
	if shared != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
		shared = nil
	}
}

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func start() (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%w: %s not in %s", errMissing, b, assets)
		}
	}
	sch := scheme.Scheme
	if err := v1alpha1.AddToScheme(sch); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd")},
		ErrorIfCRDPathMissing: true,
		Scheme:                sch,
	}
	// Dual-stack ClusterIPs from the design's test ranges, so tests can make
	// IPv6 and dual-stack Services.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "198.18.0.0/16,2001:db8:ffff::/112")
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: sch})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, env: env}, nil
}
