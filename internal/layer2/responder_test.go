package layer2

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdlayher/arp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeConn stands in for a packet socket: frames pushed to in are read,
// frames written arrive on out.
type fakeConn struct {
	in   chan []byte
	out  chan []byte
	once sync.Once
	done chan struct{}
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte), out: make(chan []byte, 100), done: make(chan struct{})}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		return copy(b, f), nil, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	c.out <- slices.Clone(b)
	return len(b), nil
}

func (c *fakeConn) Close() error                       { c.once.Do(func() { close(c.done) }); return nil }
func (c *fakeConn) LocalAddr() net.Addr                { return nil }
func (c *fakeConn) SetDeadline(time.Time) error        { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error    { return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// push hands a frame to the reader; it returns once the reader has taken it.
func (c *fakeConn) push(t *testing.T, f []byte) {
	t.Helper()
	select {
	case c.in <- f:
	case <-time.After(10 * time.Second): // only bounds a hang
		t.Fatal("the responder does not read")
	}
}

// next returns the next frame written.
func (c *fakeConn) next(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-c.out:
		return f
	case <-time.After(10 * time.Second): // only bounds a hang
		t.Fatal("nothing written")
		return nil
	}
}

// fakeGroups records multicast memberships and refuses double joins, as
// the kernel does.
type fakeGroups struct {
	mu     sync.Mutex
	joined map[netip.Addr]bool
	log    []string
}

func (g *fakeGroups) JoinGroup(a netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.joined[a] {
		return errors.New("address already in use")
	}
	g.joined[a] = true
	g.log = append(g.log, "join "+a.String())
	return nil
}

func (g *fakeGroups) LeaveGroup(a netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.joined[a] {
		return errors.New("not joined")
	}
	delete(g.joined, a)
	g.log = append(g.log, "leave "+a.String())
	return nil
}

func (g *fakeGroups) Close() error { return nil }

func testLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// TestResponder walks one responder per family through gaining, answering,
// ignoring and losing addresses, over a fake socket. Frames are written by
// two goroutines (answers, announcements), but each goroutine writes in
// order, so "the next answer is for C" proves that nothing was sent for
// the request before it.
func TestResponder(t *testing.T) {
	type addrs struct{ a, b, c netip.Addr }
	tests := []struct {
		fam   family
		addrs addrs
		ask   func(t testing.TB, target netip.Addr) []byte
		claim func(t testing.TB, target netip.Addr) []byte
	}{
		{
			fam:   ipv4,
			addrs: addrs{netip.MustParseAddr("203.0.113.65"), netip.MustParseAddr("203.0.113.66"), netip.MustParseAddr("203.0.113.67")},
			ask: func(t testing.TB, target netip.Addr) []byte {
				return arpFrame(t, arp.OperationRequest, theirMAC, theirV4, target, nil)
			},
			claim: func(t testing.TB, target netip.Addr) []byte {
				return arpFrame(t, arp.OperationRequest, theirMAC, target, target, nil)
			},
		},
		{
			fam:   ipv6,
			addrs: addrs{netip.MustParseAddr("2001:db8:ff00::10"), netip.MustParseAddr("2001:db8:ff00::11"), netip.MustParseAddr("2001:db8:ff00::12")},
			ask: func(t testing.TB, target netip.Addr) []byte {
				g, _ := ndpSNM(target)
				return ndpFrame(t, theirMAC, theirV6, g, 255, ns(target, sll(theirMAC)), nil)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fam.String(), func(t *testing.T) {
			conn := newFakeConn()
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			cfg := responderConfig{
				key: key{name: "eth0", fam: tt.fam}, mac: ourMAC, conn: conn,
				log: testLog(), metrics: m, count: 2, interval: time.Millisecond,
			}
			if tt.fam == ipv6 {
				cfg.groups = &fakeGroups{joined: map[netip.Addr]bool{}}
			}
			claims := make(chan netip.Addr, 4)
			cfg.claimed = func(addr netip.Addr, _ net.HardwareAddr) bool { claims <- addr; return true }
			r := newResponder(cfg)
			r.start()
			t.Cleanup(r.close)
			a, b, c := tt.addrs.a, tt.addrs.b, tt.addrs.c

			// Gaining a sends the burst: two announcements of a.
			mustUpdate(t, r, a)
			for range 2 {
				expect(t, tt.fam, conn.next(t), "announce", a)
			}

			// A question for a is answered; one for b is not: the
			// answer that follows is for a again.
			conn.push(t, tt.ask(t, a))
			expect(t, tt.fam, conn.next(t), "reply", a)
			conn.push(t, tt.ask(t, b))
			conn.push(t, tt.ask(t, a))
			expect(t, tt.fam, conn.next(t), "reply", a)

			// Our own frames (sender MAC is ours) are not answered.
			own := tt.ask(t, a)
			if tt.fam == ipv4 {
				own = arpFrame(t, arp.OperationRequest, ourMAC, theirV4, a, nil)
			} else {
				g, _ := ndpSNM(a)
				own = ndpFrame(t, ourMAC, ourLL, g, 255, ns(a, sll(ourMAC)), nil)
			}
			conn.push(t, own)

			// Another host claiming a is not answered, and is reported.
			if tt.claim != nil {
				conn.push(t, tt.claim(t, a))
				select {
				case got := <-claims:
					if got != a {
						t.Errorf("claim reported for %s, want %s", got, a)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("another host's claim of %s not reported", a)
				}
			}

			// Once update returns without a, a is not answered: swap
			// a for c, ask for a, then for c. The next frames are c's
			// burst and c's answer, nothing about a.
			mustUpdate(t, r, c)
			conn.push(t, tt.ask(t, a))
			conn.push(t, tt.ask(t, c))
			var got []string
			for len(got) < 3 {
				f := conn.next(t)
				kind, target := classify(t, tt.fam, f)
				if target != c {
					t.Fatalf("after a was dropped, a frame about %s (%s); frames so far %v", target, kind, got)
				}
				got = append(got, kind)
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"announce", "announce", "reply"}) {
				t.Errorf("frames about c: %v, want two announcements and a reply", got)
			}

			if got := r.addresses(); !slices.Equal(got, []netip.Addr{c}) {
				t.Errorf("addresses = %v, want [%s]", got, c)
			}

			// Closed, it answers nothing and says so on update.
			r.close()
			r.close()
			// Counted once the goroutines are done (a frame arrives
			// before its count is made).
			if n := counter(t, m.answered.WithLabelValues("eth0", tt.fam.String())); n != 3 {
				t.Errorf("answered = %v, want 3", n)
			}
			if n := counter(t, m.gratuitous.WithLabelValues("eth0", tt.fam.String())); n != 4 {
				t.Errorf("gratuitous = %v, want 4", n)
			}
			if _, _, err := r.update(addrSet{c: {}}); err == nil {
				t.Error("update after close succeeded")
			}
		})
	}
}

// TestGroups shows that addresses sharing a solicited-node group share one
// membership, left with the last of them.
func TestGroups(t *testing.T) {
	a := netip.MustParseAddr("2001:db8:ff00::10")
	b := netip.MustParseAddr("2001:db8:ff01::10") // same low 24 bits: same group
	c := netip.MustParseAddr("2001:db8:ff00::20")
	g := &fakeGroups{joined: map[netip.Addr]bool{}}
	r := newResponder(responderConfig{key: key{name: "eth0", fam: ipv6}, mac: ourMAC, conn: newFakeConn(), groups: g, log: testLog()})
	steps := [][]netip.Addr{{a}, {a, b}, {b, c}, {c}, {}}
	for _, s := range steps {
		set := addrSet{}
		for _, x := range s {
			set[x] = struct{}{}
		}
		if _, _, err := r.update(set); err != nil {
			t.Fatalf("update %v: %v", s, err)
		}
	}
	want := []string{"join ff02::1:ff00:10", "join ff02::1:ff00:20", "leave ff02::1:ff00:10", "leave ff02::1:ff00:20"}
	if !slices.Equal(g.log, want) {
		t.Errorf("memberships: %v, want %v", g.log, want)
	}
}

func ndpSNM(a netip.Addr) (netip.Addr, error) {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}), nil
}

