package dataplane

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"
)

// The tests here run the generated ruleset through tracer, which follows a
// packet through the Fake's tables rule by rule, the way the kernel would
// for the statements ironlb writes. A rule the tracer does not know fails
// the test, so a new kind of rule cannot slip past it untraced. That the
// kernel agrees with the tracer is what network_test.go shows.

// fakes returns a Dataplane writing to fake tables, and the fakes.
func fakes(t testing.TB) (*Dataplane, map[knftables.Family]*knftables.Fake) {
	t.Helper()
	fs := map[knftables.Family]*knftables.Fake{
		knftables.IPv4Family: knftables.NewFake(knftables.IPv4Family, tableName),
		knftables.IPv6Family: knftables.NewFake(knftables.IPv6Family, tableName),
	}
	d, err := New(Options{NFT: map[knftables.Family]knftables.Interface{
		knftables.IPv4Family: fs[knftables.IPv4Family],
		knftables.IPv6Family: fs[knftables.IPv6Family],
	}})
	if err != nil {
		t.Fatal(err)
	}
	return d, fs
}

// packet is a new connection's first packet.
type packet struct {
	src, dst netip.Addr
	proto    Protocol
	port     uint16
}

// verdict is what happened to a packet.
type verdict struct {
	// dnat is where it went; invalid when it was not DNATed.
	dnat netip.AddrPort
	// masquerade: its source was rewritten to the node's.
	masquerade bool
	// reject: it was refused; pass: ironlb let it through untouched;
	// drop: the firewall dropped it, silently.
	reject, pass, drop bool
}

func (v verdict) String() string {
	switch {
	case v.drop:
		return "drop"
	case v.reject:
		return "reject"
	case v.pass:
		return "pass"
	case v.masquerade:
		return "dnat " + v.dnat.String() + " masquerade"
	}
	return "dnat " + v.dnat.String()
}

// tracer follows packets through a Fake's table. pick stands in for
// numgen random: it is given the modulus and returns the number drawn.
// clients holds what the dynamic (affinity) sets would hold.
type tracer struct {
	t       testing.TB
	table   *knftables.FakeTable
	pick    func(n int) int
	clients map[string][]netip.Addr
}

func newTracer(t testing.TB, fake *knftables.Fake, pick func(int) int) *tracer {
	t.Helper()
	if fake.Table == nil {
		t.Fatal("the table does not exist")
	}
	return &tracer{t: t, table: fake.Table, pick: pick, clients: map[string][]netip.Addr{}}
}

var (
	reDispatch  = regexp.MustCompile(`^(ip6?) daddr \. meta l4proto \. th dport vmap @services$`)
	reGroup     = regexp.MustCompile(`^meta l4proto (\w+) dnat (ip6?) to (ip6?) daddr \. (\w+) dport \. numgen random mod (\d+) map @(\S+)$`)
	reSticky    = regexp.MustCompile(`^(ip6?) saddr @(\S+) goto (\S+)$`)
	rePick      = regexp.MustCompile(`^numgen random mod (\d+) vmap \{ (.*) \}$`)
	reUpdate    = regexp.MustCompile(`^update @(\S+) \{ (ip6?) saddr \}$`)
	reDNAT      = regexp.MustCompile(`^meta l4proto (\w+) dnat (ip6?) to (\S+)$`)
	reMasq      = regexp.MustCompile(`^ct status dnat ct original (ip6?) daddr @addresses (ip6?) daddr \. meta l4proto \. th dport @masquerading masquerade$`)
	reHairpin   = regexp.MustCompile(`^ct status dnat ct original (ip6?) daddr @addresses (ip6?) saddr \. (ip6?) daddr @hairpin masquerade$`)
	reRejectTCP = regexp.MustCompile(`^(ip6?) daddr @addresses meta l4proto tcp reject with tcp reset$`)
	reReject    = regexp.MustCompile(`^(ip6?) daddr @addresses reject$`)
	reFirewall  = regexp.MustCompile(`^ct state new (ip6?) daddr \. meta l4proto \. th dport @restricted (ip6?) daddr \. meta l4proto \. th dport \. (ip6?) saddr != @allowed drop$`)
)

func (tr *tracer) inSet(name string, key ...string) bool {
	s := tr.table.Sets[name]
	if s == nil {
		tr.t.Fatalf("no set %s", name)
	}
	return s.FindElement(key...) != nil
}

