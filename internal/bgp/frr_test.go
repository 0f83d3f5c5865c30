package bgp

// FRR routers for the network tests: bgpd in a namespace as an instance
// of its own, and what it received, read from its JSON.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/testutil"
)

const (
	bgpdPath = "/usr/lib/frr/bgpd"
	// frrRunDir holds a folder per FRR instance (`-N`), for its sockets,
	// pid file and, here, its configuration.
	frrRunDir = "/var/run/frr"
)

// router is one FRR bgpd in a namespace of the lab.
type router struct {
	t   testing.TB
	ns  string
	asn uint32
	id  netip.Addr

	// quiet turns off FRR's log of every UPDATE received (for the
	// benchmark, where there are thousands).
	quiet bool
	// port, when set, is the port bgpd listens on instead of 179.
	port int
	// originate are prefixes the router sends every neighbor of their
	// family.
	originate []netip.Prefix

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *testutil.SyncBuffer
}

// frrNeighbor is a session a router accepts.
type frrNeighbor struct {
	Addr     netip.Addr
	ASN      uint32
	Password string
	// MultiHop accepts an eBGP neighbor that is not on a connected link.
	MultiHop bool
}

// config is the router's bgpd configuration. Timers are short, so that a
// dead session is noticed within seconds; unless quiet, FRR logs every
// UPDATE it receives ("rcvd UPDATE about 203.0.113.10/32 IPv4 unicast --
// withdrawn").
func (r *router) config(neighbors []frrNeighbor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname %s\nlog stdout debugging\n", r.ns)
	if !r.quiet {
		b.WriteString("debug bgp updates in\n")
	}
	fmt.Fprintf(&b, "!\nrouter bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n no bgp network import-check\n timers bgp 3 9\n", r.asn, r.id)
	for _, n := range neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n", n.Addr, n.ASN)
		if n.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", n.Addr, n.Password)
		}
		if n.MultiHop {
			fmt.Fprintf(&b, " neighbor %s ebgp-multihop 255\n", n.Addr)
		}
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n", fam)
		for _, n := range neighbors {
			if n.Addr.Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  neighbor %s activate\n", n.Addr)
			}
		}
		for _, p := range r.originate {
			if p.Addr().Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  network %s\n", p)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("!\n")
	return b.String()
}

// start writes the configuration and starts bgpd; it is killed when the
// test ends, and its log shown if the test failed.
func (r *router) start(neighbors ...frrNeighbor) {
	t := r.t
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("FRR is not installed (no frr user): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	r.dir = filepath.Join(frrRunDir, r.ns)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(r.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	r.log = &testutil.SyncBuffer{}
	t.Cleanup(func() {
		r.kill()
		_ = os.RemoveAll(r.dir)
		if t.Failed() {
			t.Logf("bgpd in %s logged:\n%s", r.ns, r.log)
		}
	})
	if err := os.WriteFile(r.confPath(), []byte(r.config(neighbors)), 0o644); err != nil {
		t.Fatal(err)
	}
	r.run()
}

func (r *router) confPath() string { return filepath.Join(r.dir, "bgpd.conf") }

// run starts bgpd in the foreground and waits until vtysh reaches it.
func (r *router) run() {
	r.t.Helper()
	args := []string{"netns", "exec", r.ns, bgpdPath, "-N", r.ns, "-f", r.confPath(), "--no_zebra", "-i", filepath.Join(r.dir, "bgpd.pid")}
	if r.port != 0 {
		args = append(args, "-p", strconv.Itoa(r.port))
	}
	r.cmd = exec.Command("ip", args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting bgpd in %s: %v", r.ns, err)
	}
	done := make(chan struct{})
	r.done = done
	go func() {
		_ = r.cmd.Wait()
		close(done)
	}()
	testutil.Eventually(r.t, "bgpd in "+r.ns+" answering vtysh", func() (bool, string) {
		select {
		case <-done:
			r.t.Fatalf("bgpd in %s exited: %v\n%s", r.ns, r.cmd.ProcessState, r.log)
		default:
		}
		out, err := r.try("show bgp summary json")
		return err == nil, out
	})
}

// kill kills bgpd (`ip netns exec` execs it, so the pid is bgpd's) and
// waits for it to exit.
func (r *router) kill() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Kill()
	<-r.done
}

// restart kills bgpd and starts it again with the same configuration.
func (r *router) restart() {
	r.t.Helper()
	r.kill()
	fmt.Fprintf(r.log, "--- bgpd killed by the test; starting it again ---\n")
	r.run()
}

