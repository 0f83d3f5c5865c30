package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// State is a BFD session state (RFC 5880 §4.1, the Sta field).
type State uint8

// The four session states, in their wire encoding.
const (
	StateAdminDown State = 0
	StateDown      State = 1
	StateInit      State = 2
	StateUp        State = 3
)

func (s State) String() string {
	switch s {
	case StateAdminDown:
		return "AdminDown"
	case StateDown:
		return "Down"
	case StateInit:
		return "Init"
	case StateUp:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag says why a session last left Up (RFC 5880 §4.1, the Diag field).
type Diag uint8

// The diagnostic codes this package sends or reports.
const (
	DiagNone              Diag = 0
	DiagDetectionExpired  Diag = 1
	DiagEchoFailed        Diag = 2
	DiagNeighborDown      Diag = 3
	DiagForwardingReset   Diag = 4
	DiagPathDown          Diag = 5
	DiagConcatenatedDown  Diag = 6
	DiagAdminDown         Diag = 7
	DiagReverseConcatDown Diag = 8
)

func (d Diag) String() string {
	names := [...]string{"None", "DetectionTimeExpired", "EchoFailed", "NeighborSignaledDown",
		"ForwardingPlaneReset", "PathDown", "ConcatenatedPathDown", "AdministrativelyDown",
		"ReverseConcatenatedPathDown"}
	if int(d) < len(names) {
		return names[d]
	}
	return fmt.Sprintf("Diag(%d)", uint8(d))
}

// Packet is a BFD Control packet (RFC 5880 §4.1). Intervals are carried
// on the wire in microseconds; here they are durations.
type Packet struct {
	Diag  Diag
	State State
	// Poll, Final, ControlPlaneIndependent, Demand are the P, F, C and D
	// bits. The A bit is AuthType != AuthNone; the M bit is always zero.
	Poll, Final, ControlPlaneIndependent, Demand bool
	DetectMult                                   uint8
	MyDiscriminator, YourDiscriminator           uint32
	DesiredMinTx, RequiredMinRx, RequiredMinEcho time.Duration
	// AuthType is the authentication section's type, AuthNone when the
	// packet has none; AuthData is the section after its type and length.
	AuthType AuthType
	AuthData []byte
}

// AuthType is the Auth Type field of the authentication section.
type AuthType uint8

// Authentication types (RFC 5880 §4.2). This package sends none and
// refuses packets that carry one (see Machine.Receive).
const (
	AuthNone                AuthType = 0
	AuthSimplePassword      AuthType = 1
	AuthKeyedMD5            AuthType = 2
	AuthMeticulousKeyedMD5  AuthType = 3
	AuthKeyedSHA1           AuthType = 4
	AuthMeticulousKeyedSHA1 AuthType = 5
)

const (
	headerLen  = 24
	version    = 1
	flagPoll   = 0x20
	flagFinal  = 0x10
	flagCPI    = 0x08
	flagAuth   = 0x04
	flagDemand = 0x02
	flagMulti  = 0x01
	maxMicros  = time.Duration(1<<32-1) * time.Microsecond
)

// ErrMalformed is wrapped by every error Parse returns.
var ErrMalformed = errors.New("malformed BFD control packet")

// Parse decodes b as a BFD Control packet and applies the checks of
// RFC 5880 §6.8.6 that need nothing but the packet: version 1, a length
// that fits, a nonzero Detect Mult and My Discriminator, no Multipoint
// bit, and a zero Your Discriminator only in Down or AdminDown. Bytes
// after the packet's Length are ignored, as the RFC allows.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < headerLen {
		return p, fmt.Errorf("%w: %d bytes, need at least %d", ErrMalformed, len(b), headerLen)
	}
	if v := b[0] >> 5; v != version {
		return p, fmt.Errorf("%w: version %d, only version 1 exists", ErrMalformed, v)
	}
	length := int(b[3])
	flags := b[1]
	switch {
	case length < headerLen:
		return p, fmt.Errorf("%w: length field %d is below %d", ErrMalformed, length, headerLen)
	case length > len(b):
		return p, fmt.Errorf("%w: length field %d is beyond the %d bytes received", ErrMalformed, length, len(b))
	case flags&flagAuth == 0 && length != headerLen:
		// §6.8.6: without authentication the length must be exactly 24.
		return p, fmt.Errorf("%w: length field %d without authentication, must be %d", ErrMalformed, length, headerLen)
	case flags&flagMulti != 0:
		return p, fmt.Errorf("%w: multipoint bit set", ErrMalformed)
	}
	p.Diag = Diag(b[0] & 0x1f)
	p.State = State(b[1] >> 6)
	p.Poll = flags&flagPoll != 0
	p.Final = flags&flagFinal != 0
	p.ControlPlaneIndependent = flags&flagCPI != 0
	p.Demand = flags&flagDemand != 0
	p.DetectMult = b[2]
	p.MyDiscriminator = binary.BigEndian.Uint32(b[4:])
	p.YourDiscriminator = binary.BigEndian.Uint32(b[8:])
	p.DesiredMinTx = micros(b[12:])
	p.RequiredMinRx = micros(b[16:])
	p.RequiredMinEcho = micros(b[20:])
	switch {
	case p.DetectMult == 0:
		return p, fmt.Errorf("%w: detect multiplier 0", ErrMalformed)
	case p.MyDiscriminator == 0:
		return p, fmt.Errorf("%w: my discriminator 0", ErrMalformed)
	case p.YourDiscriminator == 0 && p.State != StateDown && p.State != StateAdminDown:
		return p, fmt.Errorf("%w: your discriminator 0 in state %s", ErrMalformed, p.State)
	}
	if flags&flagAuth != 0 {
		// Type, length (which counts itself and the type), data.
		if length < headerLen+2 {
			return p, fmt.Errorf("%w: authentication bit set but no room for the section", ErrMalformed)
		}
		sec := b[headerLen:length]
		p.AuthType = AuthType(sec[0])
		if n := int(sec[1]); n < 2 || n != len(sec) {
			return p, fmt.Errorf("%w: authentication section length %d, %d bytes remain", ErrMalformed, n, len(sec))
		}
		if p.AuthType == AuthNone {
			return p, fmt.Errorf("%w: authentication bit set with auth type 0", ErrMalformed)
		}
		p.AuthData = append([]byte(nil), sec[2:]...)
	}
	return p, nil
}

