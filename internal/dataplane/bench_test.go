package dataplane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/internal/testutil"
)

// syntheticFrontends makes n TCP frontends of nb backends each, on the
// LB addresses 203.0.113.100 to .199 with n/100 ports each. Backend k
// (counting over all frontends) is 203.0.113.(1 + k%250), port 10000 +
// k/250, so no two are alike; the second half of each frontend's
// backends is off the node (masqueraded).
func syntheticFrontends(n, nb int) []Frontend {
	fes := make([]Frontend, n)
	for i := range fes {
		fe := Frontend{
			Addr:     netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i%100)}),
			Protocol: TCP,
			Port:     uint16(1000 + i/100),
			Backends: make([]Backend, nb),
		}
		for j := range fe.Backends {
			k := i*nb + j
			fe.Backends[j] = Backend{
				AddrPort:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + k%250)}), uint16(10000+k/250)),
				Masquerade: j >= nb/2,
			}
		}
		fes[i] = fe
	}
	return fes
}

// restrictFrontends gives every frontend k source ranges (k at most 16),
// /28s of 198.18.0.0/16: frontend i accepts 198.18.(i%256).(16j)/28 for
// j < k.
func restrictFrontends(fes []Frontend, k int) {
	for i := range fes {
		s := AllowOnly()
		for j := range k {
			s.Allowed = append(s.Allowed, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i % 256), byte(16 * j)}), 28))
		}
		fes[i].SourceRanges = s
	}
}

// moveBackend gives the last backend of frontend i another port, or its
// own back.
func moveBackend(fes []Frontend, i int) {
	fe := &fes[i]
	fe.Backends = slices.Clone(fe.Backends)
	b := &fe.Backends[len(fe.Backends)-1]
	b.AddrPort = netip.AddrPortFrom(b.Addr(), b.Port()^0x8000)
}

// BenchmarkSyncFull: the first Sync of a new process (a restarted
// speaker) into an empty namespace, with 10 backends per frontend.
// s/sync is what the benchmark saw (the helper's command, including the
// frontends' making), helper-s/sync the Sync call alone.
func BenchmarkSyncFull(b *testing.B) { benchSyncFull(b, 0) }

// BenchmarkSyncFullRestricted is BenchmarkSyncFull with every frontend
// restricted to two source ranges: 20,000 more interval elements at
// 10,000 frontends.
func BenchmarkSyncFullRestricted(b *testing.B) { benchSyncFull(b, 2) }

func benchSyncFull(b *testing.B, ranges int) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			testutil.NeedNet(b, "ip", "nft")
			c := newNode(b)
			var seen, took time.Duration
			syncs := 0
			for b.Loop() {
				b.StopTimer()
				h := startHelper(b, c.node1)
				b.StartTimer()
				start := time.Now()
				r := h.mustDo(helperCommand{Op: "synthetic", Services: n, Backends: 10, Ranges: ranges})
				seen += time.Since(start)
				b.StopTimer()
				took += r.Took
				syncs++
				h.mustDo(helperCommand{Op: "cleanup"})
				if err := h.Stop(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(seen.Seconds()/float64(syncs), "s/sync")
			b.ReportMetric(took.Seconds()/float64(syncs), "helper-s/sync")
		})
	}
}

// BenchmarkSyncOneChange: with 10,000 frontends of 10 backends in place,
// one backend of one frontend changes; the Sync writes only that.
func BenchmarkSyncOneChange(b *testing.B) {
	const n = 10_000
	testutil.NeedNet(b, "ip", "nft")
	c := newNode(b)
	h := startHelper(b, c.node1)
	h.mustDo(helperCommand{Op: "synthetic", Services: n, Backends: 10})
	var seen, took time.Duration
	syncs := 0
	for b.Loop() {
		start := time.Now()
		r := h.mustDo(helperCommand{Op: "change", Index: syncs * 7919 % n})
		seen += time.Since(start)
		took += r.Took
		syncs++
	}
	b.ReportMetric(seen.Seconds()/float64(syncs), "s/sync")
	b.ReportMetric(took.Seconds()/float64(syncs), "helper-s/sync")
}

const (
	bulkBytes = 256 << 20
	newConns  = 5000
)

// BenchmarkForwarding compares, over IPv4, the client's traffic to pod2
// through the LB address (DNAT and masquerade on node1) with the same
// traffic sent to pod2's own address along the same path: the
// throughput of one bulk TCP transfer and the rate of new connections
// (connect, echo one byte, close, one after another).
func BenchmarkForwarding(b *testing.B) {
	testutil.NeedNet(b, "ip", "nft")
	c := newCluster(b)
	c.routeDirect()
	// The connection runs reuse ports whose connections wait in
	// TIME_WAIT.
	c.sysctl(c.client, "net.ipv4.tcp_tw_reuse=1")
	h := startHelper(b, c.node1)
	var fes []Frontend
	for _, port := range []uint16{sinkPort, echoPort} {
		fes = append(fes, Frontend{Addr: net4.lb, Protocol: TCP, Port: port,
			Backends: []Backend{{netip.AddrPortFrom(net4.pod2, port), true}}})
	}
	h.sync(fes...)

	paths := []struct {
		name string
		to   netip.Addr
	}{{"direct", net4.pod2}, {"lb", net4.lb}}
	mbps := map[string]float64{}
	cps := map[string]float64{}
	rounds := 0
	for b.Loop() {
		for _, p := range paths {
			v, err := c.bulk(netip.AddrPortFrom(p.to, sinkPort), bulkBytes)
			if err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
			mbps[p.name] += v
			if v, err = c.connRate(netip.AddrPortFrom(p.to, echoPort), newConns); err != nil {
				b.Fatalf("%s: %v", p.name, err)
			}
			cps[p.name] += v
		}
		rounds++
	}
	r := float64(rounds)
	b.ReportMetric(mbps["direct"]/r, "direct-MB/s")
	b.ReportMetric(mbps["lb"]/r, "lb-MB/s")
	b.ReportMetric(mbps["lb"]/mbps["direct"], "lb/direct-MB/s")
	b.ReportMetric(cps["direct"]/r, "direct-conn/s")
	b.ReportMetric(cps["lb"]/r, "lb-conn/s")
	b.ReportMetric(cps["lb"]/cps["direct"], "lb/direct-conn/s")
}

