package layer2

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/ironlb/ironlb/internal/testutil"
)

// TestSkippedLoggedOnce: the interfaces left out by default are logged at
// Info once, when an address first wants every interface, with at most
// maxSkippedLogged names per reason; afterwards only newcomers, at Debug,
// and nothing when nothing changed.
func TestSkippedLoggedOnce(t *testing.T) {
	var buf testutil.SyncBuffer
	a := New(Options{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	links := testLinks()
	for i := range 30 {
		links = append(links, link{Name: fmt.Sprintf("veth%03d", i), Index: 100 + i, Up: true, Kind: "veth", MAC: mac("02:00:00:00:01:00")})
	}
	lines := func(msg string) []string {
		var out []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, msg) {
				out = append(out, l)
			}
		}
		return out
	}
	const info, debug = "interfaces not answered on unless an L2Advertisement names them", "more interfaces not answered on"
	v4 := netip.MustParseAddr("203.0.113.65")

	a.desired = map[netip.Addr][]string{v4: {"eth0"}}
	a.logSkippedLocked(links)
	if got := lines(info); len(got) != 0 {
		t.Errorf("logged with only named interfaces wanted: %v", got)
	}

	a.desired = map[netip.Addr][]string{v4: nil}
	for range 3 {
		a.logSkippedLocked(links)
	}
	got := lines(info)
	if len(got) != 1 {
		t.Fatalf("%d Info lines after three syncs, want 1:\n%s", len(got), buf.String())
	}
	for _, want := range []string{"count=36", "cni0", "kube-ipvs0", "veth018", "and 11 more"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("Info line lacks %q: %s", want, got[0])
		}
	}
	if strings.Contains(got[0], "veth019") {
		t.Errorf("Info line lists more than %d names for a reason: %s", maxSkippedLogged, got[0])
	}

	links = append(links, link{Name: "cali99", Index: 200, Up: true, Kind: "veth", MAC: mac("02:00:00:00:02:00")})
	a.logSkippedLocked(links)
	a.logSkippedLocked(links)
	if d := lines(debug); len(d) != 1 || !strings.Contains(d[0], "cali99") || strings.Contains(d[0], "veth000") {
		t.Errorf("Debug lines for a new pod's veth: %v, want one naming cali99 only", d)
	}
	if n := len(lines(info)); n != 1 {
		t.Errorf("%d Info lines, want still 1", n)
	}
}
