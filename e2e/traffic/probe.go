package traffic

// This file is the client's prober: it asks the LAN who has an address,
// by ARP or NDP, every few milliseconds, and records every question and
// every answer, so that a test can say how long a failover left the
// client without an answer and who answered before and after (the
// analysis is e2e/measure's: AnalyzeFailover, Unanswered).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// DefaultProbeInterval is the prober's interval when StartProbe is given none.
const DefaultProbeInterval = 10 * time.Millisecond

// probeDrain is how long Stop still listens for answers after the last
// probe. Answers on the lab's LAN take well under a millisecond.
const probeDrain = 100 * time.Millisecond

// Reply is an answer about the prober's target.
type Reply struct {
	// At is when it reached the prober's interface (the kernel's
	// receive time), however late the prober read it.
	At time.Time
	// MAC is the hardware address it gives for the target: the ARP
	// sender hardware address, or the neighbour advertisement's target
	// link-layer address. It is where the client would send its traffic.
	MAC net.HardwareAddr
	// Solicited is true for an answer to the prober (an ARP reply to its
	// MAC, a neighbour advertisement with the Solicited flag), false for
	// an announcement to everyone (gratuitous ARP, unsolicited
	// advertisement), which still tells the client who owns the target.
	Solicited bool
}

// Probe is one question about the target and what came back for it:
// every answer read after it was sent and before the next probe was.
type Probe struct {
	Sent time.Time
	// Err says why the probe could not be sent, if it could not.
	Err     error
	Replies []Reply
}

// AnsweredWithin reports whether the probe got a solicited answer within d.
func (pb Probe) AnsweredWithin(d time.Duration) bool {
	return slices.ContainsFunc(pb.Replies, func(r Reply) bool { return r.Solicited && r.At.Sub(pb.Sent) <= d })
}

// Prober asks for one address from a lab host's LAN interface at a fixed
// interval until stopped.
type Prober struct {
	target netip.Addr
	conn   neighConn
	quit   chan struct{} // closed by Stop
	sent   chan struct{} // closed when the sender has ended
	read   chan struct{} // closed when the reader has ended
	closed atomic.Bool   // conn is being closed: read errors are expected
	stop   sync.Once

	// mu guards the fields below.
	mu     sync.Mutex
	probes []Probe
	err    error // why the reader ended early
}

// neighConn is one address family's way to ask who has an address.
type neighConn interface {
	// solicit sends one question: an ARP request, a neighbour solicitation.
	solicit() error
	// receive reads the next packet; ok says whether it answers for the
	// target. An error that is not a *net.OpError is a malformed packet.
	receive() (r Reply, ok bool, err error)
	Close() error
}

// StartProbe starts asking, from host's LAN interface, who has target:
// an ARP request (IPv4) or a neighbour solicitation to the target's
// solicited-node multicast address (IPv6) every interval (0 means
// DefaultProbeInterval), until ctx ends or Stop is called. The sockets
// live in host's namespace.
func StartProbe(ctx context.Context, p lab.Plan, host lab.Host, target netip.Addr, interval time.Duration) (*Prober, error) {
	return startProbe(ctx, p, host, target, interval, nil)
}

// startProbe is StartProbe; wrap, when not nil, wraps the socket (tests).
func startProbe(ctx context.Context, p lab.Plan, host lab.Host, target netip.Addr, interval time.Duration, wrap func(neighConn) neighConn) (*Prober, error) {
	if !p.OnLAN(host.NetNS) {
		return nil, fmt.Errorf("prober: namespace %q has no leg on the LAN of lab %s", host.NetNS, p.Name)
	}
	target = target.Unmap()
	if !target.IsValid() || target.Zone() != "" || target.IsMulticast() || target.IsUnspecified() {
		return nil, fmt.Errorf("prober: %v is not a unicast address to probe", target)
	}
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	if err := receiveTimesOn(); err != nil {
		return nil, fmt.Errorf("prober for %s: %w", target, err)
	}
	var conn neighConn
	err := lab.InNetNS(host.NetNS, func() error {
		ifi, err := net.InterfaceByName(lab.InsideIface)
		if err != nil {
			return err
		}
		if target.Is4() {
			conn, err = dialARP(ifi, target)
		} else {
			conn, err = dialNDP(ifi, target)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prober for %s from %s: %w", target, host.NetNS, err)
	}
	if wrap != nil {
		conn = wrap(conn)
	}
	pr := &Prober{target: target, conn: conn, quit: make(chan struct{}), sent: make(chan struct{}), read: make(chan struct{})}
	go pr.readLoop()
	go pr.sendLoop(ctx, interval)
	return pr, nil
}

// StartProbes starts a Prober for each target, as StartProbe does, so
// that many addresses are watched at once; on an error it stops those it
// started.
func StartProbes(ctx context.Context, p lab.Plan, host lab.Host, targets []netip.Addr, interval time.Duration) (map[netip.Addr]*Prober, error) {
	out := map[netip.Addr]*Prober{}
	for _, t := range targets {
		pr, err := StartProbe(ctx, p, host, t, interval)
		if err != nil {
			for _, pr := range out {
				pr.Stop()
			}
			return nil, err
		}
		out[t] = pr
	}
	return out, nil
}

func (pr *Prober) sendLoop(ctx context.Context, interval time.Duration) {
	defer close(pr.sent)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		pr.probe()
		select {
		case <-ctx.Done():
			return
		case <-pr.quit:
			return
		case <-tick.C:
		}
	}
}

// probe records a probe and sends it, under the lock, so that no answer
// to it can be read before it is recorded.
func (pr *Prober) probe() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.probes = append(pr.probes, Probe{Sent: time.Now()})
	if err := pr.conn.solicit(); err != nil {
		pr.probes[len(pr.probes)-1].Err = err
	}
}

