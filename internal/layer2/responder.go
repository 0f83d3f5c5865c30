package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	xipv6 "golang.org/x/net/ipv6"
)

// writeTimeout bounds one frame's write, which happens with the
// responder's lock held (see responder.mu).
const writeTimeout = time.Second

// groups is the multicast membership an IPv6 responder keeps: joining a
// solicited-node group makes the NIC accept the group's frames and the
// kernel send MLD reports, so that snooping switches forward solicitations
// to us. *groupConn implements it, and so would *ndp.Conn.
type groups interface {
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
	Close() error
}

// responderConfig is everything a responder is made of.
type responderConfig struct {
	key   key
	index int // the interface's index when the sockets opened
	mac   net.HardwareAddr
	// conn carries whole Ethernet frames: a packet socket with
	// socketFilter applied, or a fake in tests.
	conn net.PacketConn
	// groups is nil for IPv4.
	groups   groups
	log      *slog.Logger
	metrics  *Metrics
	count    int
	interval time.Duration
	repeat   time.Duration
	// readFailed is called after a failed read: the interface may be
	// gone, and the announcer should look.
	readFailed func()
	// local reports whether a MAC is one of this node's interfaces'
	// (nil: none is); their announcements are no conflict.
	local func(net.HardwareAddr) bool
	// claimed, when set, hears of the others' announcements of owned
	// addresses (Options.Claimed).
	claimed func(netip.Addr, net.HardwareAddr) bool
	// conflicts logs the unexpected ones, rate-limited (nil: not logged;
	// they are counted in metrics either way).
	conflicts *conflictLog
}

// responder answers for a set of addresses on one interface in one family
// and announces them when they are gained. It runs two goroutines: one
// reads requests, one sends gratuitous bursts and repeats.
type responder struct {
	cfg  responderConfig
	wake chan struct{} // capacity 1: new bursts are pending
	done chan struct{} // closed by close
	wg   sync.WaitGroup

	// mu guards the fields below. It is held across every frame written,
	// from the ownership check to the end of the write, so that once
	// update has dropped an address no frame about it goes out. The
	// reading goroutine never holds it while blocked in a read.
	mu      sync.Mutex
	owned   addrSet
	pending map[netip.Addr]burst
	joined  map[netip.Addr]int // solicited-node group -> owned addresses in it
	closed  bool
}

// burst is the state of a gained address's gratuitous burst.
type burst struct {
	left int
	due  time.Time
}

func newResponder(cfg responderConfig) *responder {
	return &responder{
		cfg:     cfg,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		owned:   addrSet{},
		pending: map[netip.Addr]burst{},
		joined:  map[netip.Addr]int{},
	}
}

// openResponder opens the sockets of the responder for k on ifi.
func openResponder(k key, ifi *net.Interface, cfg responderConfig) (*responder, error) {
	filter, err := socketFilter(k.fam)
	if err != nil {
		return nil, err
	}
	cfg.key, cfg.index, cfg.mac = k, ifi.Index, ifi.HardwareAddr
	proto := etherTypeARP
	if k.fam == ipv6 {
		proto = etherTypeIPv6
		if cfg.groups, err = listenGroups(ifi); err != nil {
			return nil, err
		}
	}
	pc, err := packet.Listen(ifi, packet.Raw, proto, &packet.Config{Filter: filter})
	if err != nil {
		if cfg.groups != nil {
			_ = cfg.groups.Close()
		}
		return nil, fmt.Errorf("layer2: packet socket on %s: %w", ifi.Name, err)
	}
	cfg.conn = pc
	return newResponder(cfg), nil
}

// groupConn holds solicited-node memberships on one interface: an ICMPv6
// socket that receives nothing (every type is filtered out; requests are
// read from the packet socket).
//
// It does what ndp.Listen(ifi, ndp.LinkLocal) and ndp.Conn.JoinGroup
// would, without binding to the link-local address: that bind resolves
// the address's zone by interface name through the net package's cache,
// which keeps a deleted interface's index for up to a minute, so an
// interface that is deleted and created again could not answer NDP for
// that long ("bind: no such device").
type groupConn struct {
	pc  *xipv6.PacketConn
	ifi *net.Interface
}

