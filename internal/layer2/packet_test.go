package layer2

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

// Addresses of the packet tests.
var (
	ourMAC    = mac("02:00:00:00:00:aa")
	theirMAC  = mac("02:00:00:00:00:bb")
	ourLL     = netip.MustParseAddr("fe80::aa")
	theirLL   = netip.MustParseAddr("fe80::bb")
	theirV4   = netip.MustParseAddr("198.51.100.2")
	theirV6   = netip.MustParseAddr("2001:db8:100::2")
	lbV4      = netip.MustParseAddr("203.0.113.65")
	lbV6      = netip.MustParseAddr("2001:db8:ff00::10")
	lbV6Group = netip.MustParseAddr("ff02::1:ff00:10")
)

// arpFrame builds an ARP frame with mdlayher/ethernet and mdlayher/arp,
// then lets edit change its bytes.
func arpFrame(t testing.TB, op arp.Operation, sha net.HardwareAddr, spa, tpa netip.Addr, edit func([]byte)) []byte {
	p, err := arp.NewPacket(op, sha, spa, ethernet.Broadcast, tpa)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := p.MarshalBinary()
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: sha, EtherType: ethernet.EtherTypeARP, Payload: pb}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(b)
	}
	return b
}

// ndpFrame builds an IPv6 frame carrying m, its checksum computed by
// mdlayher/ndp (golang.org/x/net/icmp), then lets edit change its bytes.
func ndpFrame(t testing.TB, ethSrc net.HardwareAddr, src, dst netip.Addr, hops uint8, m ndp.Message, edit func([]byte)) []byte {
	msg, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 14+40+len(msg))
	copy(b[0:6], []byte{0x33, 0x33, 0xff, 0, 0, 0x10})
	copy(b[6:12], ethSrc)
	binary.BigEndian.PutUint16(b[12:14], 0x86dd)
	b[14] = 0x60
	binary.BigEndian.PutUint16(b[18:20], uint16(len(msg)))
	b[20], b[21] = 58, hops
	s, d := src.As16(), dst.As16()
	copy(b[22:38], s[:])
	copy(b[38:54], d[:])
	copy(b[54:], msg)
	if edit != nil {
		edit(b)
	}
	return b
}

func ns(target netip.Addr, opts ...ndp.Option) *ndp.NeighborSolicitation {
	return &ndp.NeighborSolicitation{TargetAddress: target, Options: opts}
}

func sll(m net.HardwareAddr) ndp.Option { return &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: m} }

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		fam     family
		frame   func(t testing.TB) []byte
		want    request
		wantErr error
	}{
		{
			name: "ARP request",
			fam:  ipv4,
			frame: func(t testing.TB) []byte {
				return arpFrame(t, arp.OperationRequest, theirMAC, theirV4, lbV4, nil)
			},
			want: request{target: lbV4, senderIP: theirV4, senderMAC: theirMAC},
		},
		{
			name: "ARP probe (RFC 5227): sender 0.0.0.0, to be answered",
			fam:  ipv4,
			frame: func(t testing.TB) []byte {
				return arpFrame(t, arp.OperationRequest, theirMAC, netip.IPv4Unspecified(), lbV4, nil)
			},
			want: request{target: lbV4, senderIP: netip.IPv4Unspecified(), senderMAC: theirMAC},
		},
		{
			name: "ARP announcement by another host is a claim",
			fam:  ipv4,
			frame: func(t testing.TB) []byte {
				return arpFrame(t, arp.OperationRequest, theirMAC, lbV4, lbV4, nil)
			},
			want: request{target: lbV4, senderIP: lbV4, senderMAC: theirMAC, claim: true},
		},
		{
			name: "ARP reply",
			fam:  ipv4,
			frame: func(t testing.TB) []byte {
				return arpFrame(t, arp.OperationReply, theirMAC, theirV4, lbV4, nil)
			},
			wantErr: errNotRequest,
		},
		{
			name: "ARP for another protocol than IPv4",
			fam:  ipv4,
			frame: func(t testing.TB) []byte {
				return arpFrame(t, arp.OperationRequest, theirMAC, theirV4, lbV4, func(b []byte) { b[16] = 0x86 })
			},
			wantErr: errMalformed,
		},
		{
			name: "ARP from a group hardware address",
			fam:  ipv4,
			frame: func(t testing.TB) []byte {
				return arpFrame(t, arp.OperationRequest, mac("03:00:00:00:00:bb"), theirV4, lbV4, nil)
			},
			wantErr: errMalformed,
		},
		{
			name:    "ARP cut short",
			fam:     ipv4,
			frame:   func(t testing.TB) []byte { return arpFrame(t, arp.OperationRequest, theirMAC, theirV4, lbV4, nil)[:30] },
			wantErr: errMalformed,
		},
		{
			name:    "not even an Ethernet header",
			fam:     ipv4,
			frame:   func(t testing.TB) []byte { return make([]byte, 10) },
			wantErr: errShort,
		},
		{
			name: "NS to the solicited-node group, source link-layer option",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(lbV6, sll(theirMAC)), nil)
			},
			want: request{target: lbV6, senderIP: theirV6, senderMAC: theirMAC},
		},
		{
			name: "unicast NS (reachability check) without the option: reply to the Ethernet source",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirLL, lbV6, 255, ns(lbV6), nil)
			},
			want: request{target: lbV6, senderIP: theirLL, senderMAC: theirMAC},
		},
		{
			name: "duplicate address detection: unspecified source",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, netip.IPv6Unspecified(), lbV6Group, 255, ns(lbV6), nil)
			},
			want: request{target: lbV6, senderIP: netip.IPv6Unspecified(), senderMAC: theirMAC},
		},
		{
			name: "DAD to an address other than the target's group",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, netip.IPv6Unspecified(), lbV6, 255, ns(lbV6), nil)
			},
			wantErr: errMalformed,
		},
		{
			name: "DAD with a source link-layer option",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, netip.IPv6Unspecified(), lbV6Group, 255, ns(lbV6, sll(theirMAC)), nil)
			},
			wantErr: errMalformed,
		},
		{
			name: "NS that crossed a router (hop limit 64)",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 64, ns(lbV6, sll(theirMAC)), nil)
			},
			wantErr: errMalformed,
		},
		{
			name: "NS with a bad checksum",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(lbV6, sll(theirMAC)), func(b []byte) { b[56] ^= 1 })
			},
			wantErr: errChecksum,
		},
		{
			name: "NS with a nonzero code",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(lbV6, sll(theirMAC)), func(b []byte) { b[55] = 1 })
			},
			wantErr: errMalformed,
		},
		{
			name: "NS for a multicast target",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(netip.MustParseAddr("ff02::1"), sll(theirMAC)), nil)
			},
			wantErr: errMalformed,
		},
		{
			name: "neighbor advertisement",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, &ndp.NeighborAdvertisement{TargetAddress: lbV6}, nil)
			},
			wantErr: errNotRequest,
		},
		{
			name: "IPv6 payload length beyond the frame",
			fam:  ipv6,
			frame: func(t testing.TB) []byte {
				return ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(lbV6), func(b []byte) { b[19] += 8 })
			},
			wantErr: errShort,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.fam, tt.frame(t))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(request{}), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// onWire is what a reply or announcement says, decoded with mdlayher's