// try runs a vtysh command and returns its standard output (vtysh warns
// on standard error that the instance has no vtysh.conf).
func (r *router) try(command string) (string, error) {
	var stderr strings.Builder
	cmd := exec.Command("vtysh", "-N", r.ns, "-c", command)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// query runs a vtysh command whose answer is JSON and decodes it into v.
func (r *router) query(t testing.TB, command string, v any) {
	t.Helper()
	out, err := r.try(command)
	if err != nil {
		t.Fatalf("vtysh -N %s -c %q: %v\n%s", r.ns, command, err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("vtysh -N %s -c %q: %v\n%s", r.ns, command, err, out)
	}
}

// frrRoute is what a router holds for a prefix, as far as these tests
// care.
type frrRoute struct {
	// Peer is the address of the session it came over.
	Peer string
	// NextHop is the global next hop.
	NextHop string
	// Communities and Large are FRR's text ("65000:100 no-export"),
	// empty without the attribute.
	Communities, Large string
	// LocalPref is nil without the attribute.
	LocalPref *uint32
}

func localPref(v uint32) *uint32 { return &v }

type frrTable struct {
	Routes map[string]json.RawMessage `json:"routes"`
}

type frrPrefix struct {
	Paths []struct {
		Community *struct {
			String string `json:"string"`
		} `json:"community"`
		LargeCommunity *struct {
			String string `json:"string"`
		} `json:"largeCommunity"`
		LocPrf   *uint32 `json:"locPrf"`
		Nexthops []struct {
			IP    string `json:"ip"`
			Scope string `json:"scope"`
		} `json:"nexthops"`
		Peer struct {
			PeerID string `json:"peerId"`
		} `json:"peer"`
	} `json:"paths"`
}

// routes is the router's table for family ("ipv4" or "ipv6"), by prefix;
// a prefix with more than one path has the others as "prefix #2" and so
// on.
func (r *router) routes(t testing.TB, family string) map[string]frrRoute {
	t.Helper()
	var table frrTable
	r.query(t, fmt.Sprintf("show bgp %s unicast json", family), &table)
	out := map[string]frrRoute{}
	for pfx := range table.Routes {
		var detail frrPrefix
		r.query(t, fmt.Sprintf("show bgp %s unicast %s json", family, pfx), &detail)
		for i, p := range detail.Paths {
			var fr frrRoute
			fr.Peer = p.Peer.PeerID
			for _, nh := range p.Nexthops {
				if nh.Scope != "link-local" {
					fr.NextHop = nh.IP
				}
			}
			if p.Community != nil {
				fr.Communities = p.Community.String
			}
			if p.LargeCommunity != nil {
				fr.Large = p.LargeCommunity.String
			}
			fr.LocalPref = p.LocPrf
			key := pfx
			if i > 0 {
				key = fmt.Sprintf("%s #%d", pfx, i+1)
			}
			out[key] = fr
		}
	}
	return out
}

// waitRoutes waits until the router's table for family is exactly want.
func (r *router) waitRoutes(t testing.TB, family string, want map[string]frrRoute) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%s routes at %s", family, r.ns), func() (bool, string) {
		diff := cmp.Diff(want, r.routes(t, family))
		return diff == "", "(-want +got)\n" + diff
	})
}

// frrPeer is FRR's view of one neighbor, as far as these tests care.
type frrPeer struct {
	State                  string `json:"bgpState"`
	RemoteRouterID         string `json:"remoteRouterId"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	EstablishedEpoch       int64  `json:"bgpTimerUpEstablishedEpoch"`
	MessageStats           struct {
		UpdatesRecv int `json:"updatesRecv"`
	} `json:"messageStats"`
	GracefulRestart struct {
		Remote string `json:"remoteGrMode"`
		Timers struct {
			Received int `json:"receivedRestartTimer"`
		} `json:"timers"`
	} `json:"gracefulRestartInfo"`
	Capabilities struct {
		GracefulRestart string `json:"gracefulRestart"`
	} `json:"neighborCapabilities"`
}

// neighbor is FRR's view of the session with addr.
func (r *router) neighbor(t testing.TB, addr netip.Addr) frrPeer {
	t.Helper()
	var m map[string]frrPeer
	r.query(t, fmt.Sprintf("show bgp neighbors %s json", addr), &m)
	return m[addr.String()]
}

// raw returns a vtysh command's output, for the failure messages.
func (r *router) raw(command string) string {
	out, _ := r.try(command)
	return out
}

// receivedCount is how many prefixes of family the router holds from
// the session with addr, from the summary (cheap with many prefixes).
func (r *router) receivedCount(t testing.TB, family string, addr netip.Addr) int {
	t.Helper()
	var sum struct {
		Peers map[string]struct {
			PfxRcd int `json:"pfxRcd"`
		} `json:"peers"`
	}
	r.query(t, fmt.Sprintf("show bgp %s unicast summary json", family), &sum)
	return sum.Peers[addr.String()].PfxRcd
}

// logged waits until bgpd has logged a line containing each of lines.
func (r *router) logged(t testing.TB, lines ...string) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("bgpd in %s logging %q", r.ns, lines), func() (bool, string) {
		log := r.log.String()
		missing := slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.Contains(log, l) })
		return len(missing) == 0, fmt.Sprintf("missing %q", missing)
	})
}

// capture is tcpdump decoding the BGP messages on a router's link to the
// speaker.
type capture struct {
	out *testutil.SyncBuffer
}

// capture starts tcpdump on the router's link and waits until it
// listens; it is stopped when the test ends.
func (r *router) capture() *capture {
	t := r.t
	t.Helper()
	c := &capture{out: &testutil.SyncBuffer{}}
	cmd := exec.Command("ip", "netns", "exec", r.ns, "tcpdump", "-i", "spk", "-n", "-l", "-vvv", "tcp", "port", "179")
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump in %s: %v", r.ns, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	})
	testutil.Eventually(t, "tcpdump in "+r.ns+" listening", func() (bool, string) {
		return strings.Contains(c.out.String(), "listening on spk"), c.out.String()
	})
	return c
}
