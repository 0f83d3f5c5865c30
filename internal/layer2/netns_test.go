package layer2

// Network tests: real namespaces, a bridge, veth pairs, the kernel and
// arping/ndisc6 as clients, and a real Announcer in a speaker namespace.
//
// The Announcer must create its sockets and netlink subscriptions inside
// the speaker's namespace, and a namespace belongs to an OS thread, not to
// a goroutine. So the test binary re-executes itself under
// `ip netns exec <ns>`: the whole child process lives in the namespace and
// runs the production code unchanged (runHelper), taking Set commands as
// JSON lines on stdin and answering with Set's error and Announced().

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/testutil"
)

// helperEnv, when set, makes the test binary the speaker helper.
const helperEnv = "IRONLB_L2_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type helperCommand struct {
	Op      string                  `json:"op"` // "set", "announced" or "state"
	Desired map[netip.Addr][]string `json:"desired,omitempty"`
}

type helperResult struct {
	Err             string                  `json:"err,omitempty"`
	NoSuchInterface bool                    `json:"noSuchInterface,omitempty"`
	NoLinkLocal     bool                    `json:"noLinkLocal,omitempty"`
	Announced       map[netip.Addr][]string `json:"announced"`
	// For "state": the process's goroutines, and the announcer's metric
	// series with an interface label, as "name{interface/family}".
	Goroutines int      `json:"goroutines,omitempty"`
	Series     []string `json:"series,omitempty"`
}

