package allocator

import (
	"net/netip"
	"testing"
)

// in builds an IPv4 request of Service name in namespace ns. Every one
// selects app=web, so that Local Services are refused for their namespace
// alone, never for their selector.
func in(ns, name string, f func(*Request)) *Request {
	r := Request{Key: ns + "/" + name, Namespace: ns, Families: []Family{IPv4}, Selector: "app=web"}
	if f != nil {
		f(&r)
	}
	return &r
}

func keyed(key string, ports ...Port) func(*Request) {
	return func(r *Request) { r.SharingKey, r.Ports = key, ports }
}

// TestSharingAcrossNamespaces: a sharing key joins Services of one
// namespace; across namespaces only where the pool allows it, never with
// a Local Service; and a refusal says nothing of the other Service.
func TestSharingAcrossNamespaces(t *testing.T) {
	tcp80, tcp443, udp53 := Port{"TCP", 80}, Port{"TCP", 443}, Port{"UDP", 53}
	pools := []poolSpec{
		{name: "p", addrs: []string{"203.0.113.0/29"}},
		{name: "shared", addrs: []string{"203.0.113.8/29"}, noAuto: true, across: true},
	}
	pinned := func(f func(*Request)) func(*Request) {
		return func(r *Request) { f(r); r.Pool = "shared" }
	}
	asks := func(ip string, f func(*Request)) func(*Request) {
		return func(r *Request) { f(r); r.IPs = addrs(ip) }
	}
	local := func(f func(*Request)) func(*Request) {
		return func(r *Request) { f(r); r.Local, r.Selector = true, "app=web" }
	}
	const other = "is in use by a Service of another namespace"
	steps := []step{
		{name: "tenant a", assign: in("a", "http", keyed("k", tcp80)), wantIPs: []string{"203.0.113.0"}},
		{name: "same key in namespace b: its own address", assign: in("b", "dns", keyed("k", udp53)), wantIPs: []string{"203.0.113.1"}},
		{name: "same key in namespace a: shares", assign: in("a", "dns", keyed("k", udp53)), wantIPs: []string{"203.0.113.0"}},
		{name: "b asks for a's address with a's key", assign: in("b", "x", asks("203.0.113.0", keyed("k", Port{"UDP", 54}))),
			wantReason:  ReasonRequestedIPUnavailable,
			wantMessage: "203.0.113.0 " + other + "; sharing keys (ironlb.io/allow-shared-ip) match only Services of the same namespace unless the address's IPPool sets spec.allowSharingAcrossNamespaces"},
		{name: "b asks for it without a key", assign: in("b", "y", asks("203.0.113.0", keyed("", tcp443))),
			wantReason: ReasonRequestedIPUnavailable, wantMessage: "203.0.113.0 " + other},
		{name: "within namespace a the other Service is named", assign: in("a", "z", asks("203.0.113.0", keyed("k", tcp80))),
			wantReason: ReasonSharingConflict, wantMessage: "203.0.113.0 is in use: Service a/http uses port 80/TCP on it too"},

		{name: "pool allowing it: a", assign: in("a", "web", pinned(keyed("s", tcp80))), wantIPs: []string{"203.0.113.8"}},
		{name: "pool allowing it: b shares", assign: in("b", "web", pinned(keyed("s", tcp443))), wantIPs: []string{"203.0.113.8"}},
		{name: "pool allowing it: a Local Service of c gets its own", assign: in("c", "web", pinned(local(keyed("s", Port{"TCP", 8080})))), wantIPs: []string{"203.0.113.9"}},
		{name: "a Local Service asking for it", assign: in("c", "web2", pinned(local(asks("203.0.113.8", keyed("s", Port{"TCP", 8081}))))),
			wantReason:  ReasonRequestedIPUnavailable,
			wantMessage: "203.0.113.8 " + other + "; a Service with externalTrafficPolicy: Local shares addresses only within its namespace"},
		{name: "a colliding port is not revealed", assign: in("d", "web", pinned(asks("203.0.113.8", keyed("s", tcp80)))),
			wantReason:  ReasonRequestedIPUnavailable,
			wantMessage: "203.0.113.8 " + other + " and cannot be shared with it: sharing across namespaces needs the same sharing key (ironlb.io/allow-shared-ip), no port and protocol used by both, and externalTrafficPolicy: Cluster on both"},
		{name: "nor is the key", assign: in("d", "web2", pinned(asks("203.0.113.8", keyed("guess", Port{"TCP", 9})))),
			wantReason:  ReasonRequestedIPUnavailable,
			wantMessage: "203.0.113.8 " + other + " and cannot be shared with it: sharing across namespaces needs the same sharing key (ironlb.io/allow-shared-ip), no port and protocol used by both, and externalTrafficPolicy: Cluster on both"},
		{name: "b turning Local leaves the address to a", assign: in("b", "web", pinned(local(keyed("s", tcp443)))),
			wantIPs: []string{"203.0.113.10"}, wantLost: []Loss{{Addr: netip.MustParseAddr("203.0.113.8"), Holder: "a/web"}}},
		{name: "a keeps it, alone", assign: in("a", "web", pinned(keyed("s", tcp80))), wantIPs: []string{"203.0.113.8"}},
	}
	run(t, New(cfgOf(t, pools...)), steps)
}

