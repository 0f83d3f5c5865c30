package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces live (as iproute2 keeps them).
const netnsDir = "/var/run/netns"

// Up builds the plan's network: its namespaces, the LAN bridge with a leg
// for every participant and the host, the router's second segment, a pod
// bridge on every node, routes and forwarding. On error it removes what
// it built.
func Up(p Plan) (err error) {
	if other := otherLab(p.Name); other != "" {
		return fmt.Errorf("another lab, %q, is running on this machine (one lab at a time: they share the host's address on the LAN); stop it, or remove its leftovers with `make lab-down` (lab -name %s down)", other, other)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, Down(p.Name))
		}
	}()
	for _, ns := range p.Namespaces() {
		if err := newNetNS(ns); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	if err := p.lanUp(); err != nil {
		return err
	}
	if err := p.routesUp(); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if err := p.nodeNetwork(n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

// lanUp builds the LAN bridge with a leg for every participant and the
// host, and the router's second segment.
func (p Plan) lanUp() error {
	lan, err := handle(p.LAN)
	if err != nil {
		return err
	}
	defer lan.Close()
	// A switch without multicast snooping: it floods neighbour
	// solicitations to every port, whoever joined which group.
	no := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: lanBridge}, MulticastSnooping: &no}
	if err := lan.LinkAdd(br); err != nil {
		return fmt.Errorf("creating the LAN bridge: %w", err)
	}
	if err := up(lan, br, "lo"); err != nil {
		return err
	}
	for i, h := range p.lanMembers() {
		if err := p.legOnLAN(lan, br, lanPort(i), h.NetNS, InsideIface, h.Addrs()...); err != nil {
			return err
		}
	}
	if err := p.legOnLAN(lan, br, "phost", "", p.HostIface, p.HostLeg.Addrs()...); err != nil {
		return err
	}
	// The router's second segment: a direct veth to the remote client.
	return veth(p.Router.NetNS, "eth1", p.RouterRemote.Addrs(), p.Remote.NetNS, InsideIface, p.Remote.Addrs())
}

// routesUp gives the control plane, the client and the remote client
// their routes, and the router forwarding.
func (p Plan) routesUp() error {
	lanGW, lanGW6 := p.Router.Addr.Addr(), p.Router.Addr6.Addr()
	for _, h := range []Host{p.ControlPlane, p.Client} {
		if err := routes(h.NetNS, route{dst: RemoteNet, via: lanGW}, route{dst: RemoteNet6, via: lanGW6}, route{dst: BGPPoolNet, via: lanGW}, route{dst: BGPPoolNet6, via: lanGW6}); err != nil {
			return err
		}
	}
	// The client and the router reach the layer 2 pools on the LAN
	// itself: they ask by ARP and NDP.
	for _, h := range []Host{p.Client, p.Router} {
		if err := routes(h.NetNS, route{dst: L2PoolNet, dev: InsideIface}, route{dst: L2PoolNet6, dev: InsideIface}); err != nil {
			return err
		}
	}
	// The client reaches every node's pods through that node, so a
	// measurement can compare a pod's LoadBalancer address with the pod
	// itself.
	var toPods []route
	for _, n := range p.Nodes {
		toPods = append(toPods, route{dst: n.PodCIDR, via: n.Addr.Addr()}, route{dst: n.PodCIDR6, via: n.Addr6.Addr()})
	}
	if err := routes(p.Client.NetNS, toPods...); err != nil {
		return err
	}
	if err := routes(p.Remote.NetNS,
		route{dst: netip.MustParsePrefix("0.0.0.0/0"), via: p.RouterRemote.Addr.Addr()},
		route{dst: netip.MustParsePrefix("::/0"), via: p.RouterRemote.Addr6.Addr()}); err != nil {
		return err
	}
	// The router spreads connections over its ECMP paths by their ports
	// too (as routers usually hash), not by addresses alone, which would
	// send every connection of the remote client to one node.
	return errors.Join(forwarding(p.Router.NetNS),
		sysctl(p.Router.NetNS, "net/ipv4/fib_multipath_hash_policy", "1"),
		sysctl(p.Router.NetNS, "net/ipv6/fib_multipath_hash_policy", "1"))
}

// legOnLAN connects a namespace (or the host, ns "") to the LAN bridge.
func (p Plan) legOnLAN(lan *netlink.Handle, br *netlink.Bridge, outer, ns, inner string, addrs ...netip.Prefix) error {
	lanNS, err := netns.GetFromName(p.LAN)
	if err != nil {
		return err
	}
	defer lanNS.Close()
	peerNS, err := nsOrHost(ns)
	if err != nil {
		return err
	}
	defer peerNS.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: outer, Namespace: netlink.NsFd(lanNS)}, PeerName: inner, PeerNamespace: netlink.NsFd(peerNS)}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("creating the veth %s/%s for %q: %w", outer, inner, ns, err)
	}
	link, err := lan.LinkByName(outer)
	if err != nil {
		return err
	}
	if err := lan.LinkSetMaster(link, br); err != nil {
		return err
	}
	if err := lan.LinkSetUp(link); err != nil {
		return err
	}
	return configure(ns, inner, addrs...)
}

