package bfd

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const ms = time.Millisecond

var fast = Config{DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms, DetectMult: 3}

// step is one thing that happens to a session, and what must follow.
type step struct {
	at time.Duration
	// One of: a packet received, a tick, a config change, admin down/up.
	recv   *Packet
	tick   bool
	config *Config
	admin  *bool
	// The state after the step, and what the step sent (nil: nothing).
	state State
	sent  *Packet
	// next, when set, is how long after at Next must be.
	next time.Duration
}

// from is a packet from the remote system (discriminator 77) to us (5).
func from(s State, your uint32, mod ...func(*Packet)) *Packet {
	p := &Packet{State: s, DetectMult: 3, MyDiscriminator: 77, YourDiscriminator: your,
		DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms}
	for _, f := range mod {
		f(p)
	}
	return p
}

// ours is a packet we are expected to send.
func ours(s State, d Diag, your uint32, tx time.Duration, mod ...func(*Packet)) *Packet {
	p := &Packet{State: s, Diag: d, DetectMult: 3, MyDiscriminator: 5, YourDiscriminator: your,
		DesiredMinTx: tx, RequiredMinRx: 100 * ms}
	for _, f := range mod {
		f(p)
	}
	return p
}

func poll(p *Packet)     { p.Poll = true }
func final(p *Packet)    { p.Final = true }
func rx200(p *Packet)    { p.RequiredMinRx = 200 * ms }
func boolp(b bool) *bool { return &b }

// bringUp is the three-way handshake from Down, ending Up at 20ms with a
// poll sequence (1s → 100ms transmit) completed at 30ms.
var bringUp = []step{
	{at: 0, tick: true, state: StateDown, sent: ours(StateDown, DiagNone, 0, time.Second)},
	{at: 10 * ms, recv: from(StateDown, 0), state: StateInit},
	{at: 10 * ms, tick: true, state: StateInit, sent: ours(StateInit, DiagNone, 77, time.Second)},
	{at: 20 * ms, recv: from(StateUp, 5), state: StateUp},
	// Up: the fast rate is advertised with Poll, used at once (faster is safe).
	{at: 20 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms, poll), next: 100 * ms},
	{at: 30 * ms, recv: from(StateUp, 5, final), state: StateUp},
	{at: 120 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms)},
}

