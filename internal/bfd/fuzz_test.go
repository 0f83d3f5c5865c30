package bfd

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to Parse. What it accepts must satisfy
// the RFC's per-packet rules, encode again to the same bytes (up to the
// Length field), and parse again to the same packet; and a Machine must
// take it without panicking.
func FuzzParse(f *testing.F) {
	f.Add(wire(0x20, 0x40, 3, 24, 1, 0, 1e6, 1e6, 0))
	f.Add(wire(0x20|3, 0xc0|0x20, 5, 24, 7, 9, 300000, 100000, 0))
	f.Add(wire(0x20, 0x40|0x04, 3, 28, 1, 0, 1e6, 1e6, 0, 1, 4, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.DetectMult == 0 || p.MyDiscriminator == 0 || p.State > StateUp ||
			(p.YourDiscriminator == 0 && p.State != StateDown && p.State != StateAdminDown) {
			t.Fatalf("accepted %+v", p)
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("cannot encode what was parsed, %+v: %v", p, err)
		}
		if !bytes.Equal(out, b[:b[3]]) {
			t.Fatalf("re-encoded\n%x\nfrom\n%x", out, b[:b[3]])
		}
		again, err := Parse(out)
		if err != nil || again.State != p.State || again.MyDiscriminator != p.MyDiscriminator {
			t.Fatalf("re-parse: %+v, %v", again, err)
		}
		m := NewMachine(7, Config{time.Millisecond, time.Millisecond, 3}, nil)
		now := time.Unix(0, 0)
		m.Receive(now, p)
		m.Tick(now.Add(time.Second))
	})
}