// veth joins two namespaces directly.
func veth(nsA, ifA string, addrsA []netip.Prefix, nsB, ifB string, addrsB []netip.Prefix) error {
	a, err := netns.GetFromName(nsA)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := netns.GetFromName(nsB)
	if err != nil {
		return err
	}
	defer b.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifA, Namespace: netlink.NsFd(a)}, PeerName: ifB, PeerNamespace: netlink.NsFd(b)}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("creating the veth %s:%s-%s:%s: %w", nsA, ifA, nsB, ifB, err)
	}
	return errors.Join(configure(nsA, ifA, addrsA...), configure(nsB, ifB, addrsB...))
}

// nodeNetwork gives a node its pod bridge (the pods' gateway of each
// family), routes to the other nodes' pods and forwarding of both
// families: ironlb's DNAT sends what arrives for a LoadBalancer address
// on to a pod, here or on another node.
func (p Plan) nodeNetwork(n Node) error {
	h, err := handle(n.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: podBridge}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("creating the pod bridge: %w", err)
	}
	if err := configure(n.NetNS, podBridge, n.PodGateway(), n.PodGateway6()); err != nil {
		return err
	}
	rs := []route{{dst: RemoteNet, via: p.Router.Addr.Addr()}, {dst: RemoteNet6, via: p.Router.Addr6.Addr()}, {dst: BGPPoolNet, via: p.Router.Addr.Addr()}, {dst: BGPPoolNet6, via: p.Router.Addr6.Addr()}}
	for _, other := range p.Nodes {
		if other.Name != n.Name {
			rs = append(rs, route{dst: other.PodCIDR, via: other.Addr.Addr()}, route{dst: other.PodCIDR6, via: other.Addr6.Addr()})
		}
	}
	if err := routes(n.NetNS, rs...); err != nil {
		return err
	}
	return forwarding(n.NetNS)
}

// configure gives the interface its addresses and brings it and lo up.
// IPv6 addresses skip duplicate address detection, and so does the link
// local address the interface gets when it comes up: they are usable at
// once (an NDP socket needs the link local one), where DAD would hold
// them back a second or more, and again after every loss of carrier.
func configure(ns, ifname string, addrs ...netip.Prefix) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in %q: %w", ifname, ns, err)
	}
	conf := "net/ipv6/conf/" + ifname + "/"
	if err := errors.Join(sysctl(ns, conf+"disable_ipv6", "0"), sysctl(ns, conf+"accept_dad", "0")); err != nil {
		return err
	}
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		na := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			na.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, na); err != nil {
			return fmt.Errorf("address %s on %s in %q: %w", a, ifname, ns, err)
		}
	}
	return up(h, link, "lo")
}

func up(h *netlink.Handle, link netlink.Link, others ...string) error {
	if err := h.LinkSetUp(link); err != nil {
		return err
	}
	for _, name := range others {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

type route struct {
	dst netip.Prefix
	via netip.Addr // gateway, or
	dev string     // an interface the destination is directly on
}

func routes(ns string, rs ...route) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, r := range rs {
		nr := &netlink.Route{Dst: ipNet(r.dst)}
		if r.via.IsValid() {
			nr.Gw = r.via.AsSlice()
		} else {
			link, err := h.LinkByName(r.dev)
			if err != nil {
				return err
			}
			nr.LinkIndex, nr.Scope = link.Attrs().Index, netlink.SCOPE_LINK
		}
		if err := h.RouteAdd(nr); err != nil {
			return fmt.Errorf("route to %s in %q: %w", r.dst, ns, err)
		}
	}
	return nil
}

// forwarding turns on IPv4 and IPv6 forwarding inside a namespace.
func forwarding(ns string) error {
	return errors.Join(sysctl(ns, "net/ipv4/ip_forward", "1"), sysctl(ns, "net/ipv6/conf/all/forwarding", "1"))
}

// sysctl sets a sysctl (key as under /proc/sys) inside a namespace, or the
// machine's own for ns "". /proc/sys/net shows the namespace of the thread
// that opens it.
func sysctl(ns, key, value string) error {
	write := func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %q: %w", key, value, ns, err)
		}
		return nil
	}
	if ns == "" {
		return write()
	}
	return InNetNS(ns, write)
}