func mustUpdate(t *testing.T, r *responder, addrs ...netip.Addr) {
	t.Helper()
	set := addrSet{}
	for _, a := range addrs {
		set[a] = struct{}{}
	}
	if _, _, err := r.update(set); err != nil {
		t.Fatal(err)
	}
}

// classify says whether f is a reply or an announcement, and about what.
func classify(t *testing.T, f family, b []byte) (string, netip.Addr) {
	t.Helper()
	w := decode(t, f, b)
	kind := "reply"
	if w.EthDst == "ff:ff:ff:ff:ff:ff" || w.IPDst == "ff02::1" {
		kind = "announce"
	}
	if w.EthSrc != ourMAC.String() {
		t.Errorf("frame from %s, want %s", w.EthSrc, ourMAC)
	}
	target := w.TargetIP
	if f == ipv4 && kind == "reply" {
		target = w.SenderIP
	}
	return kind, netip.MustParseAddr(target)
}

func expect(t *testing.T, f family, b []byte, kind string, about netip.Addr) {
	t.Helper()
	k, a := classify(t, f, b)
	if k != kind || a != about {
		t.Fatalf("frame is %s about %s, want %s about %s", k, a, kind, about)
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestBurstAndRepeat follows the announcements on a fake clock: a burst of
// count frames spaced by interval, cut short when the address is lost, and
// one frame per owned address every repeat.
func TestBurstAndRepeat(t *testing.T) {
	a := netip.MustParseAddr("203.0.113.65")
	b := netip.MustParseAddr("203.0.113.66")
	synctest.Test(t, func(t *testing.T) {
		conn := newFakeConn()
		r := newResponder(responderConfig{
			key: key{name: "eth0", fam: ipv4}, mac: ourMAC, conn: conn, log: testLog(),
			count: 3, interval: time.Second, repeat: time.Minute,
		})
		r.start()
		defer r.close()
		sent := func() []netip.Addr {
			synctest.Wait()
			var out []netip.Addr
			for len(conn.out) > 0 {
				_, about := classify(t, ipv4, <-conn.out)
				out = append(out, about)
			}
			return out
		}
		check := func(when string, want ...netip.Addr) {
			t.Helper()
			if got := sent(); !slices.Equal(got, want) {
				t.Errorf("%s: announced %v, want %v", when, got, want)
			}
		}

		mustUpdate(t, r, a)
		check("at once", a)
		time.Sleep(999 * time.Millisecond)
		check("before the interval")
		time.Sleep(time.Millisecond)
		check("after one interval", a)
		mustUpdate(t, r, b) // a is lost before its third frame
		check("b gained", b)
		time.Sleep(10 * time.Second)
		check("b's burst, nothing more for a", b, b)
		time.Sleep(49 * time.Second) // a minute after start
		check("repeat", b)
	})
}