// packages rather than ours.
type onWire struct {
	EthDst, EthSrc string
	Op             string // ARP operation, or "NA"
	SenderIP       string // ARP sender, or IPv6 source
	TargetIP       string // ARP target, or NA target
	TargetMAC      string // ARP target hardware address, or the NA's target link-layer option
	IPDst          string // IPv6 destination
	Solicited      bool
	Override       bool
	HopLimit       int
	ChecksumOK     bool
}

func decode(t *testing.T, f family, b []byte) onWire {
	t.Helper()
	var e ethernet.Frame
	if err := e.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	w := onWire{EthDst: e.Destination.String(), EthSrc: e.Source.String()}
	if f == ipv4 {
		var p arp.Packet
		if err := p.UnmarshalBinary(e.Payload); err != nil {
			t.Fatal(err)
		}
		w.Op, w.SenderIP, w.TargetIP, w.TargetMAC = p.Operation.String(), p.SenderIP.String(), p.TargetIP.String(), p.TargetHardwareAddr.String()
		if p.SenderHardwareAddr.String() != w.EthSrc {
			t.Errorf("ARP sender hardware address %s, Ethernet source %s", p.SenderHardwareAddr, w.EthSrc)
		}
		return w
	}
	ip := e.Payload
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	msg := ip[40 : 40+int(binary.BigEndian.Uint16(ip[4:6]))]
	// Recompute the checksum with x/net/icmp through ndp and compare.
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	na := m.(*ndp.NeighborAdvertisement)
	w.Op, w.SenderIP, w.IPDst, w.TargetIP = "NA", src.String(), dst.String(), na.TargetAddress.String()
	w.Solicited, w.Override, w.HopLimit = na.Solicited, na.Override, int(ip[7])
	w.ChecksumOK = string(again[2:4]) == string(msg[2:4])
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			w.TargetMAC = lla.Addr.String()
		}
	}
	return w
}

