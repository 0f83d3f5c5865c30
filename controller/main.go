// Command controller assigns addresses from ironlb's pools to Services of
// type LoadBalancer. It parses its flags into Options and runs
// internal/assigner.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/buildinfo"
	"github.com/ironlb/ironlb/internal/cmdutil"
)

// Options are the controller's settings, from flags.
type Options struct {
	Kubeconfig     string
	ConfigFile     string
	LBClass        string
	RequireClass   bool
	LeaderElect    bool
	LeaseNamespace string
	LeaseName      string
	LeaseIdentity  string
	MetricsAddr    string
	Metrics        cmdutil.MetricsServing
	HealthAddr     string
	ServiceCIDRs   []netip.Prefix
	Log            cmdutil.LogOptions
	API            cmdutil.APIOptions
}

func (o *Options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty means in-cluster configuration")
	fs.StringVar(&o.ConfigFile, "config-file", "", "read IPPools and advertisements from this multi-document YAML file instead of the cluster's custom resources")
	fs.StringVar(&o.LBClass, "lb-class", "ironlb.io/lb", "spec.loadBalancerClass of the Services this controller handles")
	fs.BoolVar(&o.RequireClass, "require-class", false, "handle only Services whose loadBalancerClass is --lb-class, not those without a class")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "elect a leader with a Lease so that several replicas can run and only one writes")
	fs.StringVar(&o.LeaseNamespace, "leader-election-namespace", "ironlb-system", "namespace of the leader election Lease")
	fs.StringVar(&o.LeaseName, "leader-election-id", "ironlb-controller", "name of the leader election Lease")
	fs.StringVar(&o.LeaseIdentity, "leader-election-identity", os.Getenv("POD_NAME"), "who holds the Lease (default: $POD_NAME): a controller restarted in the same pod after a crash takes its Lease back at once; empty makes up a new identity per process, which waits for the Lease to expire")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":7472", "address of the Prometheus metrics endpoint (/metrics, HTTPS for callers the API server authorizes unless --metrics-insecure); 0 disables it")
	o.Metrics.AddFlags(fs)
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", ":7473", "address of the /healthz and /readyz endpoints")
	fs.Func("service-cidrs", "the cluster's Service CIDRs, comma-separated (198.18.0.0/16,2001:db8:ffff::/112): no Service gets an address inside them. Needed only where the API server serves no networking.k8s.io/v1 ServiceCIDR objects, which are read otherwise", o.parseServiceCIDRs)
	o.Log.AddFlags(fs)
	// No client-side limit: a controller catching up with thousands of
	// Services (after an upgrade, a crash, a restore) writes as fast as the
	// API server's priority and fairness admits, which protects the server
	// (docs/configuration.md).
	o.API.AddFlags(fs, -1, 100)
}

// parseServiceCIDRs parses the value of --service-cidrs.
func (o *Options) parseServiceCIDRs(v string) error {
	o.ServiceCIDRs = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return fmt.Errorf("%q is not a CIDR: write IPv4 or IPv6 CIDRs separated by commas, such as 198.18.0.0/16,2001:db8:ffff::/112", s)
		}
		o.ServiceCIDRs = append(o.ServiceCIDRs, p.Masked())
	}
	return nil
}

func (o *Options) validate() error {
	var errs []error
	if o.LBClass == "" {
		errs = append(errs, errors.New("--lb-class must not be empty"))
	}
	if o.LeaderElect && (o.LeaseNamespace == "" || o.LeaseName == "") {
		errs = append(errs, errors.New("--leader-election-namespace and --leader-election-id must be set with --leader-elect"))
	}
	errs = append(errs, o.Metrics.Validate())
	return errors.Join(errs...)
}

func main() {
	var o Options
	fs := flag.NewFlagSet("controller", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: controller [flags]\n\nAssigns addresses from ironlb's IPPools to Services of type LoadBalancer.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	o.addFlags(fs)
	_ = fs.Parse(os.Args[1:])
	if err := run(context.Background(), &o); err != nil {
		fmt.Fprintf(os.Stderr, "controller: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	log, static, restCfg, err := cmdutil.Start(ctx, o.Log, o.API, o.ConfigFile, o.Kubeconfig)
	if err != nil {
		return err
	}
	o.Metrics.WarnInsecure(log, o.MetricsAddr)
	// The manager serves controller-runtime's registry, where the rest of
	// the binary's metrics go too.
	build := buildinfo.Get()
	log.Info("ironlb controller", build.LogAttrs()...)
	if err := build.Register(ctrlmetrics.Registry); err != nil {
		return fmt.Errorf("registering ironlb_build_info: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return assigner.Run(ctx, restCfg, assigner.RunOptions{
		Options: assigner.Options{
			Class:        assigner.Class{Name: o.LBClass, Require: o.RequireClass},
			Static:       static,
			Log:          log,
			ServiceCIDRs: o.ServiceCIDRs,
		},
		LeaderElect:    o.LeaderElect,
		LeaseNamespace: o.LeaseNamespace,
		LeaseName:      o.LeaseName,
		LeaseIdentity:  o.LeaseIdentity,
		MetricsAddr:    o.MetricsAddr,
		MetricsServing: o.Metrics,
		HealthAddr:     o.HealthAddr,
	})
}
