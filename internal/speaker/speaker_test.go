package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/cmdutil"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/planner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

func TestMain(m *testing.M) {
	cmdutil.BridgeLoggers(slog.New(slog.DiscardHandler))
	testenv.Main(m)
}

// fakeAnnouncer stands in for the ARP/NDP responders, which have network
// tests of their own. It checks what it is given: interfaces named once,
// no address of another family's syntax.
type fakeAnnouncer struct {
	mu      sync.Mutex
	desired map[netip.Addr][]string
	err     error
	// seq orders the gains and losses of every fake of a test; gained
	// and lost hold each address's last.
	seq          *atomic.Int64
	gained, lost map[netip.Addr]int64
}

func (f *fakeAnnouncer) Set(d map[netip.Addr][]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, ifs := range d {
		if !a.IsValid() || a.Is4In6() {
			f.err = fmt.Errorf("invalid address %v", a)
		}
		if len(slices.Compact(slices.Clone(ifs))) != len(ifs) {
			f.err = fmt.Errorf("%v: interfaces repeated: %v", a, ifs)
		}
	}
	if f.seq != nil {
		for a := range d {
			if _, had := f.desired[a]; !had {
				f.gained[a] = f.seq.Add(1)
			}
		}
		for a := range f.desired {
			if _, keep := d[a]; !keep {
				f.lost[a] = f.seq.Add(1)
			}
		}
	}
	f.desired = maps.Clone(d)
	return f.err
}

func (f *fakeAnnouncer) Announced() map[netip.Addr][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[netip.Addr][]string{}
	for a, ifs := range f.desired {
		if ifs == nil {
			ifs = []string{"eth0"}
		}
		out[a] = ifs
	}
	return out
}

func (f *fakeAnnouncer) has(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.desired[a]
	return ok
}

// members is the alive set every test speaker shares, as memberlist would
// give it; changing it triggers every speaker.
type members struct {
	mu       sync.Mutex
	alive    []string
	speakers []*Speaker
	// handoff is given to every speaker.
	handoff time.Duration
	// claim is the newest claim version of each node's speaker (latest
	// when absent), switchDelay every speaker's ClaimSwitchDelay.
	claim       map[string]election.ClaimVersion
	switchDelay time.Duration
	now         func() time.Time
	// bgp gives every speaker a fakeBGP, fwd a fakeForwarder.
	bgp, fwd bool
	seq      atomic.Int64
	// views, when a node has one, is what that node's speaker sees
	// alive instead of alive: a partition.
	views map[string][]string
	// reach, when a node has one, is what that node's pings reach.
	reach map[string][]string
	// known, when set, fences every speaker with it (Options.Known).
	known func() []string
	// secrets, when set, wraps the reader of password Secrets.
	secrets func(client.Reader) client.Reader
}

func (m *members) Members() []membership.Member { return m.of("") }

// of returns what node's speaker sees alive.
func (m *members) of(node string) []membership.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	alive := m.alive
	if v, ok := m.views[node]; ok {
		alive = v
	}
	var out []membership.Member
	for _, n := range alive {
		out = append(out, membership.Member{Name: n, Meta: ClaimMeta(m.claim[n])})
	}
	return out
}

// view is one node's speaker's Members.
type view struct {
	m    *members
	node string
}

func (v view) Members() []membership.Member { return v.m.of(v.node) }

// Reachable answers as memberlist's pings would: the members that node
// can reach, when the test says (reach), else every member it sees.
func (v view) Reachable(int) []string {
	v.m.mu.Lock()
	r, ok := v.m.reach[v.node]
	v.m.mu.Unlock()
	if ok {
		return r
	}
	var out []string
	for _, m := range v.Members() {
		out = append(out, m.Name)
	}
	return out
}

// partition gives each node the view of the group it is in, and
// triggers every speaker; partition() heals.
func (m *members) partition(groups ...[]string) {
	m.mu.Lock()
	m.views = map[string][]string{}
	for _, g := range groups {
		for _, n := range g {
			m.views[n] = g
		}
	}
	sp := slices.Clone(m.speakers)
	m.mu.Unlock()
	for _, s := range sp {
		s.Trigger()
	}
}

