package layer2

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdlayher/arp"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ironlb/ironlb/internal/testutil"
)

// TestConflictStateSteps walks the limiter's decision through a sequence
// of conflicts about one address at given times.
func TestConflictStateSteps(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at             time.Duration
		warn           bool
		suppressedSeen int // reported with the warning
	}{
		{0, true, 0}, // the first is logged at once
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{time.Minute - time.Nanosecond, false, 0},
		{time.Minute, true, 3}, // a minute after the last warning, with the three not logged
		{time.Minute + time.Second, false, 0},
		{10 * time.Minute, true, 1},
		{10*time.Minute + 1, false, 0},
	}
	var st conflictState
	for i, s := range steps {
		warn, suppressed, after := st.next(t0.Add(s.at), time.Minute)
		if warn != s.warn || suppressed != s.suppressedSeen {
			t.Errorf("step %d (+%v): warn %v with %d suppressed, want %v with %d", i, s.at, warn, suppressed, s.warn, s.suppressedSeen)
		}
		st = after
	}
}

// TestConflictFlood: a flood of spoofed gratuitous ARPs from another MAC,
// on two interfaces, for two owned addresses, is counted in full in
// ironlb_l2_conflicts_total but logged once per address per
// conflictInterval, the next warning saying how many were not logged.
// Announcements a handoff expects, and our own MACs', are neither.
// Time is synctest's fake clock.
func TestConflictFlood(t *testing.T) {
	a := netip.MustParseAddr("203.0.113.65")
	b := netip.MustParseAddr("203.0.113.66")
	ourOther := mac("02:00:00:00:00:ab") // another interface of this node
	synctest.Test(t, func(t *testing.T) {
		var logBuf testutil.SyncBuffer
		log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn}))
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		conflicts := newConflictLog(log, conflictInterval)
		handoff := netip.MustParseAddr("203.0.113.67")
		var conns []*fakeConn
		for _, ifname := range []string{"eth0", "eth1"} {
			conn := newFakeConn()
			conns = append(conns, conn)
			r := newResponder(responderConfig{
				key: key{name: ifname, fam: ipv4}, mac: ourMAC, conn: conn, log: log, metrics: m,
				local:     func(m net.HardwareAddr) bool { return m.String() == ourOther.String() },
				claimed:   func(addr netip.Addr, _ net.HardwareAddr) bool { return addr == handoff },
				conflicts: conflicts,
			})
			r.start()
			defer r.close()
			mustUpdate(t, r, a, b, handoff)
		}
		claim := func(conn *fakeConn, addr netip.Addr, from net.HardwareAddr) {
			conn.push(t, arpFrame(t, arp.OperationRequest, from, addr, addr, nil))
		}
		warnings := func() []string {
			synctest.Wait()
			var out []string
			for _, l := range strings.Split(logBuf.String(), "\n") {
				if strings.Contains(l, "another host announces") {
					out = append(out, l)
				}
			}
			return out
		}
		conflictsOn := func(ifname string) float64 {
			return promtest.ToFloat64(m.conflicts.WithLabelValues(ifname, "ipv4"))
		}

		const flood = 500
		for range flood {
			claim(conns[0], a, theirMAC)
			claim(conns[1], a, theirMAC)
		}
		claim(conns[1], b, theirMAC)
		for range 10 { // neither conflicts nor logged
			claim(conns[0], handoff, theirMAC)
			claim(conns[0], a, ourOther)
		}
		w := warnings()
		if len(w) != 2 || !strings.Contains(w[0], "address="+a.String()) || !strings.Contains(w[1], "address="+b.String()) {
			t.Fatalf("after the flood, warnings:\n%s\nwant one for %s and one for %s", strings.Join(w, "\n"), a, b)
		}
		if !strings.Contains(w[0], "notLoggedSinceLastWarning=0") || !strings.Contains(w[0], "mac="+theirMAC.String()) {
			t.Errorf("first warning: %s", w[0])
		}
		if got := []float64{conflictsOn("eth0"), conflictsOn("eth1")}; got[0] != flood || got[1] != flood+1 {
			t.Errorf("conflicts counted on eth0, eth1: %v, want %d, %d", got, flood, flood+1)
		}

		// Just before the interval ends, still nothing new; once it
		// has, the next conflict is logged with the count held back.
		time.Sleep(conflictInterval - time.Nanosecond)
		claim(conns[0], a, theirMAC)
		if w := warnings(); len(w) != 2 {
			t.Fatalf("a warning before the interval passed:\n%s", strings.Join(w, "\n"))
		}
		time.Sleep(time.Nanosecond)
		claim(conns[1], a, theirMAC)
		w = warnings()
		if len(w) != 3 || !strings.Contains(w[2], "address="+a.String()) {
			t.Fatalf("after the interval, warnings:\n%s\nwant a third for %s", strings.Join(w, "\n"), a)
		}
		notLogged := regexp.MustCompile(`notLoggedSinceLastWarning=(\d+)`).FindStringSubmatch(w[2])
		if want := fmt.Sprint(2*flood - 1 + 1); notLogged == nil || notLogged[1] != want {
			t.Errorf("third warning %q: want notLoggedSinceLastWarning=%s", w[2], want)
		}
		if got := conflictsOn("eth0") + conflictsOn("eth1"); got != 2*flood+3 {
			t.Errorf("conflicts counted: %v, want %d", got, 2*flood+3)
		}

		// b is lost with nothing held back: forgotten quietly. a is
		// lost with one held back: that is logged.
		claim(conns[0], a, theirMAC)
		synctest.Wait()
		conflicts.forget(func(netip.Addr) bool { return false })
		if !strings.Contains(logBuf.String(), "not logged before the address was lost") {
			t.Errorf("the held-back conflict of a lost address was not logged:\n%s", logBuf.String())
		}
		if n := strings.Count(logBuf.String(), "not logged before the address was lost"); n != 1 {
			t.Errorf("%d lines about lost addresses, want 1 (for %s only)", n, a)
		}
	})
}

// TestMetricsForget: a responder's series go when it closes for good, and
// the other interfaces' stay.
func TestMetricsForget(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	eth0, eth1 := key{name: "eth0", fam: ipv4}, key{name: "eth1", fam: ipv4}
	eth1v6 := key{name: "eth1", fam: ipv6}
	for _, k := range []key{eth0, eth1, eth1v6} {
		m.answer(k)
		m.announce(k)
		m.conflict(k)
	}
	m.forget(eth1)
	for _, v := range []*prometheus.CounterVec{m.answered, m.gratuitous, m.conflicts} {
		if n := promtest.CollectAndCount(v); n != 2 {
			t.Errorf("%d series left, want eth0/ipv4 and eth1/ipv6", n)
		}
	}
	if got := promtest.ToFloat64(m.answered.WithLabelValues("eth0", "ipv4")); got != 1 {
		t.Errorf("eth0's count is %v after eth1 was forgotten, want 1", got)
	}
	var none *Metrics
	none.forget(eth0) // nil-safe
}
