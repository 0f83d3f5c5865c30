package layer2

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// listLinks lists the interfaces of the calling thread's network
// namespace; with addrs, it also finds out which veths hold a global
// address (Addressed), which only matters for addresses wanted on every
// interface.
func listLinks(addrs bool) ([]link, error) {
	var ls []netlink.Link
	var err error
	for range 3 { // a dump interrupted by a concurrent change is retried
		if ls, err = netlink.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	kind := make(map[int]string, len(ls))
	for _, l := range ls {
		kind[l.Attrs().Index] = l.Type()
	}
	out := make([]link, 0, len(ls))
	for _, l := range ls {
		at := l.Attrs()
		out = append(out, link{
			Name:     at.Name,
			Index:    at.Index,
			MAC:      at.HardwareAddr,
			Up:       at.Flags&net.FlagUp != 0,
			Loopback: at.Flags&net.FlagLoopback != 0,
			NoARP:    at.RawFlags&unix.IFF_NOARP != 0,
			Port:     at.MasterIndex != 0 && kind[at.MasterIndex] != "vrf",
			Kind:     l.Type(),
		})
	}
	if !addrs {
		return out, nil
	}
	if err := markAddressed(out); err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	return out, nil
}

// markAddressed sets Addressed on the veths that could be used by
// default. The address dump is skipped when there are none: on a node
// whose kube-proxy runs in IPVS mode, kube-ipvs0 holds every Service
// address, and most nodes have no veth that matters.
func markAddressed(links []link) error {
	var candidates []int
	for i, l := range links {
		if l.Kind == "veth" {
			l.Addressed = true // as if it had one: would it be used?
			if l.byDefault() {
				candidates = append(candidates, i)
			}
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	var addrs []netlink.Addr
	var err error
	for range 3 {
		if addrs, err = netlink.AddrList(nil, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return err
	}
	global := map[int]bool{}
	for _, ad := range addrs {
		if ad.Scope == unix.RT_SCOPE_UNIVERSE {
			global[ad.LinkIndex] = true
		}
	}
	for _, i := range candidates {
		links[i].Addressed = global[links[i].Index]
	}
	return nil
}

// subscription forwards netlink link events, and events about IPv6
// link-local addresses (NDP needs one) and addresses on veths (they
// decide whether one is used by default), as wake-ups.
type subscription struct {
	events   chan struct{} // capacity 1: something changed
	broken   chan struct{} // closed when a subscription ended by itself
	done     chan struct{} // closed by close: ends the subscriptions
	finished chan struct{} // closed when the forwarding goroutine ended
	once     sync.Once
}

// subscribe follows the interfaces. watched reports whether address
// changes on an interface (by index) matter, besides IPv6 link-local
// addresses, which always do.
func subscribe(log *slog.Logger, watched func(index int) bool) (*subscription, error) {
	s := &subscription{
		events:   make(chan struct{}, 1),
		broken:   make(chan struct{}),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	onErr := func(err error) {
		select {
		case <-s.done: // closing: the socket's end is expected
		default:
			log.Warn("layer2: netlink subscription", "error", err)
		}
	}
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(links, s.done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(s.done)
		return nil, err
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, s.done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(s.done)
		go func() {
			for range links { // until the link subscription has ended
			}
		}()
		return nil, err
	}
	go s.forward(links, addrs, watched)
	return s, nil
}

func (s *subscription) forward(links <-chan netlink.LinkUpdate, addrs <-chan netlink.AddrUpdate, watched func(int) bool) {
	defer close(s.finished)
	var once sync.Once
	broke := func() { once.Do(func() { close(s.broken) }) }
	for links != nil || addrs != nil {
		select {
		case _, ok := <-links:
			if !ok {
				links = nil
				broke()
				continue
			}
		case u, ok := <-addrs:
			if !ok {
				addrs = nil
				broke()
				continue
			}
			// IPv6 link-local addresses decide whether NDP can be
			// answered; addresses on veths whether they are used by
			// default (addressesMatter). Others do not matter.
			linkLocal6 := u.LinkAddress.IP.To4() == nil && u.LinkAddress.IP.IsLinkLocalUnicast()
			if !linkLocal6 && !watched(u.LinkIndex) {
				continue
			}
		}
		select {
		case s.events <- struct{}{}:
		default:
		}
	}
}

// close ends the subscription and waits for its goroutine. Nil-safe.
func (s *subscription) close() {
	if s == nil {
		return
	}
	s.once.Do(func() { close(s.done) })
	<-s.finished
}