func (m *members) set(alive ...string) {
	m.mu.Lock()
	m.alive = alive
	sp := slices.Clone(m.speakers)
	m.mu.Unlock()
	for _, s := range sp {
		s.Trigger()
	}
}

type testSpeaker struct {
	sp   *Speaker
	node string
	ann  *fakeAnnouncer
	bgp  *fakeBGP       // nil unless members.bgp
	fwd  *fakeForwarder // nil unless members.fwd
	logs *testutil.SyncBuffer
}

// cluster starts a speaker for each node against the test API server.
func cluster(t *testing.T, m *members, static *config.Config, nodes ...string) map[string]*testSpeaker {
	t.Helper()
	env := testenv.Get(t)
	out := map[string]*testSpeaker{}
	for _, n := range nodes {
		mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
			Scheme:                 env.Client.Scheme(),
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			// The binary's cache options, so that these tests fail if a
			// transform drops what the speaker reads.
			Cache: cacheOptions(RunOptions{}),
		})
		if err != nil {
			t.Fatal(err)
		}
		ts := &testSpeaker{node: n, ann: &fakeAnnouncer{seq: &m.seq, gained: map[netip.Addr]int64{}, lost: map[netip.Addr]int64{}}, logs: &testutil.SyncBuffer{}}
		o := Options{
			Node:      n,
			Class:     config.Class{Name: "ironlb.io/lb"},
			Static:    static,
			Log:       slog.New(slog.NewTextHandler(ts.logs, nil)),
			Events:    mgr.GetEventRecorder("ironlb-speaker"),
			Announcer: ts.ann,
			Members:   view{m, n},
			Handoff:   m.handoff,
			Known:     m.known,

			ClaimVersion:     m.claim[n],
			ClaimSwitchDelay: m.switchDelay,
			Now:              m.now,
			Secrets:          mgr.GetAPIReader(),
		}
		if m.secrets != nil {
			o.Secrets = m.secrets(o.Secrets)
		}
		if m.bgp {
			ts.bgp = &fakeBGP{}
			o.BGP = ts.bgp
		}
		if m.fwd {
			ts.fwd = &fakeForwarder{}
			o.Forwarding, o.ForwardingMode = ts.fwd, planner.ForwardEndpoints
		}
		sp := New(o)
		ts.sp = sp
		if ts.bgp != nil {
			ts.bgp.changed = sp.Trigger
		}
		if err := sp.SetupWithManager(mgr); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		m.speakers = append(m.speakers, sp)
		m.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("speaker %s: %v", n, err)
			}
			if ts.ann.err != nil {
				t.Errorf("speaker %s gave its announcer %v", n, ts.ann.err)
			}
			if t.Failed() {
				t.Logf("speaker %s log:\n%s", n, ts.logs.String())
			}
		})
		out[n] = ts
	}
	return out
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	c := testenv.Get(t).Client
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
}

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// lbService creates a LoadBalancer Service and writes addr into its
// status, as the controller would.
func lbService(t *testing.T, ns, name string, local bool, addrs ...string) *corev1.Service {
	t.Helper()
	c := testenv.Get(t).Client
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Ports:                         []corev1.ServicePort{{Port: 80}},
			AllocateLoadBalancerNodePorts: new(false),
		},
	}
	if local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	create(t, svc)
	for _, a := range addrs {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a, IPMode: new(corev1.LoadBalancerIPModeVIP)})
	}
	if err := c.Status().Update(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

// ranked returns the nodes in the order they claim addr.
func ranked(addr netip.Addr, nodes ...string) []string {
	s := slices.Clone(nodes)
	slices.SortFunc(s, func(a, b string) int {
		ca, cb := election.LatestClaim.Claim(a, addr), election.LatestClaim.Claim(b, addr)
		switch {
		case ca > cb:
			return -1
		case ca < cb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return s
}

// owners lists the speakers announcing addr.
func owners(sps map[string]*testSpeaker, addr netip.Addr) []string {
	var out []string
	for n, s := range sps {
		if s.ann.has(addr) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func expectOwner(t *testing.T, sps map[string]*testSpeaker, addr netip.Addr, want ...string) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%s announced by %v", addr, want), func() (bool, string) {
		got := owners(sps, addr)
		return slices.Equal(got, want), fmt.Sprintf("announced by %v", got)
	})
}

func l2Config(t *testing.T, prefix string, pool string, adv v1alpha1.L2AdvertisementSpec) {
	t.Helper()
	adv.IPPools = v1alpha1.ObjectNames{prefix}
	create(t,
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: prefix}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(pool)}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: prefix}, Spec: adv},
	)
}

