package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFrom(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Main:      debug.Module{Path: "github.com/ironlb/ironlb", Version: "v0.3.1-0.20260101000000-0123456789ab"},
		Settings:  []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "false"}},
	}
	dirty := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Main:      debug.Module{Path: "github.com/ironlb/ironlb", Version: "(devel)"},
		Settings:  []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}},
	}
	for _, tt := range []struct {
		name              string
		version, revision string
		bi                *debug.BuildInfo
		want              Info
	}{
		{"stamped by go build", "", "", stamped, Info{"v0.3.1-0.20260101000000-0123456789ab", "0123456789abcdef", "go1.26.1"}},
		{"the linker wins", "v0.4.0", "fedcba", stamped, Info{"v0.4.0", "fedcba", "go1.26.1"}},
		{"uncommitted changes", "", "", dirty, Info{Unknown, "0123456789abcdef-dirty", "go1.26.1"}},
		{"no build information", "", "", nil, Info{Unknown, Unknown, runtime.Version()}},
		{"nothing recorded", "", "", &debug.BuildInfo{}, Info{Unknown, Unknown, runtime.Version()}},
	} {
		if got := From(tt.version, tt.revision, tt.bi); got != tt.want {
			t.Errorf("%s: From = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	i := Info{Version: "v0.4.0", Revision: "fedcba", GoVersion: "go1.26.1"}
	if err := i.Register(reg); err != nil {
		t.Fatal(err)
	}
	// Twice in one process (a binary's run started again): no error.
	if err := i.Register(reg); err != nil {
		t.Errorf("registering again: %v", err)
	}
	want := `# HELP ironlb_build_info Always 1; the labels tell which build of ironlb this is (version, source revision, Go version).
# TYPE ironlb_build_info gauge
ironlb_build_info{goversion="go1.26.1",revision="fedcba",version="v0.4.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ironlb_build_info"); err != nil {
		t.Error(err)
	}
}
