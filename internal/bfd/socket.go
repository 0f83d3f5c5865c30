package bfd

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var errAddrInUse = syscall.EADDRINUSE

// listener receives every session's packets for one family and port,
// with the TTL (hop limit) each arrived with.
type listener struct {
	conn net.PacketConn
	// p4 or p6 wraps conn; it remembers which control messages were asked
	// for, so reads must go through the same wrapper.
	p4 *ipv4.PacketConn
	p6 *ipv6.PacketConn
}

// listen opens the receiving socket for a family and port once.
func (s *Sessions) listen(v6, multiHop bool) error {
	k := listenKey{v6, multiHop}
	if s.listeners[k] != nil {
		return nil
	}
	port := PortSingleHop
	if multiHop {
		port = PortMultiHop
	}
	network, addr := "udp4", fmt.Sprintf("0.0.0.0:%d", port)
	if v6 {
		network, addr = "udp6", fmt.Sprintf("[::]:%d", port)
	}
	var l *listener
	err := s.opts.Socket(func() error {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		l = &listener{conn: c}
		if v6 {
			l.p6 = ipv6.NewPacketConn(c)
			err = l.p6.SetControlMessage(ipv6.FlagHopLimit, true)
		} else {
			l.p4 = ipv4.NewPacketConn(c)
			err = l.p4.SetControlMessage(ipv4.FlagTTL, true)
		}
		if err != nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("listening for BFD on %s %s: %w", network, addr, err)
	}
	s.listeners[k] = l
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.read(l, multiHop)
	}()
	return nil
}

// read hands every datagram to Run until the socket is closed.
func (s *Sessions) read(l *listener, multiHop bool) {
	buf := make([]byte, 512)
	for {
		var n, ttl int
		var src net.Addr
		var err error
		if l.p6 != nil {
			var cm *ipv6.ControlMessage
			n, cm, src, err = l.p6.ReadFrom(buf)
			if cm != nil {
				ttl = cm.HopLimit
			}
		} else {
			var cm *ipv4.ControlMessage
			n, cm, src, err = l.p4.ReadFrom(buf)
			if cm != nil {
				ttl = cm.TTL
			}
		}
		if err != nil {
			return
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		from, _ := netip.AddrFromSlice(ua.IP)
		r := received{data: append([]byte(nil), buf[:n]...), src: from.Unmap(), ttl: ttl,
			multiHop: multiHop, at: s.opts.Now()}
		select {
		case s.rx <- r:
		default: // Run is behind; BFD tolerates a lost packet
		}
	}
}

// setTTL makes every packet leave with TTL (hop limit) 255.
func setTTL(c *net.UDPConn, v6 bool) error {
	if v6 {
		return ipv6.NewConn(c).SetHopLimit(255)
	}
	return ipv4.NewConn(c).SetTTL(255)
}
