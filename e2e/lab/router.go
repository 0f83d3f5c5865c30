package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// RouterASN and NodeASN are the lab's autonomous systems: the FRR router's
// and the speakers'.
const (
	RouterASN = 64500
	NodeASN   = 64512
)

// frrDir is where FRR keeps the sockets of an instance named after the
// router's namespace (`-N`).
func frrDir(ns string) string { return filepath.Join("/var/run/frr", ns) }

// routerConfig is FRR's configuration: eBGP with every node, over IPv4 for
// IPv4 routes and over IPv6 for IPv6 routes, accepting the routes they
// send and installing them (zebra) so the remote client's traffic follows
// them, with ECMP over the nodes; and a BFD profile for the nodes, which
// RouterBFD turns on. It sends the nodes nothing, as
// internal/bgp's README advises routers to: a speaker uses no route it
// receives, and GoBGP would keep each one (the other nodes' paths to every
// Service) in memory.
func routerConfig(p Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname %s\nlog stdout informational\n!\nroute-map TO-SPEAKERS deny 10\n!\n", p.Router.NetNS)
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n", RouterASN, p.Router.Addr.Addr())
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s remote-as %d\n", n.Addr.Addr(), NodeASN, n.Addr6.Addr(), NodeASN)
	}
	b.WriteString(" address-family ipv4 unicast\n  maximum-paths 16\n")
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s route-map TO-SPEAKERS out\n", n.Addr.Addr(), n.Addr.Addr())
	}
	b.WriteString(" exit-address-family\n address-family ipv6 unicast\n  maximum-paths 16\n")
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s route-map TO-SPEAKERS out\n", n.Addr6.Addr(), n.Addr6.Addr())
	}
	b.WriteString(" exit-address-family\n!\n")
	// bfdd reads the profile; RouterBFD puts the neighbours on it.
	fmt.Fprintf(&b, "bfd\n profile %s\n  receive-interval 200\n  transmit-interval 200\n  detect-multiplier 3\n !\n!\n", BFDProfile)
	return b.String()
}

// StartRouter runs FRR's zebra, bgpd and bfdd in the router's namespace,
// as an instance of their own, with their configuration and logs in dir.
func StartRouter(p Plan, dir string) (procs []*Process, err error) {
	ns := p.Router.NetNS
	defer func() {
		if err != nil {
			for _, pr := range procs {
				pr.Stop()
			}
		}
	}()
	if err := frrRunDir(ns); err != nil {
		return nil, err
	}
	// FRR reads its configuration as the frr user: keep it in the
	// instance's own folder, not in the lab's (which may be private).
	conf := filepath.Join(frrDir(ns), "frr.conf")
	if err := os.WriteFile(conf, []byte(routerConfig(p)), 0o644); err != nil {
		return nil, err
	}
	for _, d := range []struct{ name, bin string }{{"zebra", "/usr/lib/frr/zebra"}, {"bgpd", "/usr/lib/frr/bgpd"}, {"bfdd", "/usr/lib/frr/bfdd"}} {
		args := []string{"-N", ns, "-f", conf, "-i", filepath.Join(frrDir(ns), d.name+".pid"), "-z", filepath.Join(frrDir(ns), "zserv.api")}
		if d.name == "bfdd" {
			args = append(args, "--bfdctl", filepath.Join(frrDir(ns), "bfdd.sock"))
		}
		pr, err := startIn(dir, d.name, ns, nil, d.bin, args...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, pr)
	}
	return procs, nil
}

// frrRunDir makes FRR's per-instance folder, owned by the frr user.
func frrRunDir(ns string) error {
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("FRR is not installed (no frr user): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(frrDir(ns), 0o755); err != nil {
		return err
	}
	return os.Chown(frrDir(ns), uid, gid)
}

// Vtysh runs a command on the lab's router.
func Vtysh(p Plan, command string) (string, error) {
	// vtysh complains on stdout that the instance has no vtysh.conf; the
	// answer follows.
	out, err := exec.Command("vtysh", "-N", p.Router.NetNS, "-c", command).CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, fmt.Errorf("vtysh -N %s -c %q: %s", p.Router.NetNS, command, out))
	}
	s := string(out)
	for strings.HasPrefix(s, "% Can't open configuration file") {
		_, s, _ = strings.Cut(s, "\n")
	}
	return s, nil
}
