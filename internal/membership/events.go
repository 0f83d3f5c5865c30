package membership

import (
	"bytes"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// update records that member name is alive at addr with meta, or not
// alive. Before the first join is settled it only records.
func (c *Cluster) update(name string, addr netip.AddrPort, meta []byte, alive bool) {
	c.mu.Lock()
	if !c.running {
		c.mu.Unlock()
		return
	}
	old, was := c.alive[name]
	if alive {
		meta = cloneMeta(meta)
		c.alive[name] = memberState{addr: addr, meta: meta}
		delete(c.gone, name)
	} else {
		delete(c.alive, name)
		if name != c.opts.Name {
			c.gone[name] = addr
		}
	}
	n, published := len(c.alive), c.joined
	if published {
		c.opts.Metrics.setMembers(n)
	}
	c.mu.Unlock()

	metaChanged := was && alive && !bytes.Equal(old.meta, meta)
	switch {
	case was != alive && alive:
		c.log.Info("memberlist member alive", "member", name, "address", addr, "meta", len(meta), "members", n)
	case was != alive:
		c.log.Info("memberlist member gone", "member", name, "members", n)
	case metaChanged:
		c.log.Info("memberlist member changed its metadata", "member", name, "meta", len(meta), "was", len(old.meta))
	default:
		return
	}
	if published {
		c.signal()
	}
}

// cloneMeta copies metadata, nil when empty.
func cloneMeta(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// events receives memberlist's membership events. memberlist calls them
// one at a time while holding its own lock, so they must not call back into
// it, and do not block. memberlist calls NotifyUpdate when a member's
// metadata changed.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.update(n.Name, nodeAddr(n), n.Meta, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.update(n.Name, nodeAddr(n), nil, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.update(n.Name, nodeAddr(n), n.Meta, true) }

// metaDelegate advertises this member's metadata: memberlist asks for it
// whenever it announces this member as alive. The rest of the Delegate
// (user messages, broadcasts and state) is unused. It is installed only
// when there is metadata to advertise.
type metaDelegate struct{ meta []byte }

func (d metaDelegate) NodeMeta(int) []byte           { return d.meta } // New checked the limit
func (metaDelegate) NotifyMsg([]byte)                {}
func (metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (metaDelegate) LocalState(bool) []byte          { return nil }
func (metaDelegate) MergeRemoteState([]byte, bool)   {}

func nodeAddr(n *memberlist.Node) netip.AddrPort {
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}
