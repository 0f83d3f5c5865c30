package lab

// This file holds the faults of issue 16 that the lab inflicts from
// outside the speakers: cutting one node's memberlist traffic (PortCut)
// and freezing the API server (FreezeAPIServer). What a trial needs
// besides is beside it: the speakers' own count of members
// (SpeakerMembers, WatchMembers, members.go), a password on the router's
// sessions (RouterPassword, RouterSessions, bgp.go) and the memberlist
// key's Secret (MemberlistSecret, SetMemberlistKeys, members.go). The
// trials themselves, and the analysis of what the client saw, are
// e2e/measure's.

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// faultTable is the nftables table (family inet, so both IPv4 and IPv6)
// that PortCut adds to a node's namespace. It is the lab's alone: the
// speaker's own tables are called ironlb and never touch it.
const faultTable = "ironlb_lab_fault"

// MemberlistPort is the speakers' memberlist port, TCP and UDP, as the
// chart sets it (memberlist.port).
const MemberlistPort = 7947

// portCutRules drops every packet to or from port, TCP or UDP, either
// family, coming in or going out. A filter base chain's drop is final
// whatever other tables accept, so the speaker's own rules cannot undo it.
func portCutRules(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", faultTable)
	for _, hook := range []string{"input", "output"} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority -300; policy accept;\n", hook, hook)
		for _, proto := range []string{"tcp", "udp"} {
			fmt.Fprintf(&b, "\t\t%s dport %d drop\n\t\t%s sport %d drop\n", proto, port, proto, port)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// PortCut cuts one node off from the other speakers' memberlist while
// leaving it on the LAN: inside the node's namespace, an nftables table of
// the lab's own drops the memberlist port's traffic (TCP and UDP, IPv4 and
// IPv6, in and out). The API server, BGP, ARP/NDP and the Services'
// traffic still flow. The table lives in the node's namespace, so it goes
// when the lab does; PortHeal removes it before that.
func (l *Lab) PortCut(node string) error {
	return l.cutPort(node, MemberlistPort, "memberlist")
}

// BFDPort is single-hop BFD's UDP port (RFC 5881).
const BFDPort = 3784

// CutBFD drops, as PortCut does, one node's single-hop BFD packets, both
// ways, while its BGP sessions' TCP still flows; PortHeal lets them
// through again.
func (l *Lab) CutBFD(node string) error { return l.cutPort(node, BFDPort, "BFD") }

func (l *Lab) cutPort(node string, port int, what string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if err := l.nft(n.NetNS, portCutRules(port), "-f", "-"); err != nil {
		return fmt.Errorf("cutting %s's %s port: %w", node, what, err)
	}
	return nil
}

// PortHeal undoes PortCut or CutBFD: it deletes the lab's table from the node's
// namespace. A node that was not cut is left alone.
func (l *Lab) PortHeal(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	tables, err := l.NFTTables(node)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, "inet "+faultTable) {
		return nil
	}
	if err := l.nft(n.NetNS, "", "delete", "table", "inet", faultTable); err != nil {
		return fmt.Errorf("healing %s's cut port: %w", node, err)
	}
	return nil
}

// nft runs nft with args inside namespace ns, stdin as its input.
func (l *Lab) nft(ns, stdin string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Env = append(cmd.Environ(), l.speakerEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft %s in %s: %w: %s", strings.Join(args, " "), ns, err, out)
	}
	return nil
}

// FreezeAPIServer stops the lab's kube-apiserver with SIGSTOP: it keeps
// its sockets, so clients connect and wait for answers that do not come,
// as with an API server that hangs, not one that is gone. etcd and
// kube-controller-manager keep running. ThawAPIServer resumes it; Close
// resumes it too, so a test that fails mid-freeze still tears down quickly.
func (l *Lab) FreezeAPIServer() error { return l.signalAPIServer(syscall.SIGSTOP) }

// ThawAPIServer resumes an API server FreezeAPIServer stopped; on a
// running one it does nothing.
func (l *Lab) ThawAPIServer() error { return l.signalAPIServer(syscall.SIGCONT) }

func (l *Lab) signalAPIServer(sig syscall.Signal) error {
	if l.CP == nil {
		return errors.New("the lab has no control plane")
	}
	for _, pr := range l.CP.procs {
		if pr.Name != "kube-apiserver" {
			continue
		}
		if exited, err := pr.Exited(); exited {
			return fmt.Errorf("kube-apiserver has exited (%v)", err)
		}
		// Its process group: `ip netns exec` became the API server.
		if err := syscall.Kill(-pr.cmd.Process.Pid, sig); err != nil {
			return fmt.Errorf("kube-apiserver (%d): %s: %w", pr.cmd.Process.Pid, sig, err)
		}
		return nil
	}
	return errors.New("the lab runs no kube-apiserver")
}
