package bfd

import (
	"net/netip"
	"testing"
	"time"
)

// TestReceiveTTL: single-hop packets count only with TTL 255 (RFC 5881
// §5); multihop ones with any TTL.
func TestReceiveTTL(t *testing.T) {
	remote := netip.MustParseAddr("198.51.100.1")
	b, err := Packet{State: StateDown, DetectMult: 3, MyDiscriminator: 77,
		DesiredMinTx: time.Second, RequiredMinRx: time.Second}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		multiHop bool
		ttl      int
		want     State
	}{
		{false, 255, StateInit}, {false, 254, StateDown}, {false, 0, StateDown},
		{true, 255, StateInit}, {true, 250, StateInit},
	} {
		s := New(Options{})
		k := sessionKey{remote, c.multiHop}
		s.sessions[k] = &session{peer: Peer{Name: "r", Remote: remote}, m: NewMachine(5, fast, nil)}
		s.receive(received{data: b, src: remote, ttl: c.ttl, multiHop: c.multiHop, at: time.Unix(0, 0)})
		if got := s.sessions[k].m.State(); got != c.want {
			t.Errorf("multihop %v, TTL %d: %s, want %s", c.multiHop, c.ttl, got, c.want)
		}
	}
}