func TestReplyAndAnnouncement(t *testing.T) {
	tests := []struct {
		name  string
		fam   family
		build func() ([]byte, error)
		want  onWire
	}{
		{
			name: "ARP reply, unicast to the asker",
			fam:  ipv4,
			build: func() ([]byte, error) {
				return reply(ipv4, ourMAC, request{target: lbV4, senderIP: theirV4, senderMAC: theirMAC})
			},
			want: onWire{EthDst: theirMAC.String(), EthSrc: ourMAC.String(), Op: "OperationReply", SenderIP: lbV4.String(), TargetIP: theirV4.String(), TargetMAC: theirMAC.String()},
		},
		{
			name: "ARP reply to a probe: target 0.0.0.0, unicast to the prober",
			fam:  ipv4,
			build: func() ([]byte, error) {
				return reply(ipv4, ourMAC, request{target: lbV4, senderIP: netip.IPv4Unspecified(), senderMAC: theirMAC})
			},
			want: onWire{EthDst: theirMAC.String(), EthSrc: ourMAC.String(), Op: "OperationReply", SenderIP: lbV4.String(), TargetIP: "0.0.0.0", TargetMAC: theirMAC.String()},
		},
		{
			name:  "gratuitous ARP: broadcast request, sender = target",
			fam:   ipv4,
			build: func() ([]byte, error) { return announcement(ipv4, ourMAC, lbV4) },
			want:  onWire{EthDst: "ff:ff:ff:ff:ff:ff", EthSrc: ourMAC.String(), Op: "OperationRequest", SenderIP: lbV4.String(), TargetIP: lbV4.String(), TargetMAC: "00:00:00:00:00:00"},
		},
		{
			name: "solicited NA to the asker, from the advertised address",
			fam:  ipv6,
			build: func() ([]byte, error) {
				return reply(ipv6, ourMAC, request{target: lbV6, senderIP: theirV6, senderMAC: theirMAC})
			},
			want: onWire{EthDst: theirMAC.String(), EthSrc: ourMAC.String(), Op: "NA", SenderIP: lbV6.String(), IPDst: theirV6.String(), TargetIP: lbV6.String(), TargetMAC: ourMAC.String(), Solicited: true, Override: true, HopLimit: 255, ChecksumOK: true},
		},
		{
			name: "NA answering DAD goes to all nodes, not solicited",
			fam:  ipv6,
			build: func() ([]byte, error) {
				return reply(ipv6, ourMAC, request{target: lbV6, senderIP: netip.IPv6Unspecified(), senderMAC: theirMAC})
			},
			want: onWire{EthDst: "33:33:00:00:00:01", EthSrc: ourMAC.String(), Op: "NA", SenderIP: lbV6.String(), IPDst: "ff02::1", TargetIP: lbV6.String(), TargetMAC: ourMAC.String(), Override: true, HopLimit: 255, ChecksumOK: true},
		},
		{
			name:  "unsolicited NA: all nodes, Override, target link-layer address",
			fam:   ipv6,
			build: func() ([]byte, error) { return announcement(ipv6, ourMAC, lbV6) },
			want:  onWire{EthDst: "33:33:00:00:00:01", EthSrc: ourMAC.String(), Op: "NA", SenderIP: lbV6.String(), IPDst: "ff02::1", TargetIP: lbV6.String(), TargetMAC: ourMAC.String(), Override: true, HopLimit: 255, ChecksumOK: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 60 {
				t.Errorf("frame of %d bytes, want at least 60", len(b))
			}
			if diff := cmp.Diff(tt.want, decode(t, tt.fam, b)); diff != "" {
				t.Errorf("on the wire (-want +got):\n%s", diff)
			}
			// What we send is never something we would answer.
			if req, err := parseRequest(tt.fam, b); err == nil && !req.claim {
				t.Errorf("our own frame parses as a request: %+v", req)
			}
		})
	}
}

// TestChecksum checks ours against x/net/icmp's on frames it built.
func TestChecksum(t *testing.T) {
	for _, m := range []ndp.Message{ns(lbV6, sll(theirMAC)), ns(lbV6), &ndp.NeighborAdvertisement{TargetAddress: lbV6}} {
		b := ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, m, nil)
		src, dst := netip.AddrFrom16([16]byte(b[22:38])), netip.AddrFrom16([16]byte(b[38:54]))
		if got := icmpv6Checksum(src, dst, b[54:]); got != 0 {
			t.Errorf("checksum over %T with its checksum = %#04x, want 0", m, got)
		}
		b[60] ^= 0x40
		if got := icmpv6Checksum(src, dst, b[54:]); got == 0 {
			t.Errorf("checksum over a changed %T = 0", m)
		}
	}
}

// TestFilter runs the byte-matching part of the socket filters in x/net/bpf's
// VM (which has no packet type; the kernel's part is exercised by the
// network tests).
func TestFilter(t *testing.T) {
	arpReq := arpFrame(t, arp.OperationRequest, theirMAC, theirV4, lbV4, nil)
	arpRep := arpFrame(t, arp.OperationReply, theirMAC, theirV4, lbV4, nil)
	nsF := ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(lbV6, sll(theirMAC)), nil)
	naF := ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, &ndp.NeighborAdvertisement{TargetAddress: lbV6}, nil)
	udp := ndpFrame(t, theirMAC, theirV6, lbV6Group, 255, ns(lbV6), func(b []byte) { b[20] = 17 })
	tests := []struct {
		name  string
		fam   family
		frame []byte
		keep  bool
	}{
		{"ARP request", ipv4, arpReq, true},
		{"ARP reply", ipv4, arpRep, false},
		{"neighbor solicitation", ipv6, nsF, true},
		{"neighbor advertisement", ipv6, naF, false},
		{"UDP", ipv6, udp, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := bpf.NewVM(resolveDrops(protocolFilter(tt.fam)))
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != tt.keep {
				t.Errorf("kept = %v (%d bytes), want %v", got, n, tt.keep)
			}
			if _, err := socketFilter(tt.fam); err != nil {
				t.Errorf("socket filter: %v", err)
			}
		})
	}
}