// runHelper runs a real Announcer in the process's namespace until in
// ends, then checks that Run returns.
func runHelper(in io.Reader, out, logw io.Writer) int {
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	a := New(Options{Log: log, Metrics: NewMetrics(reg), GratuitousInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	err := testutil.ServeCommands(in, out, func(c helperCommand) (any, error) {
		var r helperResult
		if c.Op == "set" {
			if err := a.Set(c.Desired); err != nil {
				r.Err, r.NoSuchInterface, r.NoLinkLocal = err.Error(), errors.Is(err, ErrNoSuchInterface), errors.Is(err, ErrNoLinkLocal)
			}
		}
		r.Announced = a.Announced()
		if c.Op == "state" {
			r.Goroutines = runtime.NumGoroutine()
			var err error
			if r.Series, err = interfaceSeries(reg); err != nil {
				return nil, err
			}
		}
		return r, nil
	})
	if err != nil {
		log.Error("helper", "error", err)
		return 2
	}
	cancel()
	if err := <-ran; err != nil {
		log.Error("helper: Run", "error", err)
		return 1
	}
	if got := a.Announced(); len(got) != 0 {
		log.Error("helper: still announcing after Run returned", "announced", got)
		return 1
	}
	return 0
}

// interfaceSeries lists reg's series that have an interface label.
func interfaceSeries(reg *prometheus.Registry) ([]string, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if ifname, ok := labels["interface"]; ok {
				out = append(out, fmt.Sprintf("%s{%s/%s}", mf.GetName(), ifname, labels["family"]))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// needNet skips (outside CI) or fails (in CI) a test that lacks root or a
// tool.
func needNet(t *testing.T) {
	t.Helper()
	testutil.NeedNet(t, "ip", "ping", "arping", "ndisc6")
}

// try runs a command in a namespace and returns its output, whatever its
// exit status (ping and arping fail when nobody answers).
func try(ns string, args ...string) string {
	out, _ := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out)
}

var topoSeq atomic.Int64

// topo is a LAN: a bridge in a namespace of its own, and hosts in
// namespaces whose eth0 is a veth onto the bridge.
type topo struct {
	t      *testing.T
	prefix string
	bridge string
}

// newTopo makes the bridge namespace. Names carry the test process's pid,
// so parallel test binaries do not collide, and leftovers of dead
// processes are removed first.
func newTopo(t *testing.T) *topo {
	t.Helper()
	testutil.RemoveLeftoverNetNS(t, "l2t")
	tp := &topo{t: t, prefix: fmt.Sprintf("l2t%dx%d", os.Getpid(), topoSeq.Add(1))}
	tp.bridge = tp.netns("br")
	testutil.Run(t, "ip", "-n", tp.bridge, "link", "add", "br0", "type", "bridge")
	testutil.Run(t, "ip", "-n", tp.bridge, "link", "set", "br0", "up")
	return tp
}

// netns makes a namespace that is deleted when the test ends, with its
// veths (deleting one end of a veth deletes the other).
func (tp *topo) netns(role string) string {
	ns := tp.prefix + "-" + role
	testutil.Run(tp.t, "ip", "netns", "add", ns)
	tp.t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	testutil.Run(tp.t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// host makes a namespace with eth0 on the LAN.
func (tp *topo) host(role, mac, v4, v6 string) string {
	ns := tp.netns(role)
	tp.plug(ns, "p"+role, "eth0", mac)
	testutil.Run(tp.t, "ip", "-n", ns, "addr", "add", v4, "dev", "eth0")
	testutil.Run(tp.t, "ip", "-n", ns, "addr", "add", v6, "dev", "eth0", "nodad")
	return ns
}

// plug adds an interface named ifname to ns, the other end of its veth
// being port on the bridge. Duplicate address detection is off so that
// the link-local address is usable at once; sysctls (names under
// net.ipv6.conf.<ifname>.) are set before the interface comes up.
func (tp *topo) plug(ns, port, ifname, mac string, sysctls ...string) {
	testutil.Run(tp.t, "ip", "-n", tp.bridge, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
	testutil.Run(tp.t, "ip", "-n", tp.bridge, "link", "set", port, "master", "br0", "up")
	for _, s := range append([]string{"accept_dad=0"}, sysctls...) {
		testutil.Run(tp.t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+ifname+"."+s)
	}
	testutil.Run(tp.t, "ip", "-n", ns, "link", "set", ifname, "address", mac, "up")
}

// client makes the client host, with on-link routes to the LB ranges.
func (tp *topo) client() string {
	ns := tp.host("c", macC, "198.51.100.2/24", "2001:db8:100::2/64")
	testutil.Run(tp.t, "ip", "-n", ns, "route", "add", "203.0.113.64/27", "dev", "eth0")
	testutil.Run(tp.t, "ip", "-n", ns, "-6", "route", "add", "2001:db8:ff00::/40", "dev", "eth0")
	return ns
}

// The test LAN's addresses.
const (
	macC = "02:00:00:00:00:0c"
	macA = "02:00:00:00:00:0a"
	macB = "02:00:00:00:00:0b"
)

var (
	lb4a = netip.MustParseAddr("203.0.113.65")
	lb4b = netip.MustParseAddr("203.0.113.66")
	lb4c = netip.MustParseAddr("203.0.113.67")
	lb6a = netip.MustParseAddr("2001:db8:ff00::10")
	lb6b = netip.MustParseAddr("2001:db8:ff01::10") // same solicited-node group as lb6a
	lb6c = netip.MustParseAddr("2001:db8:ff00::11")
)

// speaker is a helper process running an Announcer in a namespace.
type speaker struct {
	*testutil.Helper
	t  *testing.T
	ns string
}

func startSpeaker(t *testing.T, ns string) *speaker {
	t.Helper()
	return &speaker{Helper: testutil.StartHelper(t, "speaker in "+ns, ns, helperEnv+"=1"), t: t, ns: ns}
}

func (s *speaker) do(c helperCommand) helperResult {
	s.t.Helper()
	var r helperResult
	s.Do(c, &r)
	return r
}

// set calls Set and returns its error text and Announced() right after.
func (s *speaker) set(desired map[netip.Addr][]string) helperResult {
	s.t.Helper()
	return s.do(helperCommand{Op: "set", Desired: desired})
}

// state returns the helper's goroutine count and metric series.
func (s *speaker) state() helperResult {
	s.t.Helper()
	return s.do(helperCommand{Op: "state"})
}

// mustSet calls Set and fails on an error.
func (s *speaker) mustSet(desired map[netip.Addr][]string) {
	s.t.Helper()
	if r := s.set(desired); r.Err != "" {
		s.t.Fatalf("Set in %s: %s", s.ns, r.Err)
	}
}

// waitAnnounced polls Announced until it is want: Run opens responders
// asynchronously when Set came before Run started, or when an interface
// appears.
func (s *speaker) waitAnnounced(want map[netip.Addr][]string) {
	s.t.Helper()
	testutil.Eventually(s.t, "Announced() in "+s.ns, func() (bool, string) {
		got := s.do(helperCommand{Op: "announced"}).Announced
		diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }))
		return diff == "", "(-want +got)\n" + diff
	})
}

type neighbour struct {
	Dst    string   `json:"dst"`
	Lladdr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// neigh reads the kernel's neighbour entry for lb on eth0 in ns.
func neigh(t *testing.T, ns string, lb netip.Addr) (neighbour, string) {
	t.Helper()
	out := try(ns, "ip", "-j", "neigh", "show", lb.String(), "dev", "eth0")
	var ns_ []neighbour
	if err := json.Unmarshal([]byte(out), &ns_); err != nil {
		t.Fatalf("ip -j neigh: %v: %s", err, out)
	}
	if len(ns_) == 0 {
		return neighbour{}, "no entry"
	}
	return ns_[0], fmt.Sprintf("%+v", ns_[0])
}

// kernelResolves has the client's kernel resolve lb (a ping that nobody
// answers) and waits for the entry to name mac.
func kernelResolves(t *testing.T, client string, lb netip.Addr, mac string) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("client's kernel resolving %s to %s", lb, mac), func() (bool, string) {
		try(client, "ping", "-c1", "-W1", lb.String())
		n, seen := neigh(t, client, lb)
		usable := slices.ContainsFunc(n.State, func(s string) bool { return s == "REACHABLE" || s == "STALE" || s == "DELAY" })
		return n.Lladdr == mac && usable, seen
	})
}

// kernelFails flushes the client's entry for lb, lets the kernel try to
// resolve it, and fails if anyone answered.
func kernelFails(t *testing.T, client string, lb netip.Addr) {
	t.Helper()
	try(client, "ip", "neigh", "del", lb.String(), "dev", "eth0")
	try(client, "ping", "-c1", "-W1", lb.String())
	if n, seen := neigh(t, client, lb); n.Lladdr != "" {
		t.Errorf("client's kernel resolved %s: %s", lb, seen)
	}
}

var macRe = regexp.MustCompile(`(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b`)

// ask resolves lb with arping (IPv4, three requests) or ndisc6 (IPv6,
// every response to up to three solicitations) and counts the answers per
// MAC.
func ask(t *testing.T, client string, lb netip.Addr) (map[string]int, string) {
	t.Helper()
	return askOn(client, "eth0", lb)
}

func answeredOnlyBy(t *testing.T, client string, lb netip.Addr, mac string) {
	t.Helper()
	counts, out := ask(t, client, lb)
	if counts[mac] == 0 || len(counts) != 1 {
		t.Errorf("answers for %s per MAC: %v, want only %s\n%s", lb, counts, mac, out)
	}
}

// TestClientsResolve: a client's kernel, arping and ndisc6 resolve owned
// addresses to the speaker's MAC, also when the kernel checks a known
// entry with a unicast request or solicitation; a named interface that
// does not exist is reported by Set while the other addresses work.
func TestClientsResolve(t *testing.T) {
	needNet(t)
	t.Parallel()
	tp := newTopo(t)
	client := tp.client()
	a := tp.host("a", macA, "198.51.100.11/24", "2001:db8:100::11/64")
	sp := startSpeaker(t, a)

	r := sp.set(map[netip.Addr][]string{lb4a: nil, lb6a: {}, lb4b: {"eth7"}})
	if !r.NoSuchInterface || !strings.Contains(r.Err, `"eth7"`) || !strings.Contains(r.Err, lb4b.String()) {
		t.Errorf("Set with a missing interface: error %q, want ErrNoSuchInterface naming eth7 and %s", r.Err, lb4b)
	}
	sp.waitAnnounced(map[netip.Addr][]string{lb4a: {"eth0"}, lb6a: {"eth0"}})

	// Neighbour entries probed by the kernel wait one second, not five,
	// before their unicast check.
	for _, f := range []string{"ipv4", "ipv6"} {
		testutil.Run(t, "ip", "netns", "exec", client, "sysctl", "-qw", "net."+f+".neigh.eth0.delay_first_probe_time=1")
	}
	for _, lb := range []netip.Addr{lb4a, lb6a} {
		t.Run(lb.String(), func(t *testing.T) {
			kernelResolves(t, client, lb, macA)
			answeredOnlyBy(t, client, lb, macA)

			// A stale entry in use is checked with unicast requests
			// (RFC 4861 7.3.3; ARP alike), which must be answered too,
			// or the entry fails and traffic stalls until the next
			// broadcast resolution.
			testutil.Run(t, "ip", "-n", client, "neigh", "change", lb.String(), "dev", "eth0", "lladdr", macA, "nud", "stale")
			try(client, "ping", "-c1", "-W1", lb.String())
			testutil.Eventually(t, "unicast check of "+lb.String(), func() (bool, string) {
				n, seen := neigh(t, client, lb)
				if slices.Contains(n.State, "FAILED") {
					t.Fatalf("unicast check of %s failed: %s", lb, seen)
				}
				return slices.Contains(n.State, "REACHABLE") && n.Lladdr == macA, seen
			})
		})
	}
	// An ARP probe (RFC 5227: sender 0.0.0.0) for an owned address is
	// answered, so that the prober sees that the address is taken.
	out := try(client, "arping", "-0", "-c", "3", "-I", "eth0", lb4a.String())
	if !strings.Contains(strings.ToLower(out), "bytes from "+macA) {
		t.Errorf("ARP probe for %s not answered by %s:\n%s", lb4a, macA, out)
	}

	counts, out := ask(t, client, lb4b)
	if len(counts) != 0 {
		t.Errorf("%s, wanted only on the missing eth7, answered: %v\n%s", lb4b, counts, out)
	}
}

// TestOnlyTheOwnerAnswers: with two speakers on one LAN, each address is
// answered by its owner only, and after Set drops an address nobody
// answers.
func TestOnlyTheOwnerAnswers(t *testing.T) {
	needNet(t)
	t.Parallel()
	tp := newTopo(t)
	client := tp.client()
	spA := startSpeaker(t, tp.host("a", macA, "198.51.100.11/24", "2001:db8:100::11/64"))
	spB := startSpeaker(t, tp.host("b", macB, "198.51.100.12/24", "2001:db8:100::12/64"))

	// lb4c and lb6c are owned by both, which the planner never does: it
	// shows that the counting below sees a second answerer.
	spA.mustSet(map[netip.Addr][]string{lb4a: nil, lb6a: nil, lb4c: nil, lb6c: nil})
	spB.mustSet(map[netip.Addr][]string{lb4b: nil, lb6b: nil, lb4c: nil, lb6c: nil})
	spA.waitAnnounced(map[netip.Addr][]string{lb4a: {"eth0"}, lb6a: {"eth0"}, lb4c: {"eth0"}, lb6c: {"eth0"}})
	spB.waitAnnounced(map[netip.Addr][]string{lb4b: {"eth0"}, lb6b: {"eth0"}, lb4c: {"eth0"}, lb6c: {"eth0"}})

	for _, lb := range []netip.Addr{lb4c, lb6c} {
		counts, out := ask(t, client, lb)
		if counts[macA] == 0 || counts[macB] == 0 {
			t.Fatalf("calibration: %s owned by both got answers %v, want both MACs\n%s", lb, counts, out)
		}
	}
	owners := []struct {
		lb  netip.Addr
		mac string
	}{{lb4a, macA}, {lb4b, macB}, {lb6a, macA}, {lb6b, macB}}
	for _, o := range owners {
		answeredOnlyBy(t, client, o.lb, o.mac)
	}

	// A loses lb4a and lb6a: once Set has returned, nobody answers.
	if r := spA.set(map[netip.Addr][]string{lb4c: nil, lb6c: nil}); r.Err != "" {
		t.Fatal(r.Err)
	} else if _, ok := r.Announced[lb4a]; ok {
		t.Errorf("Announced right after Set still lists %s: %v", lb4a, r.Announced)
	}
	for _, lb := range []netip.Addr{lb4a, lb6a} {
		kernelFails(t, client, lb)
		if counts, out := ask(t, client, lb); len(counts) != 0 {
			t.Errorf("%s answered after its owner dropped it: %v\n%s", lb, counts, out)
		}
	}
	answeredOnlyBy(t, client, lb6b, macB) // its group is still joined by B
}

// TestGratuitousMovesNeighbours: when B gains an address from A, its
// gratuitous ARP / unsolicited NA moves the client's existing entry to B's
// MAC without the client asking.
func TestGratuitousMovesNeighbours(t *testing.T) {
	needNet(t)
	t.Parallel()
	tp := newTopo(t)
	client := tp.client()
	spA := startSpeaker(t, tp.host("a", macA, "198.51.100.11/24", "2001:db8:100::11/64"))
	spB := startSpeaker(t, tp.host("b", macB, "198.51.100.12/24", "2001:db8:100::12/64"))

	both := map[netip.Addr][]string{lb4a: nil, lb6a: nil}
	spA.mustSet(both)
	spA.waitAnnounced(map[netip.Addr][]string{lb4a: {"eth0"}, lb6a: {"eth0"}})
	for _, lb := range []netip.Addr{lb4a, lb6a} {
		kernelResolves(t, client, lb, macA)
		// STALE: the kernel sends nothing for it unless traffic flows,
		// and none does from here on.
		testutil.Run(t, "ip", "-n", client, "neigh", "change", lb.String(), "dev", "eth0", "lladdr", macA, "nud", "stale")
	}

	spA.mustSet(nil)
	spB.mustSet(both)
	for _, lb := range []netip.Addr{lb4a, lb6a} {
		testutil.Eventually(t, fmt.Sprintf("client's entry for %s moving to %s", lb, macB), func() (bool, string) {
			n, seen := neigh(t, client, lb)
			return n.Lladdr == macB, seen
		})
	}
}

// TestInterfaceComesAndGoes: a named interface missing at Set is used once
// it appears (without an IPv4 address of its own), dropped when deleted,
// and used again when it comes back, without further Set calls. It is a
// veth without an address, so an address wanted on every interface stays
// off it; and its metric series go with it.
func TestInterfaceComesAndGoes(t *testing.T) {
	needNet(t)
	t.Parallel()
	tp := newTopo(t)
	client := tp.client()
	a := tp.host("a", macA, "198.51.100.11/24", "2001:db8:100::11/64")
	sp := startSpeaker(t, a)
	const macEth1 = "02:00:00:00:01:0a"

	r := sp.set(map[netip.Addr][]string{lb4a: {"eth1"}, lb6a: {"eth1"}, lb4b: nil})
	if !r.NoSuchInterface || strings.Count(r.Err, `"eth1"`) != 2 {
		t.Errorf("Set naming a missing eth1: error %q, want ErrNoSuchInterface for both addresses", r.Err)
	}
	sp.waitAnnounced(map[netip.Addr][]string{lb4b: {"eth0"}})
	kernelResolves(t, client, lb4b, macA)

	for round := range 2 {
		tp.plug(a, "pa1", "eth1", macEth1)
		// lb4b, on every interface, does not get eth1: a veth without
		// an address is a pod's, by default.
		sp.waitAnnounced(map[netip.Addr][]string{lb4a: {"eth1"}, lb6a: {"eth1"}, lb4b: {"eth0"}})
		for _, lb := range []netip.Addr{lb4a, lb6a} {
			try(client, "ip", "neigh", "del", lb.String(), "dev", "eth0")
			kernelResolves(t, client, lb, macEth1)
			answeredOnlyBy(t, client, lb, macEth1)
		}
		series := sp.state().Series
		for _, want := range []string{"ironlb_l2_requests_answered_total{eth1/ipv4}", "ironlb_l2_requests_answered_total{eth1/ipv6}"} {
			if !slices.Contains(series, want) {
				t.Errorf("round %d: series %v lack %s", round, series, want)
			}
		}
		testutil.Run(t, "ip", "-n", a, "link", "del", "eth1")
		sp.waitAnnounced(map[netip.Addr][]string{lb4b: {"eth0"}})
		if series := sp.state().Series; slices.ContainsFunc(series, func(s string) bool { return strings.Contains(s, "{eth1/") }) {
			t.Errorf("round %d: eth1 deleted, its series remain: %v", round, series)
		}
		t.Logf("round %d: eth1 came and went", round)
	}
	kernelFails(t, client, lb4a)
}

// TestNoLinkLocal: on an interface without IPv6 (so without a link-local
// address), NDP is reported as impossible while ARP works there; once
// IPv6 comes up, NDP starts without another Set.
func TestNoLinkLocal(t *testing.T) {
	needNet(t)
	t.Parallel()
	tp := newTopo(t)
	client := tp.client()
	a := tp.host("a", macA, "198.51.100.11/24", "2001:db8:100::11/64")
	const macEth2 = "02:00:00:00:02:0a"
	tp.plug(a, "pa2", "eth2", macEth2, "disable_ipv6=1")
	sp := startSpeaker(t, a)

	desired := map[netip.Addr][]string{lb4a: {"eth2"}, lb6a: {"eth2"}, lb6c: {"eth0"}}
	sp.set(desired) // may come before Run starts; the next Set reports
	sp.waitAnnounced(map[netip.Addr][]string{lb4a: {"eth2"}, lb6c: {"eth0"}})
	r := sp.set(desired)
	if !r.NoLinkLocal || !strings.Contains(r.Err, "eth2") || !strings.Contains(r.Err, lb6a.String()) {
		t.Errorf("Set with NDP impossible on eth2: error %q, want ErrNoLinkLocal naming eth2 and %s", r.Err, lb6a)
	}
	kernelResolves(t, client, lb4a, macEth2)
	kernelResolves(t, client, lb6c, macA)

	testutil.Run(t, "ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv6.conf.eth2.disable_ipv6=0")
	sp.waitAnnounced(map[netip.Addr][]string{lb4a: {"eth2"}, lb6a: {"eth2"}, lb6c: {"eth0"}})
	kernelResolves(t, client, lb6a, macEth2)
	if r := sp.set(desired); r.Err != "" {
		t.Errorf("Set once eth2 has IPv6: %s", r.Err)
	}
}
