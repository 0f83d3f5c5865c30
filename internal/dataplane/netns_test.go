package dataplane

// Network tests: a small cluster in network namespaces joined by veth
// pairs, the kernel's nftables and conntrack, and echo servers standing
// in for pods.
//
// The Dataplane runs nft, which acts on the namespace it runs in, so it
// never runs in the test's own: the test binary re-executes itself under
// `ip netns exec <node>` (runHelper), and the helper refuses to start
// unless it is in the namespace it was named and not in its parent's. It
// takes commands as JSON lines on stdin. The sockets of the client and of
// the pods are made in-process, on a thread switched into their namespace
// (testutil.InNetNS); a socket stays in the namespace it was made in
// whichever thread uses it later.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/internal/testutil"
)

// helperEnv, when set, makes the test binary the dataplane helper; its
// value is the namespace the helper must find itself in.
const helperEnv = "IRONLB_DATAPLANE_HELPER"

func TestMain(m *testing.M) {
	if ns := os.Getenv(helperEnv); ns != "" {
		os.Exit(runHelper(ns, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type helperCommand struct {
	// Op is "sync", "cleanup", "list", or for the benchmarks "synthetic"
	// (sync syntheticFrontends(Services, Backends), restricted to Ranges
	// source ranges each when not 0) and "change" (move the first
	// backend of synthetic frontend Index and sync).
	Op        string         `json:"op"`
	Frontends []wireFrontend `json:"frontends,omitempty"`
	Services  int            `json:"services,omitempty"`
	Backends  int            `json:"backends,omitempty"`
	Ranges    int            `json:"ranges,omitempty"`
	Index     int            `json:"index,omitempty"`
}

type helperReply struct {
	Err string `json:"err,omitempty"`
	// Took is how long Sync took, measured in the helper.
	Took time.Duration `json:"took,omitempty"`
	// Tables is `nft list tables`; Table is `nft list table <family>
	// ironlb` by family, missing when there is no such table.
	Tables string            `json:"tables,omitempty"`
	Table  map[string]string `json:"table,omitempty"`
}

// wireFrontend is a Frontend as the helper's commands carry it. Backend
// embeds netip.AddrPort, whose MarshalText is promoted to Backend: JSON
// would write a Backend as "addr:port" alone and drop Masquerade.
type wireFrontend struct {
	Addr         netip.Addr
	Protocol     Protocol
	Port         uint16
	Backends     []wireBackend
	Affinity     time.Duration
	SourceRanges *SourceRanges
}

type wireBackend struct {
	To         netip.AddrPort
	Masquerade bool
}

func toWire(fes []Frontend) []wireFrontend {
	out := make([]wireFrontend, 0, len(fes))
	for _, fe := range fes {
		w := wireFrontend{Addr: fe.Addr, Protocol: fe.Protocol, Port: fe.Port, Affinity: fe.Affinity, SourceRanges: fe.SourceRanges}
		for _, b := range fe.Backends {
			w.Backends = append(w.Backends, wireBackend{b.AddrPort, b.Masquerade})
		}
		out = append(out, w)
	}
	return out
}

func fromWire(ws []wireFrontend) []Frontend {
	out := make([]Frontend, 0, len(ws))
	for _, w := range ws {
		fe := Frontend{Addr: w.Addr, Protocol: w.Protocol, Port: w.Port, Affinity: w.Affinity, SourceRanges: w.SourceRanges}
		for _, b := range w.Backends {
			fe.Backends = append(fe.Backends, Backend{b.To, b.Masquerade})
		}
		out = append(out, fe)
	}
	return out
}

// runHelper runs a Dataplane in the process's namespace, which must be
// ns, until in ends.
func runHelper(ns string, in io.Reader, out, logw io.Writer) int {
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := checkNamespace(ns); err != nil {
		log.Error("helper: refusing to run nft", "error", err)
		return 3
	}
	d, err := New(Options{Log: log})
	if err != nil {
		log.Error("helper: New", "error", err)
		return 1
	}
	ctx := context.Background()
	var synthetic []Frontend
	err = testutil.ServeCommands(in, out, func(c helperCommand) (any, error) {
		var r helperReply
		var err error
		switch c.Op {
		case "sync":
			r.Took, err = timedSync(ctx, d, fromWire(c.Frontends))
		case "synthetic":
			synthetic = syntheticFrontends(c.Services, c.Backends)
			if c.Ranges > 0 {
				restrictFrontends(synthetic, c.Ranges)
			}
			r.Took, err = timedSync(ctx, d, synthetic)
		case "change":
			if c.Index >= len(synthetic) {
				err = fmt.Errorf("no synthetic frontend %d", c.Index)
				break
			}
			moveBackend(synthetic, c.Index)
			r.Took, err = timedSync(ctx, d, synthetic)
		case "cleanup":
			err = Cleanup(ctx, Options{Log: log})
		case "list":
			r.Tables, r.Table, err = listTables(ctx)
		default:
			return nil, fmt.Errorf("unknown command %q", c.Op)
		}
		if err != nil {
			r.Err = err.Error()
		}
		return r, nil
	})
	if err != nil {
		log.Error("helper", "error", err)
		return 2
	}
	return 0
}

// checkNamespace makes sure that the process runs in the named
// namespace, and not in the one of the test process that started it.
func checkNamespace(name string) error {
	want, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer want.Close()
	// ip netns exec switched the process before exec, so every thread
	// is there.
	got, err := netns.Get()
	if err != nil {
		return err
	}
	defer got.Close()
	if !got.Equal(want) {
		return fmt.Errorf("running in namespace %s, not in %s (%s)", got, name, want)
	}
	parent, err := netns.GetFromPid(os.Getppid())
	if err != nil {
		return err
	}
	defer parent.Close()
	if got.Equal(parent) {
		return fmt.Errorf("namespace %s is the test process's own", name)
	}
	return nil
}

func timedSync(ctx context.Context, d *Dataplane, fes []Frontend) (time.Duration, error) {
	start := time.Now()
	err := d.Sync(ctx, fes)
	return time.Since(start), err
}

// listTables lists ironlb's tables as nft prints them.
func listTables(ctx context.Context) (string, map[string]string, error) {
	nft := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "nft", args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	tables, err := nft("list", "tables")
	if err != nil {
		return "", nil, err
	}
	byFamily := map[string]string{}
	for _, f := range []string{"ip", "ip6"} {
		if !strings.Contains(tables, "table "+f+" "+tableName+"\n") {
			continue
		}
		if byFamily[f], err = nft("list", "table", f, tableName); err != nil {
			return "", nil, err
		}
	}
	return tables, byFamily, nil
}

// nodeHelper is a helper process running a Dataplane in a node's
// namespace.
type nodeHelper struct {
	*testutil.Helper
	t  testing.TB
	ns string
}

// startHelper starts a helper in ns. When the test ends it is stopped
// (if the test did not) and must exit 0; its log is shown if the test
// failed.
func startHelper(t testing.TB, ns string) *nodeHelper {
	t.Helper()
	return &nodeHelper{Helper: testutil.StartHelper(t, "dataplane helper in "+ns, ns, helperEnv+"="+ns), t: t, ns: ns}
}

func (h *nodeHelper) do(c helperCommand) helperReply {
	h.t.Helper()
	var r helperReply
	h.Do(c, &r)
	return r
}

// mustDo runs c and fails the test on an error.
func (h *nodeHelper) mustDo(c helperCommand) helperReply {
	h.t.Helper()
	r := h.do(c)
	if r.Err != "" {
		h.t.Fatalf("%s in %s: %s", c.Op, h.ns, r.Err)
	}
	return r
}

// sync has the helper's Dataplane Sync fes.
func (h *nodeHelper) sync(fes ...Frontend) {
	h.t.Helper()
	h.mustDo(helperCommand{Op: "sync", Frontends: toWire(fes)})
}

func (h *nodeHelper) list() helperReply {
	h.t.Helper()
	return h.mustDo(helperCommand{Op: "list"})
}

// The topology (newCluster); inside a namespace, an interface is named
// after the namespace at its other end, or eth0 in a pod:
//
//	client ── node1 ── node2
//	            │        │
//	          pod1     pod2
//
// node1 runs the Dataplane. node2 has no route to the client, so pod2's
// replies reach the client only when node1 masquerades.
//
// netFamily is one IP family's addresses in it.
type netFamily struct {
	name string
	// client's address; node1's towards the client; node1's and node2's
	// on the node link; the pods'; the LoadBalancer address.
	client, node1Client, node1, node2, pod1, pod2, lb netip.Addr
}

var (
	net4 = netFamily{
		name:   "IPv4",
		client: mustAddr("198.51.100.1"), node1Client: mustAddr("198.51.100.2"),
		node1: mustAddr("198.51.100.5"), node2: mustAddr("198.51.100.6"),
		pod1: mustAddr("203.0.113.2"), pod2: mustAddr("203.0.113.6"),
		lb: mustAddr("203.0.113.100"),
	}
	net6 = netFamily{
		name:   "IPv6",
		client: mustAddr("2001:db8:1::1"), node1Client: mustAddr("2001:db8:1::2"),
		node1: mustAddr("2001:db8:2::1"), node2: mustAddr("2001:db8:2::2"),
		pod1: mustAddr("2001:db8:11::2"), pod2: mustAddr("2001:db8:12::2"),
		lb: mustAddr("2001:db8:100::100"),
	}
	netFamilies = []netFamily{net4, net6}
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Ports the servers listen on.
const (
	whoPort  = 8080  // TCP, UDP, SCTP: answers with its host's name and the client's address
	sinkPort = 9000  // TCP: reads until EOF, then answers with the count
	echoPort = 9001  // TCP: echoes
	nodePort = 30080 // TCP on node1: who, standing in for NodePorts
)

// ioTimeout bounds one connection of a test, from dial to last byte.
const ioTimeout = 5 * time.Second

var clusterSeq atomic.Int64

// cluster is the namespaces of one test; empty names were not made.
type cluster struct {
	t                                testing.TB
	prefix                           string
	client, node1, node2, pod1, pod2 string
	// srcPort is the client's last source port: every connection has a
	// port of its own, so none meets conntrack state of an earlier one.
	srcPort atomic.Int32
}

// newNode makes a cluster of one namespace, node1.
func newNode(t testing.TB) *cluster {
	t.Helper()
	testutil.RemoveLeftoverNetNS(t, "dp")
	c := &cluster{t: t, prefix: fmt.Sprintf("dp%dx%d", os.Getpid(), clusterSeq.Add(1))}
	c.node1 = c.netns("node1")
	return c
}

// newCluster makes the whole topology and starts the servers: who in
// both pods and on node1's nodePort, sink and echo in pod2.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := newNode(t)
	c.srcPort.Store(20000)
	c.client, c.node2 = c.netns("client"), c.netns("node2")
	c.pod1, c.pod2 = c.netns("pod1"), c.netns("pod2")
	for _, n := range []string{c.node1, c.node2} {
		c.sysctl(n, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
			// Rejections of UDP are ICMP errors, which are rate limited.
			"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
	}
	c.link(c.client, "node1", c.node1, "client", "198.51.100.1/30", "198.51.100.2/30", "2001:db8:1::1/64", "2001:db8:1::2/64")
	c.link(c.node1, "node2", c.node2, "node1", "198.51.100.5/30", "198.51.100.6/30", "2001:db8:2::1/64", "2001:db8:2::2/64")
	c.link(c.node1, "pod1", c.pod1, "eth0", "203.0.113.1/30", "203.0.113.2/30", "2001:db8:11::1/64", "2001:db8:11::2/64")
	c.link(c.node2, "pod2", c.pod2, "eth0", "203.0.113.5/30", "203.0.113.6/30", "2001:db8:12::1/64", "2001:db8:12::2/64")
	c.routes([][]string{
		{c.client, "-4", "203.0.113.100/32", "via", "198.51.100.2"},
		{c.client, "-6", "2001:db8:100::/64", "via", "2001:db8:1::2"},
		// node1's default route is only for the connections it makes
		// itself, whose source address is chosen by the route to the
		// LB address.
		{c.node1, "-4", "default", "via", "198.51.100.1"},
		{c.node1, "-6", "default", "via", "2001:db8:1::1"},
		{c.node1, "-4", "203.0.113.4/30", "via", "198.51.100.6"},
		{c.node1, "-6", "2001:db8:12::/64", "via", "2001:db8:2::2"},
		{c.pod1, "-4", "default", "via", "203.0.113.1"},
		{c.pod1, "-6", "default", "via", "2001:db8:11::1"},
		{c.pod2, "-4", "default", "via", "203.0.113.5"},
		{c.pod2, "-6", "default", "via", "2001:db8:12::1"},
	})
	c.waitUp()
	c.serve(c.pod1, "pod1", []netip.Addr{net4.pod1, net6.pod1}, whoPort)
	c.serve(c.pod2, "pod2", []netip.Addr{net4.pod2, net6.pod2}, whoPort, sinkPort, echoPort)
	c.serve(c.node1, "node1", []netip.Addr{net4.node1, net6.node1}, nodePort)
	return c
}

// waitUp waits until every veth is up. The kernel starts a device's
// transmit queue only when its link watch sees the carrier, up to a
// second after `ip link set up`; until then what it sends is dropped,
// such as a neighbour advertisement the first connection waits for.
func (c *cluster) waitUp() {
	for _, ns := range []string{c.client, c.node1, c.node2, c.pod1, c.pod2} {
		testutil.Eventually(c.t, "the links in "+ns+" up", func() (bool, string) {
			var links []struct {
				Ifname    string `json:"ifname"`
				Operstate string `json:"operstate"`
			}
			out := testutil.Run(c.t, "ip", "-n", ns, "-j", "link", "show")
			if err := json.Unmarshal([]byte(out), &links); err != nil {
				c.t.Fatalf("ip -j link show: %v: %s", err, out)
			}
			for _, l := range links {
				if l.Ifname != "lo" && l.Operstate != "UP" {
					return false, fmt.Sprintf("%s is %s", l.Ifname, l.Operstate)
				}
			}
			return true, ""
		})
	}
}

// routeDirect lets the client reach pod2 through node1 and node2 without
// the LB address, and node2 reach the client, for comparisons with the
// path through the Dataplane.
func (c *cluster) routeDirect() {
	c.routes([][]string{
		{c.client, "-4", "203.0.113.4/30", "via", "198.51.100.2"},
		{c.client, "-6", "2001:db8:12::/64", "via", "2001:db8:1::2"},
		{c.node2, "-4", "198.51.100.0/30", "via", "198.51.100.5"},
		{c.node2, "-6", "2001:db8:1::/64", "via", "2001:db8:2::1"},
	})
}

// netns makes a namespace, with duplicate address detection off (so that
// addresses are usable at once), deleted with its veths when the test
// ends.
func (c *cluster) netns(role string) string {
	ns := c.prefix + "-" + role
	testutil.Run(c.t, "ip", "netns", "add", ns)
	c.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			c.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	c.sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	testutil.Run(c.t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

func (c *cluster) sysctl(ns string, settings ...string) {
	testutil.Run(c.t, append([]string{"ip", "netns", "exec", ns, "sysctl", "-qw"}, settings...)...)
}

// link joins namespaces a and b with a veth pair, aIf in a and bIf in b,
// and gives the ends their addresses.
func (c *cluster) link(a, aIf, b, bIf, a4, b4, a6, b6 string) {
	testutil.Run(c.t, "ip", "-n", a, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b)
	for _, end := range []struct{ ns, ifname, v4, v6 string }{{a, aIf, a4, a6}, {b, bIf, b4, b6}} {
		testutil.Run(c.t, "ip", "-n", end.ns, "addr", "add", end.v4, "dev", end.ifname)
		testutil.Run(c.t, "ip", "-n", end.ns, "addr", "add", end.v6, "dev", end.ifname, "nodad")
		testutil.Run(c.t, "ip", "-n", end.ns, "link", "set", end.ifname, "up")
	}
}

// routes adds routes, each a namespace, a family flag and the arguments
// of `ip route add`.
func (c *cluster) routes(rs [][]string) {
	for _, r := range rs {
		testutil.Run(c.t, append([]string{"ip", "-n", r[0], r[1], "route", "add"}, r[2:]...)...)
	}
}

// serve runs servers in ns on each of addrs and ports (see whoPort and
// the others) until the test ends; name is what who answers.
func (c *cluster) serve(ns, name string, addrs []netip.Addr, ports ...uint16) {
	var closers []io.Closer
	var wg sync.WaitGroup
	c.t.Cleanup(func() {
		for _, cl := range closers {
			cl.Close()
		}
		wg.Wait()
	})
	err := testutil.InNetNS(ns, func() error {
		for _, a := range addrs {
			for _, port := range ports {
				at := netip.AddrPortFrom(a, port).String()
				l, err := net.Listen("tcp", at)
				if err != nil {
					return err
				}
				closers = append(closers, l)
				handle := map[uint16]func(net.Conn){whoPort: whoTCP(name), nodePort: whoTCP(name), sinkPort: sink, echoPort: echo}[port]
				wg.Go(func() { acceptLoop(l, handle, &wg) })
				if port != whoPort {
					continue
				}
				pc, err := net.ListenPacket("udp", at)
				if err != nil {
					return err
				}
				closers = append(closers, pc)
				wg.Go(func() { whoUDP(pc.(*net.UDPConn), name) })
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("servers in %s: %v", ns, err)
	}
}

func acceptLoop(l net.Listener, handle func(net.Conn), wg *sync.WaitGroup) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer conn.Close()
			handle(conn)
		})
	}
}

// whoTCP reads a line and answers "<name> <client address:port>".
func whoTCP(name string) func(net.Conn) {
	return func(conn net.Conn) {
		conn.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
			return
		}
		fmt.Fprintf(conn, "%s %s\n", name, conn.RemoteAddr())
	}
}

// whoUDP answers every datagram with "<name> <client address:port>".
func whoUDP(pc *net.UDPConn, name string) {
	buf := make([]byte, 1500)
	for {
		_, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pc.WriteToUDPAddrPort(fmt.Appendf(nil, "%s %s\n", name, from), from)
	}
}

// sink counts what it reads until EOF and answers with the count.
func sink(conn net.Conn) {
	n, _ := io.Copy(io.Discard, conn)
	fmt.Fprintf(conn, "%d\n", n)
}

func echo(conn net.Conn) { io.Copy(conn, conn) }

// answer is what one connection to a who server came back with.
type answer struct {
	host string     // the server's name
	saw  netip.Addr // the client address the server saw
}

// ask makes n new connections from namespace from to dst, each from a
// source port not used before, and returns who answered them; it stops
// at the first error. From the client they come from its address, from
// elsewhere from the address the kernel picks.
func (c *cluster) ask(from string, proto Protocol, dst netip.AddrPort, n int) ([]answer, error) {
	var src netip.Addr
	switch {
	case from == c.client && dst.Addr().Is4():
		src = net4.client
	case from == c.client:
		src = net6.client
	case dst.Addr().Is4():
		src = netip.IPv4Unspecified()
	default:
		src = netip.IPv6Unspecified()
	}
	var as []answer
	err := testutil.InNetNS(from, func() error {
		for range n {
			a, err := who(proto, netip.AddrPortFrom(src, uint16(c.srcPort.Add(1))), dst)
			if err != nil {
				return err
			}
			as = append(as, a)
		}
		return nil
	})
	return as, err
}

// who makes one connection from src to dst, says hello and reads who
// answers.
func who(proto Protocol, src, dst netip.AddrPort) (answer, error) {
	return whoWithin(proto, src, dst, ioTimeout)
}

// whoWithin is who, giving up after timeout.
func whoWithin(proto Protocol, src, dst netip.AddrPort, timeout time.Duration) (answer, error) {
	var conn net.Conn
	var err error
	switch proto {
	case TCP:
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(src)}
		conn, err = d.Dial("tcp", dst.String())
	case UDP:
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
	case SCTP:
		conn, err = dialSCTP(src, dst)
	}
	if err != nil {
		return answer{}, fmt.Errorf("%s %s → %s: %w", proto, src, dst, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	// A UDP datagram that the output hook of the sender's own namespace
	// rejects fails with EPERM; the ICMP error the reject sends back
	// shows on the read.
	if _, err := io.WriteString(conn, "hello\n"); err != nil && !(proto == UDP && errors.Is(err, syscall.EPERM)) {
		return answer{}, fmt.Errorf("%s %s → %s: %w", proto, src, dst, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return answer{}, fmt.Errorf("%s %s → %s: reading the answer: %w", proto, src, dst, err)
	}
	host, saw, _ := strings.Cut(strings.TrimSpace(line), " ")
	ap, err := netip.ParseAddrPort(saw)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s → %s: answer %q: %w", proto, src, dst, line, err)
	}
	return answer{host: host, saw: ap.Addr().Unmap()}, nil
}

// refused says whether err is a refused connection: a TCP reset, or an
// ICMP port unreachable on a connected UDP socket.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// SCTP, which package net lacks: one-to-one sockets behave like TCP's,
// so once connected or listening they are handed to net as files.

func sctpSockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// listenSCTP listens on at; the error wraps EPROTONOSUPPORT or
// ESOCKTNOSUPPORT when the kernel lacks SCTP.
func listenSCTP(at netip.AddrPort) (net.Listener, error) {
	family, sa := sctpSockaddr(at)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err != nil {
		return nil, fmt.Errorf("SCTP socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sctp")
	defer f.Close()
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("SCTP bind %s: %w", at, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		return nil, fmt.Errorf("SCTP listen %s: %w", at, err)
	}
	return net.FileListener(f)
}

func dialSCTP(src, dst netip.AddrPort) (net.Conn, error) {
	family, sa := sctpSockaddr(dst)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "sctp")
	defer f.Close()
	_, local := sctpSockaddr(src)
	if err := unix.Bind(fd, local); err != nil {
		return nil, err
	}
	// Non-blocking, polled: a blocking connect with a timeout fails
	// with EINTR when the runtime's signals interrupt it.
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		return nil, err
	}
	deadline := time.Now().Add(ioTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, os.ErrDeadlineExceeded
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, int(wait.Milliseconds())+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
		return nil, err
	} else if soerr != 0 {
		return nil, unix.Errno(soerr)
	}
	return net.FileConn(f)
}