func listenGroups(ifi *net.Interface) (*groupConn, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("layer2: addresses of %s: %w", ifi.Name, err)
	}
	if !slices.ContainsFunc(addrs, func(a net.Addr) bool {
		n, ok := a.(*net.IPNet)
		return ok && n.IP.To4() == nil && n.IP.IsLinkLocalUnicast()
	}) {
		return nil, fmt.Errorf("layer2: no NDP on %s: %w", ifi.Name, ErrNoLinkLocal)
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("layer2: ICMPv6 socket for %s: %w", ifi.Name, err)
	}
	pc := xipv6.NewPacketConn(c)
	var none xipv6.ICMPFilter
	none.SetAll(true)
	if err := pc.SetICMPFilter(&none); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("layer2: ICMPv6 socket for %s: %w", ifi.Name, err)
	}
	return &groupConn{pc: pc, ifi: ifi}, nil
}

func (g *groupConn) JoinGroup(a netip.Addr) error {
	return g.pc.JoinGroup(g.ifi, &net.IPAddr{IP: a.AsSlice()})
}

func (g *groupConn) LeaveGroup(a netip.Addr) error {
	return g.pc.LeaveGroup(g.ifi, &net.IPAddr{IP: a.AsSlice()})
}

func (g *groupConn) Close() error { return g.pc.Close() }

// start starts the responder's goroutines.
func (r *responder) start() {
	r.wg.Add(2)
	go r.readLoop()
	go r.announceLoop()
}

// update makes addrs the set answered for. Lost addresses are not answered
// or announced any more once update returns; gained ones get a burst.
func (r *responder) update(addrs addrSet) (gained, lost []netip.Addr, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, errors.New("layer2: responder closed")
	}
	var errs []error
	for a := range r.owned {
		if _, ok := addrs[a]; !ok {
			delete(r.owned, a)
			delete(r.pending, a)
			lost = append(lost, a)
			errs = append(errs, r.leaveLocked(a))
		}
	}
	now := time.Now()
	for a := range addrs {
		if _, ok := r.owned[a]; ok {
			continue
		}
		r.owned[a] = struct{}{}
		gained = append(gained, a)
		errs = append(errs, r.joinLocked(a))
		if r.cfg.count > 0 {
			r.pending[a] = burst{left: r.cfg.count, due: now}
		}
	}
	if len(gained) > 0 {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	return gained, lost, errors.Join(errs...)
}

// joinLocked joins the solicited-node group of a newly owned IPv6
// address. Several addresses can share a group.
func (r *responder) joinLocked(a netip.Addr) error {
	if r.cfg.groups == nil {
		return nil
	}
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		return err
	}
	r.joined[g]++
	if r.joined[g] > 1 {
		return nil
	}
	if err := r.cfg.groups.JoinGroup(g); err != nil {
		delete(r.joined, g)
		return fmt.Errorf("layer2: joining %s for %s on %s: %w", g, a, r.cfg.key.name, err)
	}
	return nil
}

// leaveLocked leaves the group of a lost IPv6 address when no other owned
// address needs it.
func (r *responder) leaveLocked(a netip.Addr) error {
	if r.cfg.groups == nil {
		return nil
	}
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil || r.joined[g] == 0 {
		return nil
	}
	r.joined[g]--
	if r.joined[g] > 0 {
		return nil
	}
	delete(r.joined, g)
	if err := r.cfg.groups.LeaveGroup(g); err != nil {
		return fmt.Errorf("layer2: leaving %s for %s on %s: %w", g, a, r.cfg.key.name, err)
	}
	return nil
}

// addresses returns what the responder answers for, sorted.
func (r *responder) addresses() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owned.sorted()
}

// close stops answering at once, closes the sockets and waits for the
// goroutines. It is safe to call twice.
func (r *responder) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.owned, r.pending = addrSet{}, map[netip.Addr]burst{}
	r.mu.Unlock()
	close(r.done)
	_ = r.cfg.conn.Close()
	if r.cfg.groups != nil {
		_ = r.cfg.groups.Close() // the kernel leaves its groups
	}
	r.wg.Wait()
}