func (tr *tracer) mapValue(name string, key ...string) []string {
	m := tr.table.Maps[name]
	if m == nil {
		tr.t.Fatalf("no map %s", name)
	}
	if e := m.FindElement(key...); e != nil {
		return e.Value
	}
	return nil
}

func (tr *tracer) chain(name string) []*knftables.Rule {
	c := tr.table.Chains[name]
	if c == nil {
		tr.t.Fatalf("no chain %s", name)
	}
	return c.Rules
}

// trace follows p through the prerouting (or, for a packet the node
// sends itself, output) hooks and postrouting.
func (tr *tracer) trace(p packet, hook string) verdict {
	tr.t.Helper()
	var v verdict
	port := strconv.Itoa(int(p.port))
	// filter, before DNAT: the source ranges. The packet is a new
	// connection's first.
	for _, r := range tr.chain(chainFirewall[hook]) {
		if !reFirewall.MatchString(r.Rule) {
			tr.t.Fatalf("chain %s: rule %q unknown to the tracer", chainFirewall[hook], r.Rule)
		}
		if tr.inSet(setRestricted, p.dst.String(), string(p.proto), port) && !tr.allowed(p, port) {
			return verdict{drop: true}
		}
	}
	// nat: the dispatch rule.
	for _, r := range tr.chain(hook) {
		if !reDispatch.MatchString(r.Rule) {
			tr.t.Fatalf("chain %s: rule %q unknown to the tracer", hook, r.Rule)
		}
		val := tr.mapValue(mapServices, p.dst.String(), string(p.proto), port)
		if val != nil {
			to, ok := strings.CutPrefix(val[0], "goto ")
			if !ok {
				tr.t.Fatalf("services element %v: verdict %q", p, val)
			}
			v.dnat = tr.run(to, p, 0)
		}
	}
	// filter: the reject chain runs after DNAT, on the rewritten
	// destination.
	dst := p.dst
	if v.dnat.IsValid() {
		dst = v.dnat.Addr()
	}
	reject := chainReject[hook]
	for _, r := range tr.chain(reject) {
		switch {
		case reRejectTCP.MatchString(r.Rule):
			if p.proto == TCP && tr.inSet(setAddresses, dst.String()) {
				return verdict{reject: true}
			}
		case reReject.MatchString(r.Rule):
			if tr.inSet(setAddresses, dst.String()) {
				return verdict{reject: true}
			}
		default:
			tr.t.Fatalf("chain %s: rule %q unknown to the tracer", reject, r.Rule)
		}
	}
	if !v.dnat.IsValid() {
		return verdict{pass: true}
	}
	for _, r := range tr.chain(chainPostrouting) {
		ours := tr.inSet(setAddresses, p.dst.String())
		switch {
		case reMasq.MatchString(r.Rule):
			if ours && tr.inSet(setMasquerade, v.dnat.Addr().String(), string(p.proto), strconv.Itoa(int(v.dnat.Port()))) {
				v.masquerade = true
			}
		case reHairpin.MatchString(r.Rule):
			if ours && tr.inSet(setHairpin, p.src.String(), v.dnat.Addr().String()) {
				v.masquerade = true
			}
		default:
			tr.t.Fatalf("chain postrouting: rule %q unknown to the tracer", r.Rule)
		}
	}
	return v
}

var (
	chainReject   = map[string]string{chainPrerouting: chainRejectPre, chainOutput: chainRejectOutput}
	chainFirewall = map[string]string{chainPrerouting: chainFirewallPre, chainOutput: chainFirewallOut}
)

// allowed looks p up in the interval set of allowed clients, as the
// kernel does: the frontend's address, protocol and port exactly, the
// source inside the element's prefix.
func (tr *tracer) allowed(p packet, port string) bool {
	s := tr.table.Sets[setAllowed]
	if s == nil {
		tr.t.Fatalf("no set %s", setAllowed)
	}
	// The kernel refuses intervals that overlap: so does the tracer.
	var mine []netip.Prefix
	for _, e := range s.Elements {
		if len(e.Key) != 4 {
			tr.t.Fatalf("set %s: element %v is not address . protocol . port . prefix", setAllowed, e.Key)
		}
		pfx, err := netip.ParsePrefix(e.Key[3])
		if err != nil || pfx != pfx.Masked() {
			tr.t.Fatalf("set %s: element %v: %q is not a prefix without host bits (%v)", setAllowed, e.Key, e.Key[3], err)
		}
		if e.Key[0] == p.dst.String() && e.Key[1] == string(p.proto) && e.Key[2] == port {
			if slices.ContainsFunc(mine, pfx.Overlaps) {
				tr.t.Fatalf("set %s: %v overlaps another interval of its frontend %v", setAllowed, e.Key, mine)
			}
			mine = append(mine, pfx)
		}
	}
	return slices.ContainsFunc(mine, func(pfx netip.Prefix) bool { return pfx.Contains(p.src) })
}

