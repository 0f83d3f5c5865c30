// Package buildinfo tells which build of ironlb a binary is: its version
// and source revision, set by the linker or else read from what the Go
// toolchain recorded in the binary, and the Go version it was built with.
// Both binaries serve it as the metric ironlb_build_info and log it at
// start.
package buildinfo

import (
	"errors"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version and Revision, when not empty, are the build's version and
// source revision as the release process sets them:
//
//	go build -ldflags "-X github.com/ironlb/ironlb/internal/buildinfo.Version=v0.4.0 \
//	  -X github.com/ironlb/ironlb/internal/buildinfo.Revision=$(git rev-parse HEAD)" ./controller
//
// Empty ones are taken from the binary's build information (the module
// version and vcs.revision that go build stamps in a git checkout).
// They are variables only so that the linker can set them; nothing
// else writes them.
var (
	Version  string
	Revision string
)

// Unknown stands for a value the build did not record.
const Unknown = "unknown"

// Info describes a build.
type Info struct {
	Version   string
	Revision  string
	GoVersion string
}

// Get returns this binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(Version, Revision, bi)
}

// From works out a build's Info from the linker's values (empty when not
// set) and the toolchain's build information (nil when absent). A
// revision built from a checkout with uncommitted changes ends in
// "-dirty". It is pure.
func From(version, revision string, bi *debug.BuildInfo) Info {
	i := Info{Version: version, Revision: revision, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Revision == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "-dirty"
			}
			i.Revision = rev
		}
	}
	if i.Version == "" {
		i.Version = Unknown
	}
	if i.Revision == "" {
		i.Revision = Unknown
	}
	return i
}

// Collector returns the gauge ironlb_build_info: always 1, with the
// build's version, revision and goversion as labels.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ironlb_build_info",
		Help: "Always 1; the labels tell which build of ironlb this is (version, source revision, Go version).",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(i.Version, i.Revision, i.GoVersion).Set(1)
	return g
}

// Register adds ironlb_build_info for i to reg. A registry that serves it
// already (a binary's run started twice in one process, as tests do) is
// left as it is.
func (i Info) Register(reg prometheus.Registerer) error {
	err := reg.Register(i.Collector())
	if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
		return nil
	}
	return err
}

// LogAttrs are the build's fields for a log line.
func (i Info) LogAttrs() []any {
	return []any{"version", i.Version, "revision", i.Revision, "goversion", i.GoVersion}
}
