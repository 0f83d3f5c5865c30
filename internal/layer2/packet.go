package layer2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Wire constants. Frames are read and written whole, Ethernet header
// included, on packet sockets.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
	minFrameLen   = 60 // without the FCS; shorter frames are padded
	ipv6HeaderLen = 40
	protoICMPv6   = 58
	ndpHopLimit   = 255 // RFC 4861: NDP messages with another hop limit are dropped
	icmpTypeNS    = 135
	nsLen         = 24 // type, code, checksum, reserved, target
)

// Reasons a frame is not a request to answer. Callers only skip such frames;
// the distinctions exist for the tests.
var (
	errShort      = errors.New("frame too short")
	errNotRequest = errors.New("not a request")
	errMalformed  = errors.New("malformed request")
	errChecksum   = errors.New("bad ICMPv6 checksum")
)

func ethBroadcast() net.HardwareAddr { return net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }
func ethZero() net.HardwareAddr      { return net.HardwareAddr{0, 0, 0, 0, 0, 0} }

// allNodes is ff02::1.
func allNodes() netip.Addr { return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01}) }

// request is a question about an address seen on the wire, reduced to what
// an answer needs.
type request struct {
	target netip.Addr
	// senderIP is where the answer goes at the IP/ARP layer. It is the
	// unspecified address for an ARP probe (RFC 5227) and for an IPv6
	// duplicate address detection solicitation (RFC 4862).
	senderIP netip.Addr
	// senderMAC is where the answer goes at the Ethernet layer.
	senderMAC net.HardwareAddr
	// claim: an ARP announcement (sender IP = target IP). The sender says
	// the address is its own; it asks nothing.
	claim bool
}

// parseRequest decodes a frame read from a family's packet socket.
func parseRequest(f family, frame []byte) (request, error) {
	if f == ipv4 {
		return parseARP(frame)
	}
	return parseNS(frame)
}

