package lab

// This file looks into the lab's namespaces as an operator would: a
// node's nftables tables, a host's neighbour entries, `speaker --cleanup`.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NFTTables lists the nftables tables in a node's namespace, as "family
// name" ("ip ironlb").
func (l *Lab) NFTTables(node string) ([]string, error) {
	n, err := l.node(node)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", n.NetNS, "nft", "list", "tables")
	cmd.Env = append(cmd.Environ(), l.speakerEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nft list tables in %s: %w: %s", n.NetNS, err, out)
	}
	var tables []string
	for _, line := range strings.Split(string(out), "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "table "); ok {
			tables = append(tables, t)
		}
	}
	return tables, nil
}

// SpeakerCleanup runs `speaker --cleanup` in a node's namespace, as an
// operator removing ironlb would, and returns what it printed: from the
// speaker's image, with the chart's security context, when the lab runs
// the images.
func (l *Lab) SpeakerCleanup(node string) (string, error) {
	n, err := l.node(node)
	if err != nil {
		return "", err
	}
	if l.podman != nil {
		out, err := l.podman.runOnce(l.speaker, n.NetNS, "--cleanup")
		if err != nil {
			return out, fmt.Errorf("speaker --cleanup from its image in %s: %w", n.NetNS, err)
		}
		return out, nil
	}
	cmd := exec.Command("ip", "netns", "exec", n.NetNS, l.bin.Speaker, "--cleanup")
	cmd.Env = append(cmd.Environ(), l.speakerEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("speaker --cleanup in %s: %w: %s", n.NetNS, err, out)
	}
	return string(out), nil
}

// NeighborNode names the node whose LAN MAC the neighbour entry for addr
// in namespace ns holds: where that host sends addr's traffic. It is ""
// when ns has no usable entry for addr or the MAC is no node's.
func (l *Lab) NeighborNode(ns string, addr netip.Addr) (string, error) {
	h, err := handle(ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	neighs, err := h.NeighList(0, fam)
	if err != nil {
		return "", fmt.Errorf("neighbours in %s: %w", ns, err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == addr && n.HardwareAddr != nil && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
			return l.NodeOfMAC(n.HardwareAddr), nil
		}
	}
	return "", nil
}

// FlushNeighbor removes the neighbour entry for addr in namespace ns, if
// any, so that its next packet to addr asks anew who has it.
func FlushNeighbor(ns string, addr netip.Addr) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(InsideIface)
	if err != nil {
		return err
	}
	err = h.NeighDel(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: addr.AsSlice()})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing the neighbour entry for %s in %s: %w", addr, ns, err)
	}
	return nil
}

// NodeOfMAC names the node whose LAN interface has mac, or "". The MACs
// are read once: a lab's interfaces keep theirs.
func (l *Lab) NodeOfMAC(mac net.HardwareAddr) string {
	l.macsOnce.Do(func() {
		l.macs = map[string]string{}
		for _, n := range l.Plan.Nodes {
			if m, err := NodeMAC(l.Plan, n.Name); err == nil {
				l.macs[m.String()] = n.Name
			}
		}
	})
	return l.macs[mac.String()]
}
