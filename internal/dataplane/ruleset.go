package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// The layout of ironlb's table, the same for both families (table "ip
// ironlb" and "ip6 ironlb"):
//
//	set addresses    every frontend address: what is not DNATed is rejected
//	map services     address . protocol . port : goto backends-N (or affinity-…)
//	map backends-P   address . port . index : backend address . port, one
//	                 map per protocol P (tcp, udp, sctp)
//	set masquerading backend address . protocol . port reached off this node
//	set hairpin      backend address . the same address, for backends on
//	                 this node: a pod reaching its own Service and sent to
//	                 itself is masqueraded, or its reply would skip the NAT
//	set restricted   address . protocol . port of the frontends that accept
//	                 only some clients (loadBalancerSourceRanges)
//	set allowed      address . protocol . port . client prefix, intervals:
//	                 the clients each restricted frontend accepts
//
// One rule in each base chain does the whole lookup; there is no chain per
// Service. A Service port with N backends jumps to backends-N, whose one
// rule per protocol picks index = numgen random mod N and DNATs to that
// element of backends-P. (One map per protocol because nft 1.0.6 cannot
// add a rule using a map whose key mixes "meta l4proto" and "th dport"
// once the map holds elements.) So a change of one Service touches only its own elements, and
// the kernel holds as many chains as there are distinct backend counts,
// not one per Service (the cost that grows with chains, see
// ../../docs/forwarding.md). Only ports with sessionAffinity: ClientIP get
// chains of their own (affinity-…), with a set of recent clients per
// backend.
//
// The source ranges are checked by one rule in a filter chain that runs
// before ironlb's DNAT: a new connection to a restricted frontend whose
// client is in none of its allowed prefixes is dropped there (silently,
// as kube-proxy does, never reset), so it is never DNATed. Like the
// services map, both sets are keyed by frontend and hold no chain: a
// change of one Service's ranges touches only its own elements.
//
// Priorities: the firewall runs just before ironlb's DNAT, which runs
// just before kube-proxy's or a CNI's dstnat chains would; the reject
// chains run just after DNAT, so they see only what no rule took;
// masquerading runs just before other srcnat chains.
const (
	tableName      = "ironlb"
	setAddresses   = "addresses"
	mapServices    = "services"
	setMasquerade  = "masquerading"
	setHairpin     = "hairpin"
	setRestricted  = "restricted"
	setAllowed     = "allowed"
	backendsPrefix = "backends-"
	affinityPrefix = "affinity-"
	clientsPrefix  = "clients-"

	chainPrerouting   = "prerouting"
	chainOutput       = "output"
	chainPostrouting  = "postrouting"
	chainRejectPre    = "reject-prerouting"
	chainRejectOutput = "reject-output"
	chainFirewallPre  = "firewall-prerouting"
	chainFirewallOut  = "firewall-output"
)

// family is what differs between the IPv4 and the IPv6 table.
type family struct {
	nft knftables.Family
	// ip is the expression prefix ("ip" or "ip6"), addr the set type.
	ip, addr string
}

var (
	ipv4 = family{nft: knftables.IPv4Family, ip: "ip", addr: "ipv4_addr"}
	ipv6 = family{nft: knftables.IPv6Family, ip: "ip6", addr: "ipv6_addr"}
)

func (f family) matches(a netip.Addr) bool { return a.Is4() == (f.nft == knftables.IPv4Family) }

var protocols = []Protocol{TCP, UDP, SCTP}

func elemKey(parts ...string) string {
	b := make([]byte, 0, 64)
	for i, p := range parts {
		if i > 0 {
			b = append(b, " . "...)
		}
		b = append(b, p...)
	}
	return string(b)
}

