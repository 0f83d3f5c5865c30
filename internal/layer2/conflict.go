package layer2

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// conflictInterval is the least time between two warnings about one
// address that another host announces. Anyone on the LAN can send
// gratuitous ARP for our addresses, thousands a second if they like; a
// warning per frame would bury the log and cost a write each. A real
// conflict (a device configured with the address, a second load balancer)
// lasts, so one line a minute per address keeps it in view, the first
// one goes out at once, and ironlb_l2_conflicts_total counts every frame
// for rates and alerts.
const conflictInterval = time.Minute

// conflictLog rate-limits the conflict warning per address, across the
// responders of all interfaces. Its memory is bounded by the owned
// addresses: only announcements of owned addresses reach it, and forget
// drops addresses no longer owned.
type conflictLog struct {
	log      *slog.Logger
	interval time.Duration

	mu     sync.Mutex // guards byAddr
	byAddr map[netip.Addr]conflictState
}

// conflictState is what is remembered about one address.
type conflictState struct {
	// warned is when the last warning about the address went out.
	warned time.Time
	// suppressed counts the conflicts heard since, not logged.
	suppressed int
}

func newConflictLog(log *slog.Logger, interval time.Duration) *conflictLog {
	return &conflictLog{log: log, interval: interval, byAddr: map[netip.Addr]conflictState{}}
}

// next decides about one more conflict heard at now: whether it is
// logged, how many went unlogged before it (when it is), and the state
// after it. The first conflict about an address is logged; later ones
// only once interval has passed since the last warning.
func (s conflictState) next(now time.Time, interval time.Duration) (warn bool, suppressed int, after conflictState) {
	if !s.warned.IsZero() && now.Sub(s.warned) < interval {
		s.suppressed++
		return false, 0, s
	}
	return true, s.suppressed, conflictState{warned: now}
}

// report notes that another host (mac) announced addr, heard on k's
// interface, and warns unless that was done for addr less than interval
// ago. It never blocks on anything but its own short lock. Nil-safe.
func (c *conflictLog) report(addr netip.Addr, mac net.HardwareAddr, k key) {
	if c == nil {
		return
	}
	c.mu.Lock()
	warn, suppressed, st := c.byAddr[addr].next(time.Now(), c.interval)
	c.byAddr[addr] = st
	c.mu.Unlock()
	if warn {
		c.log.Warn("layer2: another host announces an address this node owns",
			"address", addr, "mac", mac.String(), "interface", k.name, "family", k.fam,
			"notLoggedSinceLastWarning", suppressed, "atMostOneWarningPer", c.interval)
	}
}

// forget drops the addresses keep rejects (no longer owned), logging the
// conflicts heard about them that were not logged yet. Nil-safe.
func (c *conflictLog) forget(keep func(netip.Addr) bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, st := range c.byAddr {
		if keep(addr) {
			continue
		}
		delete(c.byAddr, addr)
		if st.suppressed > 0 {
			c.log.Warn("layer2: conflicting announcements not logged before the address was lost",
				"address", addr, "notLoggedSinceLastWarning", st.suppressed)
		}
	}
}
