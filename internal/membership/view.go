package membership

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Joined reports whether Run has settled its first join (see Run), so that
// Alive and Members report the alive set; false before and after Run.
func (c *Cluster) Joined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

// Alive returns the sorted names of the alive members, this one included,
// once Run has settled its first join; nil before and after.
func (c *Cluster) Alive() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.joined || len(c.alive) == 0 {
		return nil
	}
	names := make([]string, 0, len(c.alive))
	for n := range c.alive {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Members returns the alive members, this one included, sorted by name,
// with the metadata each advertises. Like Alive it is nil until Run has
// settled its first join and after Run. The slices are the caller's to
// keep.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.joined || len(c.alive) == 0 {
		return nil
	}
	ms := make([]Member, 0, len(c.alive))
	for n, s := range c.alive {
		ms = append(ms, Member{Name: n, Meta: bytes.Clone(s.meta)})
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Reachable pings every other member, alive or gone (left or declared
// dead since Run started), once, all at the same time, and returns the
// names of those that answered within ProbeTimeout, this member's
// included, sorted; nil unless Run has settled its first join. memberlist
// takes a while to change its mind: it declares a member dead only after
// the suspicion timeout, and a member wrongly declared dead (by stale
// gossip from one that was cut off, say) is alive again only once it has
// refuted it. Reachable tells at once whether this member can reach the
// others, for example when it has just lost one of them and may itself be
// the one cut off.
//
// Reachable returns as soon as enough members, this one included, have
// answered (0: wait for every ping), so that a caller that needs a
// majority is not held up by a member that is really gone: a missing
// answer costs a whole ProbeTimeout.
func (c *Cluster) Reachable(enough int) []string {
	c.mu.Lock()
	list, joined := c.list, c.joined
	others := make(map[string]netip.AddrPort, len(c.alive)+len(c.gone))
	for n, a := range c.gone {
		others[n] = a
	}
	for n, s := range c.alive {
		if n != c.opts.Name {
			others[n] = s.addr
		}
	}
	c.mu.Unlock()
	if list == nil || !joined {
		return nil
	}
	var mu sync.Mutex
	out := []string{c.opts.Name}
	answered := make(chan struct{}, len(others))
	for name, addr := range others {
		go func() {
			if _, err := list.Ping(name, net.UDPAddrFromAddrPort(addr)); err == nil {
				mu.Lock()
				out = append(out, name)
				mu.Unlock()
			}
			answered <- struct{}{}
		}()
	}
	for range others {
		mu.Lock()
		done := enough > 0 && len(out) >= enough
		mu.Unlock()
		if done {
			break
		}
		<-answered
	}
	mu.Lock()
	defer mu.Unlock()
	res := slices.Clone(out)
	slices.Sort(res)
	return res
}

// Addr returns the address and port this member advertises, once Run has
// created the list (useful with Port 0), settled or not; the zero value
// otherwise.
func (c *Cluster) Addr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive[c.opts.Name].addr
}

// memberAddrs returns the addresses of the alive members, published or
// not.
func (c *Cluster) memberAddrs() map[netip.AddrPort]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[netip.AddrPort]bool, len(c.alive))
	for _, s := range c.alive {
		m[s.addr] = true
	}
	return m
}