// layout puts the objects one frontend of family f needs into p (or
// takes them out): the same frontend always gives the same objects, so
// what it added is dropped again from its old value alone.
func layout(f family, fe *Frontend, p placement) {
	addr := fe.Addr.String()
	proto := string(fe.Protocol)
	port := strconv.Itoa(int(fe.Port))
	p.elem(idAddresses, element{key: []string{addr}})
	// A frontend without backends is restricted too: a client it does
	// not accept is dropped rather than told by a reset that something
	// is there.
	restrict(p, fe, addr, proto, port)
	if len(fe.Backends) == 0 {
		return
	}
	for _, b := range fe.Backends {
		if b.Masquerade {
			p.elem(idMasquerade, element{key: []string{b.Addr().String(), proto, strconv.Itoa(int(b.Port()))}})
		} else {
			a := b.Addr().String()
			p.elem(idHairpin, element{key: []string{a, a}})
		}
	}
	var verdict string
	if fe.Affinity > 0 {
		verdict = "goto " + affinityChains(f, fe, p)
	} else {
		group := backendsPrefix + strconv.Itoa(len(fe.Backends))
		rules := make([]string, 0, len(protocols))
		for _, pr := range protocols {
			rules = append(rules, fmt.Sprintf(
				"meta l4proto %s dnat %s to %s daddr . %s dport . numgen random mod %d map @%s%s",
				pr, f.ip, f.ip, pr, len(fe.Backends), backendsPrefix, pr))
		}
		p.chain(group, rules)
		verdict = "goto " + group
		id := backendsOf(fe.Protocol)
		for i, b := range fe.Backends {
			p.elem(id, element{key: []string{addr, port, strconv.Itoa(i)}, value: []string{b.Addr().String(), strconv.Itoa(int(b.Port()))}})
		}
	}
	p.elem(idServices, element{key: []string{addr, proto, port}, value: []string{verdict}})
}

// restrict places a frontend's source ranges of its family, if it has
// any: its key in restricted, and one element in allowed per prefix
// (none when it accepts nobody).
func restrict(p placement, fe *Frontend, addr, proto, port string) {
	restricted, allowed := fe.SourceRanges.forFamily(fe.Addr.Is4())
	if !restricted {
		return
	}
	p.elem(idRestricted, element{key: []string{addr, proto, port}})
	for _, a := range allowed {
		p.elem(idAllowed, element{key: []string{addr, proto, port, a.String()}})
	}
}

// affinityChains places the chains and client sets of a frontend with
// sessionAffinity: ClientIP and returns the name of the chain its
// packets go to. A client seen within the timeout goes back to the
// backend it went to; one that is not picks a backend at random and is
// recorded in that backend's set; either way its time in the set starts
// again. Names are hashes of what they hold, so a set of clients lives
// as long as its backend does and the timeout stays the same.
func affinityChains(f family, fe *Frontend, p placement) string {
	id := fmt.Sprintf("%s/%s/%d/%d", fe.Addr, fe.Protocol, fe.Port, fe.Affinity/time.Second)
	chain := affinityPrefix + hash(id)
	var rules, picks []string
	for i, b := range fe.Backends {
		set := clientsPrefix + hash(id+"/"+b.String())
		dnat := fmt.Sprintf("meta l4proto %s dnat %s to %s", fe.Protocol, f.ip, backendText(b.AddrPort))
		p.clientSet(set, fe.Affinity)
		p.chain(set, []string{fmt.Sprintf("update @%s { %s saddr }", set, f.ip), dnat})
		rules = append(rules, fmt.Sprintf("%s saddr @%s goto %s", f.ip, set, set))
		picks = append(picks, fmt.Sprintf("%d : goto %s", i, set))
	}
	// " , " rather than ", ": knftables' Fake reads "goto x," as a chain
	// named "x,"; nft takes either.
	rules = append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(fe.Backends), strings.Join(picks, " , ")))
	p.chain(chain, rules)
	return chain
}

