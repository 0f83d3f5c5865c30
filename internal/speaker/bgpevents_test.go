package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/planner"
	"github.com/ironlb/ironlb/internal/testenv"
)

func evPlan(prefixes map[string][]string) planner.BGPPlan {
	p := planner.BGPPlan{Prefixes: map[netip.Prefix]*planner.BGPPrefix{}}
	for pfx, svcs := range prefixes {
		p.Prefixes[netip.MustParsePrefix(pfx)] = &planner.BGPPrefix{Services: svcs, Peers: []string{"edge"}, Advertisements: []string{"adv"}}
	}
	return p
}

func evText(evs []bgpServiceEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s %s %v", e.reason, e.service, e.prefix, e.peers))
	}
	slices.Sort(out)
	return out
}

// TestBGPEventLog: a Service that a prefix starts or stops covering gets
// an event; a prefix whose peers alone change, or a Service deleted, gets
// none; past the budget events are counted and summed up on the Node at
// most once a minute.
func TestBGPEventLog(t *testing.T) {
	all := func(string) bool { return true }
	l := newBGPEventLog()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	plan := evPlan(map[string][]string{"203.0.113.96/30": {"ns/a"}, "203.0.113.100/32": {"ns/b"}})
	got := evText(l.record(t0, plan, nil, all))
	want := []string{"AnnouncedBGP ns/a 203.0.113.96/30 [edge]", "AnnouncedBGP ns/b 203.0.113.100/32 [edge]"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("first plan (-want +got):\n%s", d)
	}

	// The aggregate gains ns/c and loses ns/a; .100 changes peers only;
	// ns/d, deleted already, is not reported.
	next := evPlan(map[string][]string{"203.0.113.96/30": {"ns/c", "ns/d"}, "203.0.113.100/32": {"ns/b"}})
	next.Prefixes[netip.MustParsePrefix("203.0.113.100/32")].Peers = []string{"core", "edge"}
	known := func(k string) bool { return k != "ns/d" }
	got = evText(l.record(t0, next, map[netip.Prefix]bool{netip.MustParsePrefix("203.0.113.96/30"): true, netip.MustParsePrefix("203.0.113.100/32"): true}, known))
	want = []string{"AnnouncedBGP ns/c 203.0.113.96/30 [edge]", "WithdrawnBGP ns/a 203.0.113.96/30 [edge]"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("changed prefixes (-want +got):\n%s", d)
	}

	// A burst: 4 events spent of the budget, so 46 more go out and the
	// rest are counted.
	burst := map[string][]string{}
	for i := range 60 {
		burst[fmt.Sprintf("2001:db8:ff66::%x/128", i+1)] = []string{fmt.Sprintf("ns/s%d", i)}
	}
	if n := len(l.record(t0, evPlan(burst), nil, all)); n != bgpEventBurst-4 {
		t.Fatalf("a burst of 60 new Services (and 3 withdrawn) sent %d events, want %d", n, bgpEventBurst-4)
	}
	// Which 17 of the 63 are left out depends on map order.
	left := fmt.Sprintf("left out %d AnnouncedBGP and %d WithdrawnBGP", l.announced, l.withdrawn)
	if l.announced+l.withdrawn != 17 {
		t.Fatalf("%s, want 17 in all", left)
	}
	if note, _ := l.summary(t0, "n1"); !strings.Contains(note, left) || !strings.Contains(note, "node n1") {
		t.Fatalf("summary %q, want it to say %q", note, left)
	}
	// Within the minute, what is left out waits for the next summary.
	if n := len(l.record(t0.Add(time.Second), evPlan(nil), nil, all)); n != 1 {
		t.Fatalf("one second later, withdrawing 60 sent %d events, want 1 (one token a second)", n)
	}
	if note, next := l.summary(t0.Add(time.Second), "n1"); note != "" || !next.Equal(t0.Add(bgpSummaryEvery)) {
		t.Fatalf("summary within the minute: %q, next at %v; want none until %v", note, next, t0.Add(bgpSummaryEvery))
	}
	note, next1 := l.summary(t0.Add(bgpSummaryEvery), "n1")
	if !strings.Contains(note, "left out 0 AnnouncedBGP and 59 WithdrawnBGP") || !next1.IsZero() {
		t.Fatalf("summary after a minute: %q (next %v)", note, next1)
	}
	// The budget refills, up to the burst.
	if l.refill(t0.Add(time.Hour)); l.tokens != bgpEventBurst {
		t.Fatalf("after an hour the budget is %v, want %d", l.tokens, bgpEventBurst)
	}
}