// run evaluates a regular chain reached by goto and returns where the
// packet was DNATed to, if anywhere.
func (tr *tracer) run(name string, p packet, depth int) netip.AddrPort {
	if depth > 4 {
		tr.t.Fatalf("chain %s: jumps too deep", name)
	}
	for _, r := range tr.chain(name) {
		if m := reGroup.FindStringSubmatch(r.Rule); m != nil {
			if Protocol(m[1]) != p.proto {
				continue
			}
			if m[4] != m[1] || m[6] != backendsPrefix+m[1] {
				tr.t.Fatalf("chain %s: rule %q mixes protocols", name, r.Rule)
			}
			n, _ := strconv.Atoi(m[5])
			val := tr.mapValue(m[6], p.dst.String(), strconv.Itoa(int(p.port)), strconv.Itoa(tr.draw(n)))
			if val == nil {
				continue // no element: the rule does not match
			}
			return tr.addrPort(val[0], val[1])
		}
		if m := reSticky.FindStringSubmatch(r.Rule); m != nil {
			if slices.Contains(tr.clients[m[2]], p.src) {
				return tr.run(m[3], p, depth+1)
			}
			continue
		}
		if m := rePick.FindStringSubmatch(r.Rule); m != nil {
			n, _ := strconv.Atoi(m[1])
			want := strconv.Itoa(tr.draw(n)) + " : goto "
			for _, e := range strings.Split(m[2], " , ") {
				if to, ok := strings.CutPrefix(e, want); ok {
					return tr.run(to, p, depth+1)
				}
			}
			tr.t.Fatalf("chain %s: %q has no entry %q", name, r.Rule, want)
		}
		if m := reUpdate.FindStringSubmatch(r.Rule); m != nil {
			if tr.table.Sets[m[1]] == nil {
				tr.t.Fatalf("chain %s updates set %s, which does not exist", name, m[1])
			}
			if !slices.Contains(tr.clients[m[1]], p.src) {
				tr.clients[m[1]] = append(tr.clients[m[1]], p.src)
			}
			continue
		}
		if m := reDNAT.FindStringSubmatch(r.Rule); m != nil {
			if Protocol(m[1]) != p.proto {
				continue
			}
			ap, err := netip.ParseAddrPort(m[3])
			if err != nil {
				tr.t.Fatalf("chain %s: rule %q: %v", name, r.Rule, err)
			}
			return ap
		}
		tr.t.Fatalf("chain %s: rule %q unknown to the tracer", name, r.Rule)
	}
	return netip.AddrPort{}
}

func (tr *tracer) draw(n int) int {
	i := tr.pick(n)
	if i < 0 || i >= n {
		tr.t.Fatalf("pick(%d) = %d", n, i)
	}
	return i
}

func (tr *tracer) addrPort(addr, port string) netip.AddrPort {
	a, err := netip.ParseAddr(addr)
	p, err2 := strconv.ParseUint(port, 10, 16)
	if err != nil || err2 != nil {
		tr.t.Fatalf("backend %q . %q: %v %v", addr, port, err, err2)
	}
	return netip.AddrPortFrom(a, uint16(p))
}

var (
	lb4     = netip.MustParseAddr("203.0.113.100")
	lb6     = netip.MustParseAddr("2001:db8:100::100")
	client4 = netip.MustParseAddr("198.51.100.200")
	other4  = netip.MustParseAddr("198.51.100.201")
	client6 = netip.MustParseAddr("2001:db8:5100::200")
	local4  = netip.MustParseAddrPort("203.0.113.10:8080")
	remote4 = netip.MustParseAddrPort("203.0.113.20:8080")
	local6  = netip.MustParseAddrPort("[2001:db8:10::10]:8080")
	remote6 = netip.MustParseAddrPort("[2001:db8:20::20]:8080")
)

func backend(ap netip.AddrPort, masquerade bool) Backend { return Backend{ap, masquerade} }