// TestFailoverAndStatus: of three speakers exactly one announces the
// address, the one ranked first; when it dies the next takes over; each
// speaker's NodeAnnouncement says what it announces; the Service's events
// tell the story.
func TestFailoverAndStatus(t *testing.T) {
	nodes := []string{"fo-a", "fo-b", "fo-c"}
	for _, n := range nodes {
		create(t, node(n, nil))
	}
	l2Config(t, "fo", "203.0.113.64/30", v1alpha1.L2AdvertisementSpec{Interfaces: []v1alpha1.InterfaceName{"eth1"}})
	ns := namespace(t, "fo")
	addr := netip.MustParseAddr("203.0.113.65")
	svc := lbService(t, ns, "web", false, addr.String())
	m := &members{}
	sps := cluster(t, m, nil, nodes...)

	expectOwner(t, sps, addr) // nobody has joined: nobody announces
	m.set(nodes...)
	order := ranked(addr, nodes...)
	expectOwner(t, sps, addr, order[0])
	if got := sps[order[0]].ann.Announced()[addr]; !slices.Equal(got, []string{"eth1"}) {
		t.Errorf("answering on %v, want the advertisement's [eth1]", got)
	}
	c := testenv.Get(t).Client
	testutil.Eventually(t, "the owner's NodeAnnouncement", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(context.Background(), client.ObjectKey{Name: order[0]}, &na); err != nil {
			return false, err.Error()
		}
		st := na.Status
		ok := len(st.Layer2) == 1 && st.Layer2[0].Address == addr.String() && slices.Equal(st.Layer2[0].Services, []string{ns + "/web"}) &&
			slices.Equal(st.Layer2[0].Interfaces, []string{"eth1"}) && st.Members == 3 && len(na.OwnerReferences) == 1 && na.OwnerReferences[0].Name == order[0]
		return ok, fmt.Sprintf("%+v owners %v", st, na.OwnerReferences)
	})

	// The owner dies: the next in rank takes over; the dead one's report
	// is its own business (it is gone), the new owner's shows the address.
	m.set(order[1], order[2])
	expectOwner(t, sps, addr, order[1])
	testutil.Eventually(t, "the new owner's NodeAnnouncement", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(context.Background(), client.ObjectKey{Name: order[1]}, &na); err != nil {
			return false, err.Error()
		}
		return len(na.Status.Layer2) == 1 && na.Status.Members == 2, fmt.Sprintf("%+v", na.Status)
	})
	testutil.Eventually(t, "events on the Service", func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var notes []string
		for _, e := range evs.Items {
			if e.Regarding.Name == svc.Name && e.Reason == ReasonAnnounced {
				notes = append(notes, e.Note)
			}
		}
		slices.Sort(notes)
		want := []string{
			fmt.Sprintf("announcing %s from node %s (layer 2, interfaces eth1)", addr, order[0]),
			fmt.Sprintf("announcing %s from node %s (layer 2, interfaces eth1)", addr, order[1]),
		}
		slices.Sort(want)
		return slices.Equal(notes, want), fmt.Sprintf("%q", notes)
	})

	// It comes back: it ranks first again and takes the address back; the
	// one that held it meanwhile withdraws, saying why.
	m.set(nodes...)
	expectOwner(t, sps, addr, order[0])
	testutil.Eventually(t, "the withdrawal event", func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Reason == ReasonWithdrawn && strings.Contains(e.Note, "node "+order[0]+" ranks first") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none a withdrawal naming %s", len(evs.Items), order[0])
	})

	// The Service goes: nobody announces.
	if err := c.Delete(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	expectOwner(t, sps, addr)
}

