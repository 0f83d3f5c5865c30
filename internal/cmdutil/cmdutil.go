// Package cmdutil holds what the controller and speaker share: the logger
// they build from flags, the check of a --config-file, how they reach the
// API server and the scheme they read it with.
package cmdutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configfile"
)

// LogOptions are the logging flags of both binaries.
type LogOptions struct {
	Level  string
	Format string
}

// AddFlags registers the logging flags.
func (o *LogOptions) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", "text", "log format: text or json")
}

// APIOptions are the API client flags of both binaries.
type APIOptions struct {
	QPS   float64
	Burst int
}

// AddFlags registers the API client flags with a binary's defaults.
// client-go's own default (5 requests a second) would let a controller
// assign only about five Services a second, and slow a speaker's status and
// events as much. A negative qps turns the client's limiter off: the API
// server's priority and fairness then sets the pace.
func (o *APIOptions) AddFlags(fs *flag.FlagSet, qps float64, burst int) {
	fs.Float64Var(&o.QPS, "kube-api-qps", qps, "requests a second this binary may send the API server, sustained; -1 sends as fast as the API server's priority and fairness admits")
	fs.IntVar(&o.Burst, "kube-api-burst", burst, "requests this binary may send the API server in a burst above --kube-api-qps")
}

// Logger builds the one logger a binary uses.
func (o *LogOptions) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: must be debug, info, warn or error", o.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.Format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be text or json", o.Format)
}

// BridgeLoggers sends the logs of controller-runtime, client-go and klog
// through the binary's logger. Call it once at start, before any client is
// made: klog's logger may not change while it is in use.
func BridgeLoggers(log *slog.Logger) {
	l := logr.FromSlogHandler(log.Handler())
	ctrllog.SetLogger(l)
	klog.SetLogger(l)
}

// CheckConfigFile loads and resolves a configuration file and logs every
// refused document and invalid object. It fails only when the file cannot
// be read at all: like the cluster source, a file with some bad objects
// still configures the good ones.
func CheckConfigFile(ctx context.Context, log *slog.Logger, path string) (*config.Config, error) {
	loader, err := configfile.New()
	if err != nil {
		return nil, err
	}
	snap, err := loader.LoadFile(ctx, path)
	var derr *configfile.DocumentError
	if err != nil && !errors.As(err, &derr) {
		return nil, fmt.Errorf("--config-file: %w", err)
	}
	for _, e := range unjoin(err) {
		log.Error("configuration document refused", "error", e)
	}
	cfg, problems := config.Resolve(snap)
	for _, p := range problems {
		log.Error("configuration object invalid", "kind", p.Kind, "name", p.Name, "field", p.Field, "error", p.Err)
	}
	log.Info("configuration file loaded", "path", path, "pools", len(cfg.Pools), "l2Advertisements", len(cfg.L2Advertisements),
		"bgpPeers", len(cfg.BGPPeers), "bgpAdvertisements", len(cfg.BGPAdvertisements))
	return cfg, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// Start does what both binaries do first: it builds the logger (and routes
// the libraries' loggers through it), loads --config-file when given, and
// reads the kubeconfig (empty: in-cluster) with the client's rate limits.
func Start(ctx context.Context, lo LogOptions, ao APIOptions, configFile, kubeconfig string) (*slog.Logger, *config.Config, *rest.Config, error) {
	log, err := lo.Logger(os.Stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	if ao.QPS == 0 || (ao.QPS < 0 && ao.QPS != -1) || ao.Burst < 1 {
		return nil, nil, nil, fmt.Errorf("--kube-api-qps (%g) must be positive or -1 (no client-side limit) and --kube-api-burst (%d) at least 1", ao.QPS, ao.Burst)
	}
	BridgeLoggers(log)
	var static *config.Config
	if configFile != "" {
		if static, err = CheckConfigFile(ctx, log, configFile); err != nil {
			return nil, nil, nil, err
		}
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	restCfg.QPS, restCfg.Burst = float32(ao.QPS), ao.Burst
	return log, static, restCfg, nil
}

// Scheme knows the core kinds and ironlb's.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}
