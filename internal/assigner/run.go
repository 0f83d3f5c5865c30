package controller

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ironlb/ironlb/internal/cmdutil"
)

// RunOptions are everything Run needs besides the API server.
type RunOptions struct {
	Options
	LeaderElect    bool
	LeaseNamespace string
	LeaseName      string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// zero values take controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	MetricsAddr                               string
	HealthAddr                                string
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
	mgrOpts := ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logger,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.HealthAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaseName,
		LeaderElectionNamespace:       o.LeaseNamespace,
		LeaderElectionReleaseOnCancel: true,
	}
	if o.LeaseDuration > 0 {
		mgrOpts.LeaseDuration, mgrOpts.RenewDeadline, mgrOpts.RetryPeriod = &o.LeaseDuration, &o.RenewDeadline, &o.RetryPeriod
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if o.Events == nil {
		o.Events = mgr.GetEventRecorder("ironlb-controller")
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
	o.Log.Info("starting", "class", o.Class.Name, "requireClass", o.Class.Require, "leaderElection", o.LeaderElect, "configFile", o.Static != nil)
	return mgr.Start(ctx)
}
