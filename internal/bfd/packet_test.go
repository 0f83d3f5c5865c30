package bfd

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// wire builds a control packet byte by byte, so that the codec is checked
// against the RFC's layout rather than against itself.
func wire(b0, b1, mult, length byte, my, your, tx, rx, echo uint32, extra ...byte) []byte {
	b := []byte{b0, b1, mult, length}
	for _, v := range []uint32{my, your, tx, rx, echo} {
		b = append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, extra...)
}

func TestParseLayout(t *testing.T) {
	// Version 1, diag 3; state Up (0b11) with Poll and Demand; mult 5.
	b := wire(0x20|3, 0xc0|0x20|0x02, 5, 24, 0x01020304, 0x0a0b0c0d, 300000, 100000, 0)
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{Diag: DiagNeighborDown, State: StateUp, Poll: true, Demand: true, DetectMult: 5,
		MyDiscriminator: 0x01020304, YourDiscriminator: 0x0a0b0c0d,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	out, err := got.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(b, out); d != "" {
		t.Fatalf("re-encoded (-want +got)\n%s", d)
	}
}

func TestParseAuthSection(t *testing.T) {
	// Keyed SHA1: type 4, length 28, key id, reserved, sequence, 20-byte hash.
	sec := append([]byte{4, 28, 1, 0, 0, 0, 0, 7}, make([]byte, 20)...)
	b := wire(0x20, 0x40|0x04, 3, byte(24+len(sec)), 1, 0, 1e6, 1e6, 0, sec...)
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.AuthType != AuthKeyedSHA1 || len(p.AuthData) != 26 {
		t.Fatalf("auth type %d, %d data bytes", p.AuthType, len(p.AuthData))
	}
	if _, err := NewMachine(9, Config{time.Second, time.Second, 3}, nil).Receive(time.Time{}, p); !errors.Is(err, ErrAuthUnsupported) {
		t.Fatalf("a session without authentication accepted an authenticated packet: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	ok := func() []byte { return wire(0x20, 0x40, 3, 24, 1, 0, 1e6, 1e6, 0) }
	if _, err := Parse(ok()); err != nil {
		t.Fatalf("the base case must parse: %v", err)
	}
	for name, b := range map[string][]byte{
		"short":                   ok()[:23],
		"version 0":               wire(0x00, 0x40, 3, 24, 1, 0, 1e6, 1e6, 0),
		"version 2":               wire(0x40, 0x40, 3, 24, 1, 0, 1e6, 1e6, 0),
		"length below 24":         wire(0x20, 0x40, 3, 20, 1, 0, 1e6, 1e6, 0),
		"length beyond data":      wire(0x20, 0x40, 3, 30, 1, 0, 1e6, 1e6, 0),
		"length 26 without auth":  wire(0x20, 0x40, 3, 26, 1, 0, 1e6, 1e6, 0, 0, 0),
		"multipoint":              wire(0x20, 0x41, 3, 24, 1, 0, 1e6, 1e6, 0),
		"multiplier 0":            wire(0x20, 0x40, 0, 24, 1, 0, 1e6, 1e6, 0),
		"my discriminator 0":      wire(0x20, 0x40, 3, 24, 0, 0, 1e6, 1e6, 0),
		"your discriminator 0 Up": wire(0x20, 0xc0, 3, 24, 1, 0, 1e6, 1e6, 0),
		"auth without room":       wire(0x20, 0x44, 3, 24, 1, 0, 1e6, 1e6, 0),
		"auth length mismatch":    wire(0x20, 0x44, 3, 28, 1, 0, 1e6, 1e6, 0, 2, 9, 0, 0),
		"auth type 0":             wire(0x20, 0x44, 3, 26, 1, 0, 1e6, 1e6, 0, 0, 2),
	} {
		if p, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: accepted as %+v (err %v)", name, p, err)
		}
	}
}
