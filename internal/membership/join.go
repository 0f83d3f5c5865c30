package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// joinLoop settles the first join (joinFirst), then joins the peers that
// are not members every RejoinInterval until ctx ends. self, this member's
// address, is never joined (peers may well list it).
func (c *Cluster) joinLoop(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers func() []string, deadline time.Time) {
	// failing holds the peers whose last join failed, so that a peer that
	// stays unreachable is reported once at Warn and then at Debug.
	failing := map[string]bool{}
	joined, ok := c.joinFirst(ctx, list, self, peers, deadline, failing)
	if !ok {
		return
	}
	if joined {
		// The joined member may not know every peer (two groups that never
		// met); join the rest now rather than a RejoinInterval later.
		c.joinMissing(ctx, list, self, peers(), failing)
	}
	t := time.NewTicker(c.opts.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.joinMissing(ctx, list, self, peers(), failing)
	}
}

// peer is one answer of peers, resolved.
type peer struct {
	name  string
	addrs []netip.AddrPort // without this member's own
	err   error            // from resolving
}

// joinFirst settles the first join (see Run): at once when peers names
// nobody but this member, as soon as a join succeeds, or without one once
// deadline has passed. Past the deadline it tries only peers it has not
// tried yet, so it never concludes that it is alone before every peer was
// tried once (even when peers itself was slow), and is otherwise late by at
// most one join attempt (TCPTimeout per address). Unlike joinMissing it
// joins peers that are members already: a member learnt from gossip before
// joining says nothing about the others. It reports whether a join
// succeeded, and ok false when ctx ended first.
func (c *Cluster) joinFirst(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers func() []string, deadline time.Time, failing map[string]bool) (joined, ok bool) {
	lastErr := map[string]error{} // by peer; a peer in it has been tried
	for {
		others := c.otherPeers(ctx, self, peers())
		if ctx.Err() != nil {
			return false, false
		}
		if len(others) == 0 {
			c.settleAlone()
			return false, true
		}
		for _, p := range others {
			if ctx.Err() != nil {
				return false, false
			}
			if _, tried := lastErr[p.name]; tried && !time.Now().Before(deadline) {
				continue
			}
			err := p.err
			if err == nil {
				err = join(list, p.addrs)
			}
			if err != nil {
				lastErr[p.name] = err
				c.joinFailed(ctx, p.name, err, c.opts.JoinRetry, failing)
				continue
			}
			delete(failing, p.name)
			n := c.settle()
			c.log.Info("memberlist joined peer", "peer", p.name, "members", n)
			return true, true
		}
		if !time.Now().Before(deadline) {
			n := c.settle()
			var unreachable []string
			var errs []error
			for _, p := range others {
				unreachable = append(unreachable, p.name)
				if err := lastErr[p.name]; err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p.name, flatten(err)))
				}
			}
			c.log.Warn("memberlist joined none of its peers within the join timeout; taking this speaker to be alone, and retrying them",
				"timeout", c.opts.JoinTimeout, "unreachable", unreachable, "members", n, "every", c.opts.RejoinInterval, "err", errors.Join(errs...))
			return false, true
		}
		t := time.NewTimer(min(c.opts.JoinRetry, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, false
		case <-t.C:
		}
	}
}

// otherPeers resolves peers and drops those that are only this member.
// A peer that cannot be resolved is kept, with the error.
func (c *Cluster) otherPeers(ctx context.Context, self netip.AddrPort, peers []string) []peer {
	var out []peer
	for _, p := range peers {
		addrs, err := c.resolve(ctx, p)
		if err != nil {
			out = append(out, peer{name: p, err: err})
			continue
		}
		addrs = slices.DeleteFunc(addrs, func(a netip.AddrPort) bool { return a == self })
		if len(addrs) > 0 {
			out = append(out, peer{name: p, addrs: addrs})
		}
	}
	return out
}

func (c *Cluster) joinMissing(ctx context.Context, list *memberlist.Memberlist, self netip.AddrPort, peers []string, failing map[string]bool) {
	for _, p := range peers {
		if ctx.Err() != nil {
			return
		}
		addrs, err := c.resolve(ctx, p)
		members := c.memberAddrs() // a join brings in the peer's members too
		members[self] = true
		if err == nil && slices.ContainsFunc(addrs, func(a netip.AddrPort) bool { return members[a] }) {
			delete(failing, p)
			continue
		}
		if err == nil {
			err = join(list, addrs)
		}
		if err == nil {
			delete(failing, p)
			c.log.Info("memberlist joined peer", "peer", p)
			continue
		}
		c.joinFailed(ctx, p, err, c.opts.RejoinInterval, failing)
	}
}

// join joins the member at addrs, exchanging the whole state with it.
func join(list *memberlist.Memberlist, addrs []netip.AddrPort) error {
	targets := make([]string, len(addrs))
	for i, a := range addrs {
		targets[i] = a.String()
	}
	_, err := list.Join(targets)
	return err
}

// joinFailed logs a failed join of peer p, at Warn the first time in a
// row and at Debug after that.
func (c *Cluster) joinFailed(ctx context.Context, p string, err error, every time.Duration, failing map[string]bool) {
	level := slog.LevelWarn
	if failing[p] {
		level = slog.LevelDebug
	}
	failing[p] = true
	c.log.Log(ctx, level, "memberlist cannot join peer; retrying", "peer", p, "every", every, "err", flatten(err))
}

// flatten turns memberlist's multierror, whose text spans lines, into a
// plain error.
func flatten(err error) error {
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		errs := m.WrappedErrors()
		if len(errs) == 1 {
			return errs[0]
		}
		return errors.Join(errs...)
	}
	return err
}

// resolve turns "host" or "host:port" into addresses; a host that is not
// an IP address is looked up.
func (c *Cluster) resolve(ctx context.Context, peer string) ([]netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
	}
	host, port := peer, c.opts.Port
	if h, p, err := net.SplitHostPort(peer); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("peer %q: bad port: %w", peer, err)
		}
		host, port = h, int(n)
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return nil, fmt.Errorf("peer %q: no host", peer)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(port))}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", peer, err)
	}
	out := make([]netip.AddrPort, len(ips))
	for i, a := range ips {
		out[i] = netip.AddrPortFrom(a.Unmap(), uint16(port))
	}
	return out, nil
}
