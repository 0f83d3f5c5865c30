package assigner

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/internal/cmdutil"
	"github.com/ironlb/ironlb/internal/kube"
)

// RunOptions are everything Run needs besides the API server.
type RunOptions struct {
	Options
	LeaderElect    bool
	LeaseNamespace string
	LeaseName      string
	// LeaseIdentity is who holds the Lease: the pod's name, so that a
	// controller that crashed and restarts in the same pod takes its Lease
	// back at once rather than after LeaseDuration (no other process can
	// hold the name: a pod's containers restart one after the other's
	// death). Empty means a new identity per process, which always waits.
	LeaseIdentity string
	// crash, when set (tests), stops Run without giving the Lease up, as a
	// killed process does.
	crash bool
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// zero values take controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddr is where /metrics is served ("0": nowhere), and
	// MetricsServing how it is protected (the zero value: HTTPS for
	// callers the API server authorizes).
	MetricsAddr    string
	MetricsServing cmdutil.MetricsServing
	HealthAddr     string
}

// Run runs the controller until ctx ends. With leader election, only the
// replica holding the Lease reconciles and writes; on a graceful stop it
// gives the Lease up so another replica takes over at once.
func Run(ctx context.Context, cfg *rest.Config, o RunOptions) error {
	// The manager logs through this logger; the package-level loggers of
	// controller-runtime and klog are the binary's to set, once, at start
	// (cmdutil.BridgeLoggers).
	logger := logr.FromSlogHandler(o.Log.Handler())
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return err
	}
	metricsOpts, err := o.MetricsServing.ServerOptions(o.MetricsAddr)
	if err != nil {
		return err
	}
	mgrOpts := ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logger,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.HealthAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaseName,
		LeaderElectionNamespace:       o.LeaseNamespace,
		LeaderElectionReleaseOnCancel: !o.crash,
		Cache:                         kube.CacheOptions(),
	}
	if o.LeaseDuration > 0 {
		mgrOpts.LeaseDuration, mgrOpts.RenewDeadline, mgrOpts.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
	}
	if o.LeaderElect && o.LeaseIdentity != "" {
		lock, err := leaseLock(cfg, o)
		if err != nil {
			return err
		}
		mgrOpts.LeaderElectionResourceLockInterface = lock
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if o.Events == nil {
		o.Events = mgr.GetEventRecorder("ironlb-controller")
	}
	if o.Registry == nil {
		o.Registry = ctrlmetrics.Registry
	}
	c := New(o.Options)
	if err := c.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	o.Log.Info("starting", "class", o.Class.Name, "requireClass", o.Class.Require, "leaderElection", o.LeaderElect, "leaseIdentity", o.LeaseIdentity, "configFile", o.Static != nil)
	return mgr.Start(ctx)
}

// leaseLock is the Lease controller-runtime would make, held under
// o.LeaseIdentity instead of a new name per process.
func leaseLock(cfg *rest.Config, o RunOptions) (resourcelock.Interface, error) {
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election") // the caller's config is shared
	// One hung request must not outlast the renew deadline (as
	// controller-runtime does it).
	renew := o.RenewDeadline
	if renew == 0 {
		renew = 10 * time.Second
	}
	cfg.Timeout = max(renew/2, time.Second)
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	coord, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return resourcelock.New(resourcelock.LeasesResourceLock, o.LeaseNamespace, o.LeaseName, core, coord,
		resourcelock.ResourceLockConfig{Identity: o.LeaseIdentity})
}