func (pr *Prober) readLoop() {
	defer close(pr.read)
	for {
		r, ok, err := pr.conn.receive()
		var opErr *net.OpError
		switch {
		case err != nil && pr.closed.Load():
			return
		case errors.As(err, &opErr):
			pr.mu.Lock()
			pr.err = err
			pr.mu.Unlock()
			return
		case err != nil || !ok: // a malformed packet, or not about the target
			continue
		}
		pr.record(r)
	}
}

// record files an answer under the last probe sent before it was read.
// An answer read before the first probe answers nothing and is dropped.
func (pr *Prober) record(r Reply) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for i := len(pr.probes) - 1; i >= 0; i-- {
		if !pr.probes[i].Sent.After(r.At) {
			pr.probes[i].Replies = append(pr.probes[i].Replies, r)
			return
		}
	}
}

// Probes returns a copy of the record so far.
func (pr *Prober) Probes() []Probe { return pr.ProbesSince(0) }

// ProbesSince returns a copy of the record from the i-th probe on, which
// costs less than the whole record to a test that polls a long one.
func (pr *Prober) ProbesSince(i int) []Probe {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	i = min(max(i, 0), len(pr.probes))
	out := make([]Probe, len(pr.probes)-i)
	for j, pb := range pr.probes[i:] {
		out[j] = pb
		out[j].Replies = slices.Clone(pb.Replies)
	}
	return out
}

// Len is how many probes the record holds: a mark to read it from later
// with ProbesSince.
func (pr *Prober) Len() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.probes)
}

// Err says why the prober stopped reading before Stop, if it did.
func (pr *Prober) Err() error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.err
}

// Stop sends no more probes, listens a moment longer for late answers,
// closes the sockets and returns the whole record. Safe to call twice.
func (pr *Prober) Stop() []Probe {
	pr.stop.Do(func() {
		close(pr.quit)
		<-pr.sent
		time.Sleep(probeDrain)
		pr.closed.Store(true)
		_ = pr.conn.Close()
		<-pr.read
	})
	return pr.Probes()
}

// arpConn asks by ARP.
type arpConn struct {
	c      *arp.Client
	raw    syscall.RawConn // c's socket, for the receive times
	target netip.Addr
	mac    net.HardwareAddr // the prober's own
}

func dialARP(ifi *net.Interface, target netip.Addr) (*arpConn, error) {
	p, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		return nil, err
	}
	raw, err := stamped(p)
	if err == nil {
		var c *arp.Client
		if c, err = arp.New(ifi, p); err == nil {
			return &arpConn{c: c, raw: raw, target: target, mac: ifi.HardwareAddr}, nil
		}
	}
	p.Close()
	return nil, err
}

func (a *arpConn) solicit() error { return a.c.Request(a.target) }

func (a *arpConn) receive() (Reply, bool, error) {
	p, _, err := a.c.Read()
	if err != nil {
		return Reply{}, false, err
	}
	at, err := receivedAt(a.raw)
	if err != nil || p.SenderIP != a.target || bytes.Equal(p.SenderHardwareAddr, a.mac) {
		return Reply{}, false, err
	}
	solicited := p.Operation == arp.OperationReply && bytes.Equal(p.TargetHardwareAddr, a.mac)
	return Reply{At: at, MAC: slices.Clone(p.SenderHardwareAddr), Solicited: solicited}, true, nil
}

func (a *arpConn) Close() error { return a.c.Close() }