// parseARP decodes an ARP request for an IPv4 address over Ethernet.
func parseARP(frame []byte) (request, error) {
	if len(frame) < ethHeaderLen {
		return request{}, errShort
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return request{}, errNotRequest
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(frame[ethHeaderLen:]); err != nil {
		return request{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if p.HardwareType != 1 || p.ProtocolType != etherTypeIPv4 || p.HardwareAddrLength != 6 || p.IPLength != 4 {
		return request{}, fmt.Errorf("%w: not IPv4 over Ethernet", errMalformed)
	}
	if p.Operation != arp.OperationRequest {
		return request{}, errNotRequest
	}
	if !unicastMAC(p.SenderHardwareAddr) {
		return request{}, fmt.Errorf("%w: sender hardware address %s", errMalformed, p.SenderHardwareAddr)
	}
	if p.TargetIP.IsUnspecified() || p.TargetIP.IsMulticast() {
		return request{}, fmt.Errorf("%w: target %s", errMalformed, p.TargetIP)
	}
	return request{
		target:    p.TargetIP,
		senderIP:  p.SenderIP,
		senderMAC: p.SenderHardwareAddr,
		claim:     p.SenderIP == p.TargetIP,
	}, nil
}

// parseNS decodes an IPv6 Neighbor Solicitation and checks it as RFC 4861
// section 7.1.1 asks. Extension headers are not followed: solicitations do
// not carry them.
func parseNS(frame []byte) (request, error) {
	if len(frame) < ethHeaderLen+ipv6HeaderLen {
		return request{}, errShort
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 {
		return request{}, errNotRequest
	}
	ip := frame[ethHeaderLen:]
	if ip[0]>>4 != 6 {
		return request{}, fmt.Errorf("%w: IP version %d", errMalformed, ip[0]>>4)
	}
	if ip[6] != protoICMPv6 {
		return request{}, errNotRequest
	}
	if ip[7] != ndpHopLimit {
		return request{}, fmt.Errorf("%w: hop limit %d", errMalformed, ip[7])
	}
	payload := int(binary.BigEndian.Uint16(ip[4:6]))
	if ipv6HeaderLen+payload > len(ip) {
		return request{}, errShort
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	msg := ip[ipv6HeaderLen : ipv6HeaderLen+payload]
	if len(msg) < nsLen {
		return request{}, errShort
	}
	if msg[0] != icmpTypeNS {
		return request{}, errNotRequest
	}
	if msg[1] != 0 {
		return request{}, fmt.Errorf("%w: ICMPv6 code %d", errMalformed, msg[1])
	}
	if icmpv6Checksum(src, dst, msg) != 0 {
		return request{}, errChecksum
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return request{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return request{}, errNotRequest
	}
	target := ns.TargetAddress
	if target.IsMulticast() || target.IsUnspecified() || target.Is4In6() {
		return request{}, fmt.Errorf("%w: target %s", errMalformed, target)
	}
	if src.IsMulticast() {
		return request{}, fmt.Errorf("%w: source %s", errMalformed, src)
	}
	var sll net.HardwareAddr
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			sll = lla.Addr
		}
	}
	if src.IsUnspecified() {
		// Duplicate address detection: sent to the target's
		// solicited-node group, without a source link-layer option.
		snm, err := ndp.SolicitedNodeMulticast(target)
		if err != nil || dst != snm {
			return request{}, fmt.Errorf("%w: DAD solicitation sent to %s", errMalformed, dst)
		}
		if sll != nil {
			return request{}, fmt.Errorf("%w: DAD solicitation with a source link-layer address", errMalformed)
		}
	}
	// Copy: sll and frame may share the caller's read buffer.
	mac := slices.Clone(sll)
	if mac == nil {
		mac = slices.Clone(net.HardwareAddr(frame[6:12]))
	}
	if !unicastMAC(mac) {
		return request{}, fmt.Errorf("%w: sender hardware address %s", errMalformed, mac)
	}
	return request{target: target, senderIP: src, senderMAC: mac}, nil
}

// reply builds the frame answering req from mac: an ARP reply, or a
// Neighbor Advertisement. An ARP probe gets a reply whose target IP is 0.0.0.0, unicast
// to the prober, as Linux does, so that the prober sees the conflict. A
// DAD solicitation gets an advertisement to all nodes without the
// Solicited flag (RFC 4861 section 7.2.4).
func reply(f family, mac net.HardwareAddr, req request) ([]byte, error) {
	if f == ipv4 {
		p, err := arp.NewPacket(arp.OperationReply, mac, req.target, req.senderMAC, req.senderIP)
		if err != nil {
			return nil, err
		}
		b, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		return ethernetFrame(req.senderMAC, mac, etherTypeARP, b), nil
	}
	na := &ndp.NeighborAdvertisement{
		Solicited:     true,
		Override:      true,
		TargetAddress: req.target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	dst, dstMAC := req.senderIP, req.senderMAC
	if dst.IsUnspecified() {
		na.Solicited = false
		dst, dstMAC = allNodes(), multicastMAC(allNodes())
	}
	return ipv6Frame(dstMAC, mac, req.target, dst, na)
}

// announcement builds the unsolicited frame that tells the segment addr is
// at mac: a gratuitous ARP request (sender = target = addr, broadcast), or
// a Neighbor Advertisement to all nodes with Override set, which replaces
// the link-layer address in every neighbour cache that has an entry.
func announcement(f family, mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	if f == ipv4 {
		p, err := arp.NewPacket(arp.OperationRequest, mac, addr, ethZero(), addr)
		if err != nil {
			return nil, err
		}
		b, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		return ethernetFrame(ethBroadcast(), mac, etherTypeARP, b), nil
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	return ipv6Frame(multicastMAC(allNodes()), mac, addr, allNodes(), na)
}

func ethernetFrame(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	b := make([]byte, max(ethHeaderLen+len(payload), minFrameLen))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	copy(b[ethHeaderLen:], payload)
	return b
}

// ipv6Frame wraps an NDP message. Advertisements are sent from the address
// they advertise, as Linux does for its own addresses: the address belongs
// to this node as far as the segment knows, and some tools (ndisc6) ignore
// advertisements for a global address that come from a link-local one.
func ipv6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, m ndp.Message) ([]byte, error) {
	src, dst = src.WithZone(""), dst.WithZone("")
	if !src.Is6() || !dst.Is6() {
		return nil, fmt.Errorf("layer2: NDP between %s and %s", src, dst)
	}
	msg, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, err
	}
	ip := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(msg))
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(msg)))
	ip[6] = protoICMPv6
	ip[7] = ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return ethernetFrame(dstMAC, srcMAC, etherTypeIPv6, append(ip, msg...)), nil
}

// icmpv6Checksum is the Internet checksum of msg under the IPv6
// pseudo-header. Over a message that carries its checksum it is 0 when the
// checksum is right.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(msg))>>16 + uint32(len(msg))&0xffff + protoICMPv6
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// multicastMAC is the Ethernet group address of an IPv6 multicast address
// (RFC 2464 section 7).
func multicastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// unicastMAC reports whether m is a usable Ethernet source: 6 bytes, not a
// group address, not all zeros.
func unicastMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0]&1 == 0 && string(m) != string(ethZero())
}

// socketFilter is the BPF program of a family's packet socket. It keeps
// only frames that arrived for this host (dropping what promiscuous mode
// shows of other hosts' traffic, and our own outgoing frames) and that may
// be requests: ARP requests, or ICMPv6 Neighbor Solicitations directly
// after the IPv6 header, whatever their destination. Unicast solicitations
// to an LB address (a neighbour verifying reachability, RFC 4861 section
// 7.3.1) never reach an ICMPv6 socket, because the kernel does not own
// the address; the packet socket sees them.
func socketFilter(f family) ([]bpf.RawInstruction, error) {
	prog := append([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OTHERHOST},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING},
	}, protocolFilter(f)...)
	return bpf.Assemble(resolveDrops(prog))
}

// protocolFilter is the part of socketFilter that looks at the frame's
// bytes; its JumpIfs mean "drop" when true (see resolveDrops).
func protocolFilter(f family) []bpf.Instruction {
	if f == ipv4 {
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 2}, // ARP operation
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(arp.OperationRequest)},
			bpf.RetConstant{Val: 0xffff},
			bpf.RetConstant{Val: 0},
		}
	}
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1}, // next header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6},
		bpf.LoadAbsolute{Off: ethHeaderLen + ipv6HeaderLen, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpTypeNS},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
}

// resolveDrops points every JumpIf's true branch at the program's last
// instruction, which drops the frame.
func resolveDrops(prog []bpf.Instruction) []bpf.Instruction {
	drop := len(prog) - 1
	for i, ins := range prog {
		if j, ok := ins.(bpf.JumpIf); ok {
			j.SkipTrue = uint8(drop - i - 1)
			prog[i] = j
		}
	}
	return prog
}