// TestLegacySharing: sharing across namespaces that began before the rule
// (an upgrade, seen as addresses in the Services' status at start) or
// while the pool allowed it is kept and reported, and nobody new joins it.
func TestLegacySharing(t *testing.T) {
	tcp80, udp53 := Port{"TCP", 80}, Port{"UDP", 53}
	shown := func(ip string, f func(*Request)) func(*Request) {
		return func(r *Request) { f(r); r.Current = addrs(ip); r.KeepOnly = true }
	}
	t.Run("upgrade", func(t *testing.T) {
		steps := []step{
			{name: "claim of a", assign: in("a", "web", shown("203.0.113.3", keyed("k", tcp80))), wantIPs: []string{"203.0.113.3"}},
			{name: "claim of b: kept, reported", assign: in("b", "dns", shown("203.0.113.3", keyed("k", udp53))), wantIPs: []string{"203.0.113.3"}, wantLegacy: []string{"203.0.113.3"}},
			{name: "claim of c, Local with the same selector: kept too", assign: in("c", "ntp", shown("203.0.113.3", func(r *Request) {
				keyed("k", Port{"UDP", 123})(r)
				r.Local, r.Selector = true, "app=web"
			})), wantIPs: []string{"203.0.113.3"}, wantLegacy: []string{"203.0.113.3"}},
			{name: "a, reconciled, is told as well", assign: in("a", "web", keyed("k", tcp80)), wantIPs: []string{"203.0.113.3"}, wantLegacy: []string{"203.0.113.3"}},
			{name: "a newcomer of namespace d with the key gets its own", assign: in("d", "web", keyed("k", Port{"TCP", 8080})), wantIPs: []string{"203.0.113.0"}},
			{name: "b turning Local loses it", assign: in("b", "dns", func(r *Request) {
				keyed("k", udp53)(r)
				r.Local, r.Selector = true, "app=web"
			}), wantIPs: []string{"203.0.113.1"}, wantLost: []Loss{{Addr: netip.MustParseAddr("203.0.113.3"), Holder: "a/web"}}},
			{name: "c stays Local and keeps it", assign: in("c", "ntp", func(r *Request) {
				keyed("k", Port{"UDP", 123})(r)
				r.Local, r.Selector = true, "app=web"
			}), wantIPs: []string{"203.0.113.3"}, wantLegacy: []string{"203.0.113.3"}},
		}
		run(t, New(cfgOf(t, poolSpec{name: "p", addrs: []string{"203.0.113.0/29"}})), steps)
	})
	t.Run("pool stops allowing it", func(t *testing.T) {
		allow := []poolSpec{{name: "p", addrs: []string{"203.0.113.0/29"}, across: true}}
		deny := []poolSpec{{name: "p", addrs: []string{"203.0.113.0/29"}}}
		steps := []step{
			{assign: in("a", "web", keyed("k", tcp80)), wantIPs: []string{"203.0.113.0"}},
			{name: "allowed: b shares", assign: in("b", "dns", keyed("k", udp53)), wantIPs: []string{"203.0.113.0"}},
			{name: "no longer allowed", config: deny},
			{name: "b keeps it, reported", assign: in("b", "dns", keyed("k", udp53)), wantIPs: []string{"203.0.113.0"}, wantLegacy: []string{"203.0.113.0"}},
			{name: "c does not join", assign: in("c", "ntp", keyed("k", Port{"UDP", 123})), wantIPs: []string{"203.0.113.1"}},
			{name: "allowed again", config: allow},
			{name: "b is no longer reported", assign: in("b", "dns", keyed("k", udp53)), wantIPs: []string{"203.0.113.0"}},
		}
		run(t, New(cfgOf(t, allow...)), steps)
	})
}