// TestTrace follows packets through rulesets for the cases the speaker
// produces: Cluster (a local and a remote endpoint), Local, affinity,
// both families, rejected ports and frontends without backends.
func TestTrace(t *testing.T) {
	fes := []Frontend{
		// Cluster: the local endpoint keeps the client's address, the
		// remote one is masqueraded.
		{Addr: lb4, Protocol: TCP, Port: 80, Backends: []Backend{backend(local4, false), backend(remote4, true)}},
		// Local: only this node's endpoint.
		{Addr: lb4, Protocol: UDP, Port: 53, Backends: []Backend{backend(netip.MustParseAddrPort("203.0.113.10:5353"), false)}},
		// No ready endpoint: refused.
		{Addr: lb4, Protocol: TCP, Port: 443},
		// Affinity, three backends.
		{Addr: lb4, Protocol: TCP, Port: 8443, Affinity: time.Hour, Backends: []Backend{
			backend(local4, false), backend(remote4, true), backend(netip.MustParseAddrPort("203.0.113.30:8080"), true)}},
		{Addr: lb6, Protocol: TCP, Port: 80, Backends: []Backend{backend(local6, false), backend(remote6, true)}},
		{Addr: lb6, Protocol: SCTP, Port: 9, Affinity: time.Minute, Backends: []Backend{backend(remote6, true)}},
	}
	d, fs := fakes(t)
	if err := d.Sync(context.Background(), fes); err != nil {
		t.Fatal(err)
	}
	first := func(int) int { return 0 }
	last := func(n int) int { return n - 1 }
	for _, tc := range []struct {
		name string
		p    packet
		hook string
		pick func(int) int
		want string
	}{
		{"cluster, local endpoint", packet{client4, lb4, TCP, 80}, chainPrerouting, first, "dnat 203.0.113.10:8080"},
		{"cluster, remote endpoint", packet{client4, lb4, TCP, 80}, chainPrerouting, last, "dnat 203.0.113.20:8080 masquerade"},
		{"from the node itself", packet{client4, lb4, TCP, 80}, chainOutput, last, "dnat 203.0.113.20:8080 masquerade"},
		{"local", packet{client4, lb4, UDP, 53}, chainPrerouting, first, "dnat 203.0.113.10:5353"},
		// A pod reaching its own Service and sent to itself: its reply
		// must come back through the node, so the node's address it is.
		{"hairpin", packet{local4.Addr(), lb4, TCP, 80}, chainPrerouting, first, "dnat 203.0.113.10:8080 masquerade"},
		{"hairpin to another port", packet{local4.Addr(), lb4, UDP, 53}, chainPrerouting, first, "dnat 203.0.113.10:5353 masquerade"},
		{"another pod sent to a local one", packet{netip.MustParseAddr("203.0.113.11"), lb4, TCP, 80}, chainPrerouting, first, "dnat 203.0.113.10:8080"},
		{"IPv6 hairpin", packet{local6.Addr(), lb6, TCP, 80}, chainPrerouting, first, "dnat [2001:db8:10::10]:8080 masquerade"},
		{"port of another protocol", packet{client4, lb4, TCP, 53}, chainPrerouting, first, "reject"},
		{"unexposed port", packet{client4, lb4, TCP, 22}, chainPrerouting, first, "reject"},
		{"unexposed UDP port", packet{client4, lb4, UDP, 80}, chainPrerouting, first, "reject"},
		{"no backends", packet{client4, lb4, TCP, 443}, chainPrerouting, first, "reject"},
		{"no backends, from the node", packet{client4, lb4, TCP, 443}, chainOutput, first, "reject"},
		{"not an ironlb address", packet{client4, netip.MustParseAddr("203.0.113.99"), TCP, 80}, chainPrerouting, first, "pass"},
		{"a backend's own address", packet{client4, local4.Addr(), TCP, 8080}, chainPrerouting, first, "pass"},
		{"IPv6 local", packet{client6, lb6, TCP, 80}, chainPrerouting, first, "dnat [2001:db8:10::10]:8080"},
		{"IPv6 remote", packet{client6, lb6, TCP, 80}, chainPrerouting, last, "dnat [2001:db8:20::20]:8080 masquerade"},
		{"IPv6 SCTP with affinity", packet{client6, lb6, SCTP, 9}, chainPrerouting, first, "dnat [2001:db8:20::20]:8080 masquerade"},
		{"IPv6 unexposed", packet{client6, lb6, UDP, 80}, chainPrerouting, first, "reject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fam := fs[knftables.IPv4Family]
			if tc.p.dst.Is6() {
				fam = fs[knftables.IPv6Family]
			}
			got := newTracer(t, fam, tc.pick).trace(tc.p, tc.hook)
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}

	t.Run("every backend has an equal share", func(t *testing.T) {
		var got []string
		for i := range 3 {
			// A new tracer each time: port 8443 has affinity, and a
			// client seen before would not draw at all.
			tr := newTracer(t, fs[knftables.IPv4Family], nil)
			tr.pick = func(n int) int {
				if n != 3 {
					t.Fatalf("modulus %d for 3 backends", n)
				}
				return i
			}
			got = append(got, tr.trace(packet{client4, lb4, TCP, 8443}, chainPrerouting).String())
		}
		slices.Sort(got)
		want := []string{"dnat 203.0.113.10:8080", "dnat 203.0.113.20:8080 masquerade", "dnat 203.0.113.30:8080 masquerade"}
		if !slices.Equal(got, want) {
			t.Errorf("one draw of each number went to %v, want %v", got, want)
		}
	})

	t.Run("affinity", func(t *testing.T) {
		tr := newTracer(t, fs[knftables.IPv4Family], func(int) int { return 1 })
		p := packet{client4, lb4, TCP, 8443}
		first := tr.trace(p, chainPrerouting)
		if first.String() != "dnat 203.0.113.20:8080 masquerade" {
			t.Fatalf("first connection: %s", first)
		}
		// Later draws would pick others; the client stays.
		for i := range 3 {
			tr.pick = func(int) int { return i }
			if got := tr.trace(p, chainPrerouting); got != first {
				t.Errorf("connection with draw %d: %s, want %s", i, got, first)
			}
		}
		// Another client is not bound by it.
		tr.pick = func(int) int { return 2 }
		if got := tr.trace(packet{other4, lb4, TCP, 8443}, chainPrerouting); got.dnat != netip.MustParseAddrPort("203.0.113.30:8080") {
			t.Errorf("another client: %s", got)
		}
		// Port 80 has no affinity: the same client goes where the draw
		// says.
		p80 := packet{client4, lb4, TCP, 80}
		if tr.traceWith(p80, func(int) int { return 0 }) == tr.traceWith(p80, func(int) int { return 1 }) {
			t.Error("port 80 has no affinity, yet two draws gave one backend")
		}
	})

	t.Run("a removed backend keeps no clients", func(t *testing.T) {
		tr := newTracer(t, fs[knftables.IPv4Family], func(int) int { return 1 })
		p := packet{client4, lb4, TCP, 8443}
		if got := tr.trace(p, chainPrerouting); got.dnat != remote4 {
			t.Fatalf("first connection: %s", got)
		}
		changed := slices.Clone(fes)
		changed[3].Backends = []Backend{backend(local4, false), backend(netip.MustParseAddrPort("203.0.113.30:8080"), true)}
		if err := d.Sync(context.Background(), changed); err != nil {
			t.Fatal(err)
		}
		tr.table = fs[knftables.IPv4Family].Table
		for name := range tr.clients {
			if tr.table.Sets[name] == nil {
				delete(tr.clients, name) // the kernel drops the set with its contents
			}
		}
		tr.pick = func(int) int { return 0 }
		if got := tr.trace(p, chainPrerouting); got.dnat != local4 {
			t.Errorf("after its backend went: %s, want a new draw (%s)", got, local4)
		}
	})
}

// traceWith traces p with another draw, keeping the tracer's own.
func (tr *tracer) traceWith(p packet, pick func(int) int) verdict {
	old := tr.pick
	defer func() { tr.pick = old }()
	tr.pick = pick
	return tr.trace(p, chainPrerouting)
}

// TestTraceNodePort is the nodeport mode's shape: one backend, this node's
// own address at the NodePort, not masqueraded.
func TestTraceNodePort(t *testing.T) {
	node := netip.MustParseAddr("198.51.100.2")
	d, fs := fakes(t)
	if err := d.Sync(context.Background(), []Frontend{
		{Addr: lb4, Protocol: TCP, Port: 80, Backends: []Backend{backend(netip.AddrPortFrom(node, 30080), false)}},
	}); err != nil {
		t.Fatal(err)
	}
	got := newTracer(t, fs[knftables.IPv4Family], func(int) int { return 0 }).trace(packet{client4, lb4, TCP, 80}, chainPrerouting)
	if got.String() != "dnat 198.51.100.2:30080" {
		t.Errorf("got %s", got)
	}
}