func micros(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Microsecond
}

func putMicros(b []byte, d time.Duration) {
	d = max(0, min(d, maxMicros))
	binary.BigEndian.PutUint32(b, uint32(d/time.Microsecond))
}

// MarshalBinary encodes the packet. Intervals are rounded down to whole
// microseconds and clipped to what the fields hold.
func (p Packet) MarshalBinary() ([]byte, error) {
	if p.State > StateUp || p.Diag > 0x1f {
		return nil, fmt.Errorf("bfd: state %d or diag %d out of range", p.State, p.Diag)
	}
	n := headerLen
	if p.AuthType != AuthNone {
		n += 2 + len(p.AuthData)
		if n > 255 {
			return nil, fmt.Errorf("bfd: authentication data of %d bytes does not fit", len(p.AuthData))
		}
	}
	b := make([]byte, n)
	b[0] = version<<5 | byte(p.Diag)
	b[1] = byte(p.State) << 6
	for bit, set := range map[byte]bool{flagPoll: p.Poll, flagFinal: p.Final,
		flagCPI: p.ControlPlaneIndependent, flagDemand: p.Demand, flagAuth: p.AuthType != AuthNone} {
		if set {
			b[1] |= bit
		}
	}
	b[2] = p.DetectMult
	b[3] = byte(n)
	binary.BigEndian.PutUint32(b[4:], p.MyDiscriminator)
	binary.BigEndian.PutUint32(b[8:], p.YourDiscriminator)
	putMicros(b[12:], p.DesiredMinTx)
	putMicros(b[16:], p.RequiredMinRx)
	putMicros(b[20:], p.RequiredMinEcho)
	if p.AuthType != AuthNone {
		b[headerLen] = byte(p.AuthType)
		b[headerLen+1] = byte(2 + len(p.AuthData))
		copy(b[headerLen+2:], p.AuthData)
	}
	return b, nil
}
