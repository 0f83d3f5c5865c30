package bfd

import (
	"errors"
	"fmt"
	"time"
)

// SlowTx is the transmit interval while a session is not Up (RFC 5880
// §6.8.3: at least one second).
const SlowTx = time.Second

// Config is what the local system asks of a session.
type Config struct {
	// DesiredMinTx is how often this side would like to send once Up;
	// RequiredMinRx how often it can take packets. Both above zero.
	DesiredMinTx, RequiredMinRx time.Duration
	// DetectMult is how many intervals without a packet the remote system
	// waits before it declares the session down (1 to 255).
	DetectMult uint8
}

// Validate says what is wrong with c, or nil.
func (c Config) Validate() error {
	switch {
	case c.DesiredMinTx <= 0 || c.DesiredMinTx > maxMicros:
		return fmt.Errorf("transmit interval %s: must be between 1µs and %s", c.DesiredMinTx, maxMicros)
	case c.RequiredMinRx <= 0 || c.RequiredMinRx > maxMicros:
		return fmt.Errorf("receive interval %s: must be between 1µs and %s", c.RequiredMinRx, maxMicros)
	case c.DetectMult == 0:
		return errors.New("detect multiplier 0: must be between 1 and 255")
	}
	return nil
}

// Errors for packets that Receive discards and callers count.
var (
	// ErrAuthUnsupported: the packet carries an authentication section;
	// this implementation has no authentication, so it must not accept it.
	ErrAuthUnsupported = errors.New("BFD authentication is not supported")
	// ErrWrongSession: Your Discriminator names another session.
	ErrWrongSession = errors.New("your discriminator is not this session's")
)

// Machine is one BFD session's state machine (RFC 5880 §6.8) in
// asynchronous mode, without echo, demand or authentication of its own.
// It does no I/O and reads no clock: the caller gives it the time, hands
// it the packets received, sends the packets it returns, and calls Tick
// again at Next. Not safe for concurrent use.
type Machine struct {
	local uint32
	cfg   Config
	// jitter returns a number in [0, 1) that spreads transmissions; nil
	// means none (tests).
	jitter func() float64

	state State
	diag  Diag
	// adminDown is set while the session is held in AdminDown.
	adminDown bool

	// advTx and advRx are what this side's packets carry now; useTx and
	// useRx are what it uses itself, which lag behind during a poll
	// sequence where the RFC says so (§6.8.3).
	advTx, advRx, useTx, useRx time.Duration
	polling                    bool

	remote       uint32
	remoteState  State
	remoteDiag   Diag
	remoteMinRx  time.Duration
	remoteTx     time.Duration
	remoteMult   uint8
	remoteDemand bool

	lastRx time.Time
	nextTx time.Time
}

// NewMachine returns a session in Down with the local discriminator
// local (nonzero, unique on this system). jitter, when not nil, returns
// numbers in [0, 1).
func NewMachine(local uint32, cfg Config, jitter func() float64) *Machine {
	m := &Machine{local: local, cfg: cfg, jitter: jitter, state: StateDown,
		remoteState: StateDown, remoteMinRx: time.Microsecond}
	m.advTx, m.advRx = m.wantTx(), cfg.RequiredMinRx
	m.useTx, m.useRx = m.advTx, m.advRx
	return m
}

// wantTx is the DesiredMinTx to advertise in the current state.
func (m *Machine) wantTx() time.Duration {
	if m.state != StateUp {
		return max(m.cfg.DesiredMinTx, SlowTx)
	}
	return m.cfg.DesiredMinTx
}

// Status is a snapshot of a session.
type Status struct {
	State, RemoteState State
	// Diag is why this side last left Up; RemoteDiag the remote's.
	Diag, RemoteDiag                Diag
	LocalDiscriminator, RemoteDiscr uint32
	TxInterval, DetectionTime       time.Duration
	Polling                         bool
	LastReceived                    time.Time
	RemoteMinRx, RemoteDesiredMinTx time.Duration
	RemoteDetectMult                uint8
}

// Status reports the session.
func (m *Machine) Status() Status {
	return Status{State: m.state, RemoteState: m.remoteState, Diag: m.diag, RemoteDiag: m.remoteDiag,
		LocalDiscriminator: m.local, RemoteDiscr: m.remote, TxInterval: m.txInterval(),
		DetectionTime: m.detectionTime(), Polling: m.polling, LastReceived: m.lastRx,
		RemoteMinRx: m.remoteMinRx, RemoteDesiredMinTx: m.remoteTx, RemoteDetectMult: m.remoteMult}
}

// State is the session's state.
func (m *Machine) State() State { return m.state }

// txInterval is the interval between periodic packets before jitter
// (§6.8.7); zero when none may be sent.
func (m *Machine) txInterval() time.Duration {
	if m.remoteMinRx == 0 {
		return 0
	}
	return max(m.useTx, m.remoteMinRx)
}

// detectionTime is how long without a packet means the session is down
// (§6.8.4, asynchronous mode); zero before anything was received.
func (m *Machine) detectionTime() time.Duration {
	return time.Duration(m.remoteMult) * max(m.useRx, m.remoteTx)
}

// SetConfig changes the session's parameters. In Up the change is
// announced with a poll sequence; a longer transmit interval and a
// shorter receive interval take effect only once the remote system has
// answered it.
func (m *Machine) SetConfig(now time.Time, cfg Config) {
	m.cfg = cfg
	m.advertise(now)
}