// ndpConn asks by NDP, from the interface's link-local address. It
// encodes with ndp but owns its socket: ndp.Conn names the interface by
// a zone name ("fe80::1%eth0"), which Go turns into an index through a
// process-wide cache of the namespace that filled it, so a socket in
// another namespace would bind and send on the wrong interface. This one
// names it by index.
type ndpConn struct {
	pc     *ipv6.PacketConn
	raw    syscall.RawConn      // pc's socket, for the receive times
	cm     *ipv6.ControlMessage // source, interface and hop limit of every probe
	group  *net.IPAddr          // the target's solicited-node multicast address
	msg    []byte               // the neighbour solicitation, encoded
	target netip.Addr
	buf    []byte
}

func dialNDP(ifi *net.Interface, target netip.Addr) (*ndpConn, error) {
	group, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return nil, err
	}
	ll, err := linkLocal(ifi)
	if err != nil {
		return nil, err
	}
	msg, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr},
	}})
	if err != nil {
		return nil, err
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", ll.WithZone(strconv.Itoa(ifi.Index)).String())
	if err != nil {
		return nil, err
	}
	raw, err := stamped(c.(*net.IPConn))
	if err != nil {
		c.Close()
		return nil, err
	}
	pc := ipv6.NewPacketConn(c)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	// RFC 4861: hop limit 255; the kernel fills in the checksum at offset 2.
	if err := errors.Join(pc.SetHopLimit(ndp.HopLimit), pc.SetMulticastHopLimit(ndp.HopLimit),
		pc.SetChecksum(true, 2), pc.SetMulticastInterface(ifi), pc.SetICMPFilter(&f)); err != nil {
		c.Close()
		return nil, err
	}
	return &ndpConn{
		pc:     pc,
		raw:    raw,
		cm:     &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: ll.AsSlice(), IfIndex: ifi.Index},
		group:  &net.IPAddr{IP: group.AsSlice()},
		msg:    msg,
		target: target,
		buf:    make([]byte, max(ifi.MTU, 1280)),
	}, nil
}

// stamped makes the kernel keep the receive time of the last packet c's
// socket gave (the first SIOCGSTAMPNS does, failing with ENOENT as no
// packet came yet) and returns the socket for receivedAt. Not
// SO_TIMESTAMPNS: that hands the time over in a control message, which
// the libraries' reads drop, and then the kernel keeps none.
func stamped(c syscall.Conn) (syscall.RawConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	if _, err := receivedAt(raw); err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("turning on receive times: %w", err)
	}
	return raw, nil
}

// receivedAt is when the packet the socket gave last reached the
// client's interface, as the kernel recorded it (SIOCGSTAMPNS): a prober
// kept off the CPU by a busy machine reads answers late, and timing
// them by the read would count a stall of the client as a silence of
// the nodes. Its error is a *net.OpError, which ends the prober.
func receivedAt(raw syscall.RawConn) (time.Time, error) {
	var ts unix.Timespec
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.SIOCGSTAMPNS, uintptr(unsafe.Pointer(&ts)))
	}); err != nil {
		return time.Time{}, &net.OpError{Op: "receive time", Net: "raw", Err: err}
	}
	if errno != 0 {
		return time.Time{}, &net.OpError{Op: "receive time", Net: "raw", Err: os.NewSyscallError("ioctl SIOCGSTAMPNS", errno)}
	}
	return time.Unix(ts.Unix()), nil
}

// linkLocal is the interface's IPv6 link-local address, which NDP
// messages come from.
func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().IsLinkLocalUnicast() && p.Addr().Is6() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv6 link-local address, which NDP needs: %v", ifi.Name, addrs)
}

func (n *ndpConn) solicit() error {
	_, err := n.pc.WriteTo(n.msg, n.cm, n.group)
	return err
}

// receive takes neighbour advertisements for the target that carry the
// target's link-layer address; one without it tells the client nothing
// (it answered a multicast solicitation, which requires the option).
func (n *ndpConn) receive() (Reply, bool, error) {
	l, _, _, err := n.pc.ReadFrom(n.buf)
	if err != nil {
		return Reply{}, false, err
	}
	at, err := receivedAt(n.raw)
	if err != nil {
		return Reply{}, false, err
	}
	m, err := ndp.ParseMessage(n.buf[:l])
	if err != nil {
		return Reply{}, false, err
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.TargetAddress != n.target {
		return Reply{}, false, nil
	}
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			return Reply{At: at, MAC: slices.Clone(lla.Addr), Solicited: na.Solicited}, true, nil
		}
	}
	return Reply{}, false, nil
}

func (n *ndpConn) Close() error { return n.pc.Close() }

// Target is the address the prober asks for.
func (pr *Prober) Target() netip.Addr { return pr.target }