// TestEligibility walks an address through what makes a node eligible:
// the exclusion label, NetworkUnavailable, the advertisement's node
// selector, and for externalTrafficPolicy Local the ready endpoints.
func TestEligibility(t *testing.T) {
	nodes := []string{"el-a", "el-b", "el-c"}
	for _, n := range nodes {
		create(t, node(n, map[string]string{"l2": "yes"}))
	}
	l2Config(t, "el", "2001:db8:ff64::/124", v1alpha1.L2AdvertisementSpec{
		NodeSelector: &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"l2": "yes"}},
	})
	ns := namespace(t, "el")
	addr := netip.MustParseAddr("2001:db8:ff64::3")
	lbService(t, ns, "local", true, addr.String())
	m := &members{}
	sps := cluster(t, m, nil, nodes...)
	m.set(nodes...)
	c := testenv.Get(t).Client
	ctx := context.Background()
	order := ranked(addr, nodes...)

	expectOwner(t, sps, addr) // Local without ready endpoints: nobody

	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"2001:db8:1::1"}, NodeName: new(order[0]), Conditions: discoveryv1.EndpointConditions{Ready: new(false)}},
			{Addresses: []string{"2001:db8:1::2"}, NodeName: new(order[1])},
			{Addresses: []string{"2001:db8:1::3"}, NodeName: new(order[2]), Conditions: discoveryv1.EndpointConditions{Ready: new(true)}},
		},
	}
	create(t, slice)
	// order[0]'s endpoint is not ready; readiness unknown counts as ready.
	expectOwner(t, sps, addr, order[1])

	patchNode := func(name string, mutate func(*corev1.Node)) {
		t.Helper()
		var n corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
			t.Fatal(err)
		}
		mutate(&n)
		if err := c.Update(ctx, &n); err != nil {
			t.Fatal(err)
		}
	}
	patchNode(order[1], func(n *corev1.Node) { n.Labels["node.kubernetes.io/exclude-from-external-load-balancers"] = "" })
	expectOwner(t, sps, addr, order[2])

	var n corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: order[2]}, &n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue, Reason: "Test"}}
	if err := c.Status().Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
	expectOwner(t, sps, addr)

	// The last local endpoint elsewhere becomes ready: it moves there.
	slice.Endpoints[0].Conditions.Ready = new(true)
	if err := c.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	expectOwner(t, sps, addr, order[0])

	// The node selector stops selecting it: nobody is left.
	patchNode(order[0], func(n *corev1.Node) { n.Labels["l2"] = "no" })
	expectOwner(t, sps, addr)
}

// TestConfigFile: with --config-file the speakers announce from the
// file's configuration without any ironlb object in the cluster.
func TestConfigFile(t *testing.T) {
	nodes := []string{"cf-a", "cf-b"}
	for _, n := range nodes {
		create(t, node(n, nil))
	}
	cfg, problems := config.Resolve(config.Snapshot{
		IPPools:          []v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "file"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.88/29"}, AutoAssign: new(true)}}},
		L2Advertisements: []v1alpha1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "file"}}},
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	ns := namespace(t, "cf")
	addr := netip.MustParseAddr("203.0.113.89")
	lbService(t, ns, "web", false, addr.String())
	m := &members{}
	sps := cluster(t, m, cfg, nodes...)
	m.set(nodes...)
	expectOwner(t, sps, addr, ranked(addr, nodes...)[0])
	if got := sps[ranked(addr, nodes...)[0]].ann.desired[addr]; got != nil {
		t.Errorf("an advertisement without interfaces must mean every interface (nil), got %v", got)
	}
}