func backendText(b netip.AddrPort) string {
	if b.Addr().Is6() {
		return "[" + b.Addr().String() + "]:" + strconv.Itoa(int(b.Port()))
	}
	return b.String()
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// baseChains are the chains hooked into netfilter, with their one or two
// rules each.
func baseChains(f family) []struct {
	chain knftables.Chain
	rules []string
} {
	dispatch := fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", f.ip, mapServices)
	reject := []string{
		fmt.Sprintf("%s daddr @%s meta l4proto tcp reject with tcp reset", f.ip, setAddresses),
		fmt.Sprintf("%s daddr @%s reject", f.ip, setAddresses),
	}
	// Only new connections are looked up, as kube-proxy does: the
	// packets of an accepted connection cost nothing more, and a
	// connection is judged by the ranges of when it began.
	firewall := []string{fmt.Sprintf(
		"ct state new %s daddr . meta l4proto . th dport @%s %s daddr . meta l4proto . th dport . %s saddr != @%s drop",
		f.ip, setRestricted, f.ip, f.ip, setAllowed)}
	base := func(name string, t knftables.BaseChainType, h knftables.BaseChainHook, p knftables.BaseChainPriority) knftables.Chain {
		return knftables.Chain{Name: name, Type: &t, Hook: &h, Priority: &p}
	}
	return []struct {
		chain knftables.Chain
		rules []string
	}{
		{base(chainFirewallPre, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority+"-20"), firewall},
		{base(chainFirewallOut, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority+"-20"), firewall},
		{base(chainPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority+"-10"), []string{dispatch}},
		{base(chainOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority+"-10"), []string{dispatch}},
		{base(chainPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority+"-10"), []string{
			fmt.Sprintf("ct status dnat ct original %s daddr @%s %s daddr . meta l4proto . th dport @%s masquerade",
				f.ip, setAddresses, f.ip, setMasquerade),
			fmt.Sprintf("ct status dnat ct original %s daddr @%s %s saddr . %s daddr @%s masquerade",
				f.ip, setAddresses, f.ip, f.ip, setHairpin)}},
		{base(chainRejectPre, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority+"+10"), reject},
		{base(chainRejectOutput, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority+"+10"), reject},
	}
}

// declare adds the table, its sets and maps and the base chains with
// their rules to tx, replacing whatever rules those chains held.
func declare(f family, tx *knftables.Transaction) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("ironlb: LoadBalancer forwarding, managed by the ironlb speaker")})
	tx.Add(&knftables.Set{Name: setAddresses, Type: f.addr})
	tx.Add(&knftables.Set{Name: setMasquerade, Type: f.addr + " . inet_proto . inet_service"})
	tx.Add(&knftables.Set{Name: setHairpin, Type: f.addr + " . " + f.addr})
	tx.Add(&knftables.Map{Name: mapServices, Type: f.addr + " . inet_proto . inet_service : verdict"})
	tx.Add(&knftables.Set{Name: setRestricted, Type: f.addr + " . inet_proto . inet_service"})
	tx.Add(&knftables.Set{Name: setAllowed, Type: f.addr + " . inet_proto . inet_service . " + f.addr,
		Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	for _, p := range protocols {
		tx.Add(&knftables.Map{Name: backendsPrefix + string(p), TypeOf: fmt.Sprintf(
			"%s daddr . %s dport . numgen random mod 1 : %s daddr . %s dport", f.ip, p, f.ip, p)})
	}
	for _, b := range baseChains(f) {
		c := b.chain
		tx.Add(&c)
		tx.Flush(&knftables.Chain{Name: c.Name})
		for _, r := range b.rules {
			tx.Add(&knftables.Rule{Chain: c.Name, Rule: r})
		}
	}
}

// isBase says whether a chain name is one of the base chains.
func isBase(name string) bool {
	switch name {
	case chainPrerouting, chainOutput, chainPostrouting, chainRejectPre, chainRejectOutput, chainFirewallPre, chainFirewallOut:
		return true
	}
	return false
}
