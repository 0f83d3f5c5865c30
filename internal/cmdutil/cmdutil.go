// Package cmdutil holds what the controller and speaker mains share: the
// logger they build from flags, and the check of a --config-file.
package cmdutil

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

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