func TestMachineSteps(t *testing.T) {
	cases := map[string][]step{
		"handshake": bringUp,
		"down to up directly on Init": {
			{at: 0, recv: from(StateInit, 5), state: StateUp},
		},
		"up is ignored while down": {
			{at: 0, recv: from(StateUp, 5), state: StateDown},
		},
		"detection time expires": append(clone(bringUp),
			// Last packet at 30ms; 3 × max(100ms, 100ms) later the session is down.
			step{at: 329 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms)},
			step{at: 330 * ms, tick: true, state: StateDown, sent: ours(StateDown, DiagDetectionExpired, 0, time.Second)},
		),
		"detection time follows the remote's slower transmit": {
			{at: 0, recv: from(StateInit, 5, func(p *Packet) { p.DesiredMinTx = time.Second; p.DetectMult = 2 }), state: StateUp},
			{at: 1999 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms, poll)},
			{at: 2 * time.Second, tick: true, state: StateDown, sent: ours(StateDown, DiagDetectionExpired, 0, time.Second)},
		},
		"neighbor signals down": append(clone(bringUp),
			step{at: 200 * ms, recv: from(StateDown, 5), state: StateDown},
			step{at: 200 * ms, tick: true, state: StateDown, sent: ours(StateDown, DiagNeighborDown, 77, time.Second)},
		),
		"neighbor admin down": append(clone(bringUp),
			step{at: 200 * ms, recv: from(StateAdminDown, 0), state: StateDown},
		),
		"admin down and back": append(clone(bringUp),
			step{at: 200 * ms, admin: boolp(true), state: StateAdminDown},
			step{at: 200 * ms, tick: true, state: StateAdminDown, sent: ours(StateAdminDown, DiagAdminDown, 77, time.Second)},
			step{at: 300 * ms, recv: from(StateUp, 5), state: StateAdminDown},
			step{at: 400 * ms, admin: boolp(false), state: StateDown},
			step{at: 500 * ms, recv: from(StateDown, 0), state: StateInit},
		),
		// FRR's bfdd asks for one packet a second until its session is
		// Up, then polls for its fast rate: the next packet must follow
		// at that rate, not a second after the last (bfdd's detection
		// time would run out first).
		"a remote asking for packets sooner is served sooner": {
			{at: 0, recv: from(StateInit, 5, func(p *Packet) { p.DesiredMinTx, p.RequiredMinRx = time.Second, time.Second }), state: StateUp},
			{at: 0, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms, poll), next: time.Second},
			{at: 10 * ms, recv: from(StateUp, 5, poll), state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms, final), next: 100 * ms},
			{at: 110 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 100*ms, poll)},
		},
		"poll is answered with final at once": {
			{at: 0, recv: from(StateDown, 0, poll), state: StateInit, sent: ours(StateInit, DiagNone, 77, time.Second, final)},
		},
		"slower transmit waits for final": append(clone(bringUp),
			step{at: 200 * ms, config: &Config{DesiredMinTx: 300 * ms, RequiredMinRx: 100 * ms, DetectMult: 3}, state: StateUp},
			// Advertised at once with Poll; still sent every 100ms until Final.
			step{at: 200 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 300*ms, poll), next: 100 * ms},
			step{at: 250 * ms, recv: from(StateUp, 5, final), state: StateUp},
			step{at: 300 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 300*ms)},
			step{at: 500 * ms, recv: from(StateUp, 5), state: StateUp},
			step{at: 599 * ms, tick: true, state: StateUp},
			step{at: 600 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, 300*ms)},
		),
		"a poll sequence ends when the session goes down": append(clone(bringUp),
			// The slow rate's values: going Down changes nothing advertised.
			step{at: 200 * ms, config: &Config{DesiredMinTx: time.Second, RequiredMinRx: 200 * ms, DetectMult: 3}, state: StateUp},
			step{at: 200 * ms, tick: true, state: StateUp, sent: ours(StateUp, DiagNone, 77, time.Second, poll, rx200)},
			step{at: 250 * ms, recv: from(StateDown, 5), state: StateDown},
			step{at: 250 * ms, tick: true, state: StateDown, sent: ours(StateDown, DiagNeighborDown, 77, time.Second, rx200)},
		),
		"no packets when the remote wants none": {
			{at: 0, recv: from(StateDown, 0, func(p *Packet) { p.RequiredMinRx = 0 }), state: StateInit},
			{at: 5 * time.Second, tick: true, state: StateDown},
		},
		"wrong discriminator is discarded": append(clone(bringUp),
			step{at: 200 * ms, recv: from(StateDown, 6), state: StateUp},
		),
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) { run(t, steps) })
	}
}

func clone(s []step) []step { return append([]step(nil), s...) }

func run(t *testing.T, steps []step) {
	t.Helper()
	t0 := time.Unix(1000, 0)
	m := NewMachine(5, fast, nil)
	for i, s := range steps {
		now := t0.Add(s.at)
		var sent *Packet
		switch {
		case s.recv != nil:
			sent, _ = m.Receive(now, *s.recv)
		case s.tick:
			sent = m.Tick(now)
		case s.config != nil:
			m.SetConfig(now, *s.config)
		case s.admin != nil:
			m.SetAdminDown(now, *s.admin)
		}
		if got := m.State(); got != s.state {
			t.Fatalf("step %d: state %s, want %s", i, got, s.state)
		}
		switch {
		case s.sent == nil && sent != nil && s.recv == nil:
			t.Fatalf("step %d: sent %+v, want nothing", i, *sent)
		case s.sent != nil && (sent == nil || !cmp.Equal(*sent, *s.sent)):
			t.Fatalf("step %d: sent %+v\nwant %+v", i, sent, *s.sent)
		}
		if s.next != 0 {
			if got := m.Next().Sub(now); got != s.next {
				t.Fatalf("step %d: next in %s, want %s", i, got, s.next)
			}
		}
	}
}

func TestJitter(t *testing.T) {
	for _, c := range []struct {
		mult     uint8
		r        float64
		min, max time.Duration
	}{
		{3, 0, 1000 * ms, 1000 * ms}, {3, 0.999, 750 * ms, 751 * ms},
		{1, 0, 900 * ms, 900 * ms}, {1, 0.999, 750 * ms, 751 * ms},
	} {
		cfg := fast
		cfg.DetectMult = c.mult
		m := NewMachine(5, cfg, func() float64 { return c.r })
		t0 := time.Unix(0, 0)
		m.Tick(t0)
		if d := m.Next().Sub(t0); d < c.min || d > c.max {
			t.Errorf("mult %d, random %v: next packet after %s, want %s–%s", c.mult, c.r, d, c.min, c.max)
		}
	}
}