func (r *responder) readLoop() {
	defer r.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, _, err := r.cfg.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-r.done:
				return
			default:
			}
			r.cfg.log.Debug("layer2: read failed", "interface", r.cfg.key.name, "family", r.cfg.key.fam, "error", err)
			if r.cfg.readFailed != nil {
				r.cfg.readFailed()
			}
			select { // do not spin on a socket that keeps failing
			case <-r.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		req, err := parseRequest(r.cfg.key.fam, buf[:n])
		if err != nil || bytes.Equal(req.senderMAC, r.cfg.mac) {
			continue
		}
		r.answer(req)
	}
}

// answer replies to req if its target is owned, checking and writing
// under the lock.
func (r *responder) answer(req request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.owned[req.target]; !ok {
		return
	}
	if req.claim {
		if r.cfg.local != nil && r.cfg.local(req.senderMAC) {
			return
		}
		if r.cfg.claimed != nil && r.cfg.claimed(req.target, req.senderMAC) {
			return // the successor of a handoff
		}
		// Anyone on the LAN can send these, as fast as they like: count
		// every one, log a few.
		r.cfg.metrics.conflict(r.cfg.key)
		r.cfg.conflicts.report(req.target, req.senderMAC, r.cfg.key)
		return
	}
	frame, err := reply(r.cfg.key.fam, r.cfg.mac, req)
	if err == nil {
		err = r.writeLocked(frame)
	}
	if err != nil {
		r.cfg.log.Warn("layer2: answering failed", "address", req.target, "to", req.senderMAC.String(), "interface", r.cfg.key.name, "error", err)
		return
	}
	r.cfg.metrics.answer(r.cfg.key)
	r.cfg.log.Debug("layer2: answered", "address", req.target, "to", req.senderMAC.String(), "from", req.senderIP, "interface", r.cfg.key.name)
}

func (r *responder) writeLocked(frame []byte) error {
	_ = r.cfg.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := r.cfg.conn.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

// announceLocked sends one gratuitous frame for a.
func (r *responder) announceLocked(a netip.Addr) {
	frame, err := announcement(r.cfg.key.fam, r.cfg.mac, a)
	if err == nil {
		err = r.writeLocked(frame)
	}
	if err != nil {
		r.cfg.log.Warn("layer2: gratuitous announcement failed", "address", a, "interface", r.cfg.key.name, "error", err)
		return
	}
	r.cfg.metrics.announce(r.cfg.key)
}

// announceDue sends the burst frames that are due and returns when the
// next one is (zero: none pending).
func (r *responder) announceDue(now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for a, b := range r.pending {
		if _, ok := r.owned[a]; !ok { // update drops both; never announce the unowned
			delete(r.pending, a)
			continue
		}
		if b.due.After(now) {
			if next.IsZero() || b.due.Before(next) {
				next = b.due
			}
			continue
		}
		r.announceLocked(a)
		b.left--
		if b.left <= 0 {
			delete(r.pending, a)
			continue
		}
		b.due = now.Add(r.cfg.interval)
		r.pending[a] = b
		if next.IsZero() || b.due.Before(next) {
			next = b.due
		}
	}
	return next
}

// announceAll sends one gratuitous frame for every owned address that is
// not in a burst already.
func (r *responder) announceAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.owned.sorted() {
		if _, ok := r.pending[a]; !ok {
			r.announceLocked(a)
		}
	}
}

func (r *responder) announceLoop() {
	defer r.wg.Done()
	var tick <-chan time.Time
	if r.cfg.repeat > 0 {
		t := time.NewTicker(r.cfg.repeat)
		defer t.Stop()
		tick = t.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if next := r.announceDue(time.Now()); !next.IsZero() {
			timer.Reset(time.Until(next))
			due = timer.C
		}
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-due:
		case <-tick:
			r.announceAll()
		}
	}
}