// TestSelectsNoNode: an L2Advertisement whose selector matches no node is
// reported once, as an event on it, and the other advertisements work.
func TestSelectsNoNode(t *testing.T) {
	nodes := []string{"sn-a", "sn-b"}
	for _, n := range nodes {
		create(t, node(n, nil))
	}
	l2Config(t, "sn", "203.0.113.72/30", v1alpha1.L2AdvertisementSpec{})
	create(t, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "sn-nobody"}, Spec: v1alpha1.L2AdvertisementSpec{
		IPPools:      v1alpha1.ObjectNames{"sn"},
		NodeSelector: &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"rack": "nowhere"}},
	}})
	ns := namespace(t, "sn")
	addr := netip.MustParseAddr("203.0.113.73")
	lbService(t, ns, "web", false, addr.String())
	m := &members{}
	sps := cluster(t, m, nil, nodes...)
	m.set(nodes...)
	expectOwner(t, sps, addr, ranked(addr, nodes...)[0])
	c := testenv.Get(t).Client
	testutil.Eventually(t, "a warning event on the advertisement", func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(context.Background(), &evs); err != nil {
			return false, err.Error()
		}
		var found []string
		for _, e := range evs.Items {
			if e.Regarding.Kind == "L2Advertisement" && e.Regarding.Name == "sn-nobody" {
				found = append(found, e.Reason+": "+e.Note)
			}
		}
		return len(found) == 1 && strings.Contains(found[0], "SelectsNoNode: spec.nodeSelector selects none"), fmt.Sprintf("%q", found)
	})
}

// TestHandoff: when a speaker joins and ranks first for an address, the
// one holding it keeps answering for the handoff time (here an hour, so the
// state is stable to observe) alongside the newcomer: make before break.
// One that stops being eligible stops at once, handing off or not.
func TestHandoff(t *testing.T) {
	nodes := []string{"ho-a", "ho-b"}
	for _, n := range nodes {
		create(t, node(n, map[string]string{"l2": "yes"}))
	}
	l2Config(t, "ho", "203.0.113.76/30", v1alpha1.L2AdvertisementSpec{NodeSelector: &v1alpha1.Selector{MatchLabels: map[string]v1alpha1.LabelValue{"l2": "yes"}}})
	ns := namespace(t, "ho")
	addr := netip.MustParseAddr("203.0.113.77")
	lbService(t, ns, "web", false, addr.String())
	m := &members{handoff: time.Hour}
	sps := cluster(t, m, nil, nodes...)
	order := ranked(addr, nodes...)
	m.set(order[1])
	expectOwner(t, sps, addr, order[1])
	m.set(nodes...) // the first in rank joins
	want := slices.Sorted(slices.Values(nodes))
	expectOwner(t, sps, addr, want...)
	// The newcomer is heard announcing the address: the handoff ends,
	// long before its hour.
	if !sps[order[1]].sp.Claimed(addr, nil) {
		t.Error("the newcomer's announcement was not expected during the handoff")
	}
	expectOwner(t, sps, addr, order[0])
	// Both answer again for a moment: the old owner first, then a
	// handoff heard of nothing. Such a claim is a conflict.
	if sps[order[0]].sp.Claimed(addr, nil) {
		t.Error("another host's announcement of an address not handed off was expected")
	}
	m.set(order[1])
	expectOwner(t, sps, addr, order[1])
	m.set(nodes...)
	expectOwner(t, sps, addr, want...)

	c := testenv.Get(t).Client
	unlabel := func(name string) {
		t.Helper()
		var n corev1.Node
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &n); err != nil {
			t.Fatal(err)
		}
		n.Labels["l2"] = "no"
		if err := c.Update(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
	}
	unlabel(order[1]) // handing off, and now not eligible: stops at once
	expectOwner(t, sps, addr, order[0])
	unlabel(order[0])
	expectOwner(t, sps, addr)
}