// bulk sends size bytes from the client to a sink at dst and returns the
// rate in MB/s (10^6 bytes), from connect to the sink's count.
func (c *cluster) bulk(dst netip.AddrPort, size int) (float64, error) {
	var conn net.Conn
	start := time.Now()
	err := testutil.InNetNS(c.client, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", dst.String(), ioTimeout)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	buf := make([]byte, 1<<20)
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := conn.Write(buf[:min(len(buf), size-sent)]); err != nil {
			return 0, err
		}
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	conn.SetReadDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("reading the sink's count: %w", err)
	}
	took := time.Since(start)
	if got := strings.TrimSpace(line); got != strconv.Itoa(size) {
		return 0, fmt.Errorf("the sink got %s bytes, want %d", got, size)
	}
	return float64(size) / 1e6 / took.Seconds(), nil
}

// connRate makes n connections from the client to an echo server at
// dst, one after another, each sending and receiving one byte, and
// returns how many it made per second.
func (c *cluster) connRate(dst netip.AddrPort, n int) (float64, error) {
	var took time.Duration
	err := testutil.InNetNS(c.client, func() error {
		start := time.Now()
		b := make([]byte, 1)
		for i := range n {
			conn, err := net.DialTimeout("tcp", dst.String(), ioTimeout)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			conn.SetDeadline(time.Now().Add(ioTimeout))
			_, err = conn.Write([]byte{'x'})
			if err == nil {
				_, err = io.ReadFull(conn, b)
			}
			conn.Close()
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
		}
		took = time.Since(start)
		return nil
	})
	return float64(n) / took.Seconds(), err
}

// BenchmarkSyncOneChangeGo is the Go side of BenchmarkSyncOneChange at
// 1,000 and 10,000 frontends of 10 backends: the Sync call with nft
// replaced by goOnly, which renders the transaction as the nft command
// would read it and runs nothing. "shared": the unchanged frontends keep
// their Backends slices from one list to the next; "fresh": every list is
// made anew (outside the timer), as the speaker's planner makes it, so
// every frontend is compared element by element.
func BenchmarkSyncOneChangeGo(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		for _, n := range []int{1_000, 10_000} {
			name := "shared/"
			if fresh {
				name = "fresh/"
			}
			b.Run(name+strconv.Itoa(n), func(b *testing.B) {
				ctx := context.Background()
				nft := goOnlyNFT()
				d, err := New(Options{NFT: nft})
				if err != nil {
					b.Fatal(err)
				}
				fes := syntheticFrontends(n, 10)
				if err := d.Sync(ctx, fes); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					moveBackend(fes, i*7919%n)
					i++
					list := fes
					if fresh {
						b.StopTimer()
						list = deepCopy(fes)
						b.StartTimer()
					}
					if err := d.Sync(ctx, list); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				// The last transaction is a change of one frontend: a
				// few operations, not a rewrite.
				if ops := nft[knftables.IPv4Family].(*goOnly).lastOps; ops == 0 || ops > 10 {
					b.Fatalf("the last sync wrote %d operations", ops)
				}
			})
		}
	}
}

// goOnly is knftables' Fake (holding nothing, so a full sync finds no
// table) whose Run renders the transaction's text, as knftables does
// before it hands it to nft, and applies nothing.
type goOnly struct {
	*knftables.Fake
	lastOps int
}

func (g *goOnly) Run(_ context.Context, tx *knftables.Transaction) error {
	_ = tx.String()
	g.lastOps = tx.NumOperations()
	return nil
}

func goOnlyNFT() map[knftables.Family]knftables.Interface {
	return map[knftables.Family]knftables.Interface{
		knftables.IPv4Family: &goOnly{Fake: knftables.NewFake(knftables.IPv4Family, tableName)},
		knftables.IPv6Family: &goOnly{Fake: knftables.NewFake(knftables.IPv6Family, tableName)},
	}
}

// deepCopy copies fes with slices of their own, as a new plan has.
func deepCopy(fes []Frontend) []Frontend {
	out := slices.Clone(fes)
	for i := range out {
		out[i].Backends = slices.Clone(out[i].Backends)
		if s := out[i].SourceRanges; s != nil {
			out[i].SourceRanges = AllowOnly(s.Allowed...)
		}
	}
	return out
}