// advertise brings the advertised intervals to the wanted ones, starting
// a poll sequence when they change in Up.
func (m *Machine) advertise(now time.Time) {
	tx, rx := m.wantTx(), m.cfg.RequiredMinRx
	if tx == m.advTx && rx == m.advRx {
		return
	}
	m.advTx, m.advRx = tx, rx
	if m.state != StateUp {
		m.useTx, m.useRx, m.polling = tx, rx, false
		return
	}
	m.polling = true
	m.useTx = min(m.useTx, tx) // a faster rate is safe at once
	m.useRx = max(m.useRx, rx) // so is a longer detection time
	m.nextTx = now
}

// SetAdminDown holds the session in AdminDown (true), telling the remote
// system, or lets it come up again (false).
func (m *Machine) SetAdminDown(now time.Time, down bool) {
	if down == m.adminDown {
		return
	}
	m.adminDown = down
	if down {
		m.enter(now, StateAdminDown, DiagAdminDown)
	} else {
		m.enter(now, StateDown, m.diag)
	}
}

// enter changes state and sends a packet at once.
func (m *Machine) enter(now time.Time, s State, d Diag) {
	m.state, m.diag = s, d
	if s != StateUp {
		m.polling = false
	}
	m.advertise(now)
	m.nextTx = now
}

// Receive handles a parsed packet received for this session at now
// (§6.8.6). It returns a packet to send at once (the Final answering a
// Poll) or nil, and an error for a packet it discarded.
func (m *Machine) Receive(now time.Time, p Packet) (*Packet, error) {
	if p.AuthType != AuthNone {
		return nil, ErrAuthUnsupported
	}
	if p.YourDiscriminator != 0 && p.YourDiscriminator != m.local {
		return nil, ErrWrongSession
	}
	before := m.txInterval()
	m.remote = p.MyDiscriminator
	m.remoteState, m.remoteDiag = p.State, p.Diag
	m.remoteDemand = p.Demand
	m.remoteMinRx = p.RequiredMinRx
	m.remoteTx, m.remoteMult = p.DesiredMinTx, p.DetectMult
	if p.Final && m.polling {
		m.polling = false
		m.useTx, m.useRx = m.advTx, m.advRx
	}
	if iv := m.txInterval(); iv != 0 && iv < before && m.nextTx.After(now.Add(iv)) {
		// A shorter interval (the remote system asks for packets more
		// often, as a router does when its session comes Up) counts
		// from now: the packet scheduled at the old, slower rate would
		// come after the remote system's new detection time.
		m.nextTx = now.Add(iv - m.jitterOf(iv))
	}
	if m.state == StateAdminDown {
		return nil, nil
	}
	m.lastRx = now
	switch {
	case p.State == StateAdminDown:
		if m.state != StateDown {
			m.enter(now, StateDown, DiagNeighborDown)
		}
	case m.state == StateDown && p.State == StateDown:
		m.enter(now, StateInit, m.diag)
	case m.state == StateDown && p.State == StateInit,
		m.state == StateInit && (p.State == StateInit || p.State == StateUp):
		m.enter(now, StateUp, DiagNone)
	case m.state == StateUp && p.State == StateDown:
		m.enter(now, StateDown, DiagNeighborDown)
	}
	if !p.Poll {
		return nil, nil
	}
	final := m.packet()
	final.Final = true
	return &final, nil
}

// packet is what this side sends now, without Poll or Final.
func (m *Machine) packet() Packet {
	return Packet{Diag: m.diag, State: m.state, DetectMult: m.cfg.DetectMult,
		MyDiscriminator: m.local, YourDiscriminator: m.remote,
		DesiredMinTx: m.advTx, RequiredMinRx: m.advRx}
}

// Tick runs the timers at now: the detection time (§6.8.4) and the
// periodic transmission (§6.8.7). It returns the packet to send, if any.
func (m *Machine) Tick(now time.Time) *Packet {
	if (m.state == StateInit || m.state == StateUp) && !now.Before(m.lastRx.Add(m.detectionTime())) {
		m.enter(now, StateDown, DiagDetectionExpired)
		m.remote = 0 // §6.8.1: forgotten when the detection time passes
	}
	iv := m.txInterval()
	if iv == 0 || now.Before(m.nextTx) {
		return nil
	}
	if m.remoteDemand && m.state == StateUp && m.remoteState == StateUp && !m.polling {
		m.nextTx = now.Add(iv)
		return nil
	}
	m.nextTx = now.Add(iv - m.jitterOf(iv))
	p := m.packet()
	p.Poll = m.polling
	return &p
}

// jitterOf is how much earlier than iv the next packet goes: 0–25% of it,
// 10–25% with a detect multiplier of 1 (§6.8.7).
func (m *Machine) jitterOf(iv time.Duration) time.Duration {
	if m.jitter == nil {
		return 0
	}
	lo := 0.0
	if m.cfg.DetectMult == 1 {
		lo = 0.10
	}
	return time.Duration(float64(iv) * (lo + (0.25-lo)*m.jitter()))
}

// Next is when Tick must run next: the next transmission or the end of
// the detection time, whichever is first; the zero time when nothing is
// scheduled.
func (m *Machine) Next() time.Time {
	next := time.Time{}
	if m.txInterval() != 0 {
		next = m.nextTx
	}
	if m.state == StateInit || m.state == StateUp {
		if d := m.lastRx.Add(m.detectionTime()); next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next
}