// Down removes every namespace and host interface of the lab called name,
// and kills what still runs in them, whether the lab came up fully, partly
// or was killed. Safe to call twice.
func Down(name string) error {
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			errs = append(errs, killIn(e.Name()))
			if err := netns.DeleteNamed(e.Name()); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("removing namespace %s: %w", e.Name(), err))
			}
		}
	}
	// The containers and storage of the lab's podman, once what ran in
	// the namespaces is dead.
	errs = append(errs, sweepPodman(name))
	// FRR's per-instance folders.
	if dirs, err := filepath.Glob(filepath.Join("/var/run/frr", name+"-*")); err == nil {
		for _, d := range dirs {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	// The host's leg disappears with the LAN namespace's end of it; remove
	// it in case the LAN namespace was already gone.
	// The kernel may remove it between the two calls (a namespace ends
	// asynchronously once its last process has), which is as good.
	if link, err := netlink.LinkByName(name + "-host"); err == nil {
		if err := netlink.LinkDel(link); err != nil && !errors.Is(err, syscall.ENODEV) {
			errs = append(errs, fmt.Errorf("removing the host's leg %s-host: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists what of the lab called name still exists: namespaces,
// their mounts, the host's leg, FRR's folders and the lab's podman
// storage (container.go). (Processes die with
// their namespace's Down, and with the lab's process: see Processes.)
func Leftovers(name string) []string {
	var out []string
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			out = append(out, filepath.Join(netnsDir, e.Name()))
		}
	}
	if _, err := netlink.LinkByName(name + "-host"); err == nil {
		out = append(out, "interface "+name+"-host")
	}
	frr, _ := filepath.Glob(filepath.Join("/var/run/frr", name+"-*"))
	out = append(out, frr...)
	out = append(out, podmanLeftovers(name)...)
	// Namespace bind mounts whose file is gone.
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.Contains(f[1], "/netns/"+name+"-") {
				continue
			}
			if _, err := os.Stat(filepath.Join(netnsDir, filepath.Base(f[1]))); err != nil {
				out = append(out, "mount "+f[1])
			}
		}
	}
	return out
}

// otherLab names a lab other than name whose leg is in the host's
// namespace: its 198.51.100.3 and routes would clash with this one's.
func otherLab(name string) string {
	links, err := netlink.LinkList()
	if err != nil {
		return ""
	}
	for _, l := range links {
		if n := l.Attrs().Name; strings.HasSuffix(n, "-host") && n != name+"-host" {
			if _, ok := l.(*netlink.Veth); ok {
				return strings.TrimSuffix(n, "-host")
			}
		}
	}
	return ""
}

// newNetNS creates a named namespace without moving the calling thread.
// Its interfaces skip IPv6 duplicate address detection (see configure).
func newNetNS(name string) error {
	return onLockedThread(func() error {
		ns, err := netns.NewNamed(name) // moves the thread into it
		if err != nil {
			return err
		}
		ns.Close()
		for _, conf := range []string{"all", "default"} {
			key := filepath.Join("/proc/sys/net/ipv6/conf", conf, "accept_dad")
			if err := os.WriteFile(key, []byte("0"), 0o644); err != nil {
				return fmt.Errorf("namespace %s: %w", name, err)
			}
		}
		return nil
	})
}

// InNetNS runs f on a thread inside the named namespace.
func InNetNS(name string, f func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer target.Close()
	return onLockedThread(func() error {
		if err := netns.Set(target); err != nil {
			return err
		}
		return f()
	})
}

// onLockedThread runs f, which may move the thread to another namespace,
// and moves it back. A thread that cannot be moved back stays locked, so
// the runtime ends it with the goroutine instead of reusing it.
func onLockedThread(f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	err = f()
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread()
	}
	return err
}

func handle(ns string) (*netlink.Handle, error) {
	if ns == "" {
		return netlink.NewHandle()
	}
	n, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer n.Close()
	return netlink.NewHandleAt(n)
}

func nsOrHost(ns string) (netns.NsHandle, error) {
	if ns == "" {
		return netns.Get()
	}
	return netns.GetFromName(ns)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// DialFrom opens a connection from inside a namespace of the lab.
func DialFrom(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := InNetNS(ns, func() (err error) {
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// HTTPGetFrom makes an HTTP GET from inside a namespace of the lab and
// returns the body.
func HTTPGetFrom(ns, url string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return DialFrom(ctx, ns, network, addr)
	}}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// NodeMAC is the hardware address of a node's LAN interface: the one its
// ARP replies and neighbour advertisements carry.
func NodeMAC(p Plan, node string) (net.HardwareAddr, error) {
	n, err := p.Node(node)
	if err != nil {
		return nil, err
	}
	h, err := handle(n.NetNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(InsideIface)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	return link.Attrs().HardwareAddr, nil
}

// LinkDown pulls a node's LAN cable: it takes the LAN bridge's end of the
// node's veth down. The node's eth0 stays administratively up with its
// addresses but loses its carrier (NO-CARRIER), so the node neither
// reaches nor is reached by anyone on the LAN (the client, the router,
// the other nodes), and notices as a real node would. LinkUp plugs it
// back in.
func LinkDown(p Plan, node string) error { return cable(p, node, false) }

// LinkUp plugs back in a cable LinkDown pulled.
func LinkUp(p Plan, node string) error { return cable(p, node, true) }

func cable(p Plan, node string, in bool) error {
	n, err := p.Node(node)
	if err != nil {
		return err
	}
	port, err := p.lanPortOf(n.NetNS)
	if err != nil {
		return err
	}
	h, err := handle(p.LAN)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("node %s's port %s on the LAN bridge: %w", node, port, err)
	}
	if in {
		err = h.LinkSetUp(link)
	} else {
		err = h.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("node %s's cable (port %s, in %t): %w", node, port, in, err)
	}
	return nil
}