// TestBGPServiceEvents: against a real API server, a Service gets an
// AnnouncedBGP event naming the node, the prefix and the peers when the
// node starts advertising its address, and a WithdrawnBGP event when it
// stops, here because its labels no longer match the BGPAdvertisement's
// serviceSelector; a Service the selector does not match is never
// advertised.
func TestBGPServiceEvents(t *testing.T) {
	c := testenv.Get(t).Client
	ctx := context.Background()
	createNodeWithIP(t, "bgp-ev", "198.51.100.12")
	create(t,
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp-ev"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.112/28"}}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "r-ev"}, Spec: v1alpha1.BGPPeerSpec{PeerAddress: "198.51.100.1", PeerASN: 64500, MyASN: 64512}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp-ev"}, Spec: v1alpha1.BGPAdvertisementSpec{
			IPPools: v1alpha1.ObjectNames{"bgp-ev"}, ServiceSelector: &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"tier": "web"}},
		}},
	)
	ns := namespace(t, "bgp-ev")
	web := lbService(t, ns, "web", false, "203.0.113.113")
	lbService(t, ns, "other", false, "203.0.113.114")
	for _, name := range []string{"web", "other"} {
		create(t, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.2"}, NodeName: new("elsewhere")}},
		})
	}
	relabel := func(tier string) {
		t.Helper()
		var svc = web.DeepCopy()
		if err := c.Get(ctx, client.ObjectKeyFromObject(web), svc); err != nil {
			t.Fatal(err)
		}
		svc.Labels = map[string]string{"tier": tier}
		if err := c.Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	relabel("web")
	f := cluster(t, &members{bgp: true}, nil, "bgp-ev")["bgp-ev"].bgp

	pfx := netip.MustParsePrefix("203.0.113.113/32")
	expectRoutes(t, f, "r-ev", map[netip.Prefix]bgp.Route{pfx: {}})
	expectEvent(t, ns, "web", ReasonAnnouncedBGP, "node bgp-ev advertises 203.0.113.113/32 over BGP to r-ev")

	relabel("db")
	expectRoutes(t, f, "r-ev", map[netip.Prefix]bgp.Route{})
	expectEvent(t, ns, "web", ReasonWithdrawnBGP, "node bgp-ev stopped advertising 203.0.113.113/32 over BGP to r-ev")

	var evs eventsv1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Regarding.Name == "other" && strings.HasSuffix(e.Reason, "BGP") {
			t.Errorf("Service other, which the serviceSelector does not match, got %s: %s", e.Reason, e.Note)
		}
	}
	if f.err != nil {
		t.Error(f.err)
	}
}

// BenchmarkBGPEventLog: the events of 10,000 Services created at once
// (one prefix each), then of one Service changing among them.
func BenchmarkBGPEventLog(b *testing.B) {
	prefixes := map[string][]string{}
	for i := range 10000 {
		prefixes[netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}).String()+"/128"] = []string{fmt.Sprintf("ns/s%d", i)}
	}
	plan := evPlan(prefixes)
	all := func(string) bool { return true }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Run("10000 new", func(b *testing.B) {
		for b.Loop() {
			l := newBGPEventLog()
			if n := len(l.record(t0, plan, nil, all)); n != bgpEventBurst {
				b.Fatalf("%d events sent", n)
			}
		}
	})
	b.Run("1 changed of 10000", func(b *testing.B) {
		l := newBGPEventLog()
		l.record(t0, plan, nil, all)
		pfx := netip.MustParsePrefix("2001:db8::1/128")
		other := &planner.BGPPrefix{Services: []string{"ns/x"}, Peers: []string{"edge"}}
		orig := plan.Prefixes[pfx]
		changed := map[netip.Prefix]bool{pfx: true}
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				plan.Prefixes[pfx] = other
			} else {
				plan.Prefixes[pfx] = orig
			}
			i++
			l.record(t0, plan, changed, all)
		}
	})
}
