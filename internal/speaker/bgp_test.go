package speaker

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// fakeBGP stands in for the embedded BGP server, which has network tests
// of its own with FRR. It keeps the last desired state, checks it, and
// reports the states a test gives it.
type fakeBGP struct {
	mu      sync.Mutex
	desired *bgp.Desired
	err     error
	states  map[string]bgp.State
	changed func()
	// sets and updates count the calls of Set and Update.
	sets, updates int
}

func (f *fakeBGP) Set(d bgp.Desired) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[netip.Addr]bool{}
	for _, p := range d.Peers {
		if seen[p.Address] {
			f.err = fmt.Errorf("two peers at %s", p.Address)
		}
		seen[p.Address] = true
		for pfx := range p.Routes {
			if pfx.Addr().Is4() != p.Address.Is4() || pfx != pfx.Masked() {
				f.err = fmt.Errorf("peer %s given %s", p.Name, pfx)
			}
		}
	}
	f.desired = &d
	f.sets++
}

// Update applies c to a copy of the last desired state, so that what
// peer returned earlier stays as it was.
func (f *fakeBGP) Update(c bgp.Changes) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desired == nil {
		f.err = fmt.Errorf("Update before Set")
		return
	}
	d := *f.desired
	d.Peers = slices.Clone(d.Peers)
	for i := range d.Peers {
		d.Peers[i].Routes = maps.Clone(d.Peers[i].Routes)
	}
	d.Apply(c, nil)
	f.desired = &d
	f.updates++
}

func (f *fakeBGP) calls() (sets, updates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sets, f.updates
}

func (f *fakeBGP) Status() []bgp.PeerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desired == nil {
		return nil
	}
	var out []bgp.PeerStatus
	for _, p := range f.desired.Peers {
		st := bgp.PeerStatus{Name: p.Name, Address: p.Address, State: bgp.StateActive, Advertised: len(p.Routes), Message: p.Disabled}
		if s, ok := f.states[p.Name]; ok {
			st.State = s
		}
		if p.Disabled != "" {
			st.State = bgp.StateDisabled
		}
		if p.BFD != nil {
			st.BFD = "Up"
		}
		out = append(out, st)
	}
	return out
}

func (f *fakeBGP) setState(peer string, s bgp.State) {
	f.mu.Lock()
	if f.states == nil {
		f.states = map[string]bgp.State{}
	}
	f.states[peer] = s
	f.mu.Unlock()
	f.changed()
}

func (f *fakeBGP) peer(name string) (bgp.Peer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desired == nil {
		return bgp.Peer{}, false
	}
	for _, p := range f.desired.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return bgp.Peer{}, false
}

func (f *fakeBGP) routerID() netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desired == nil {
		return netip.Addr{}
	}
	return f.desired.RouterID
}

// createNodeWithIP creates a Node with an InternalIP. Node status is a
// subresource: the address is written after creating.
func createNodeWithIP(t *testing.T, name, ip string) {
	t.Helper()
	c := testenv.Get(t).Client
	ctx := context.Background()
	create(t, node(name, nil))
	var n corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if err := c.Status().Update(ctx, &n); err != nil {
		t.Fatal(err)
	}
}

func expectRoutes(t *testing.T, f *fakeBGP, peer string, want map[netip.Prefix]bgp.Route) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("routes to %s", peer), func() (bool, string) {
		p, _ := f.peer(peer)
		got := p.Routes
		if got == nil {
			got = map[netip.Prefix]bgp.Route{}
		}
		d := cmp.Diff(want, got)
		return d == "", "(-want +got)\n" + d
	})
}

// TestBGP: a speaker gives its BGP side the peers that select its node,
// with their settings and passwords, and per peer the Service prefixes
// with the advertisement's attributes, only while the Service has a ready
// endpoint; a missing password Secret disables that peer alone and says
// so; session changes become events and status.
func TestBGP(t *testing.T) {
	c := testenv.Get(t).Client
	ctx := context.Background()
	createNodeWithIP(t, "bgp-a", "198.51.100.11")
	hold := metav1.Duration{Duration: 9 * time.Second}
	lp := int64(150)
	create(t,
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.96/28"}}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "r-ebgp"}, Spec: v1alpha1.BGPPeerSpec{
			PeerAddress: "198.51.100.1", PeerASN: 64500, MyASN: 64512, HoldTime: &hold, GracefulRestart: true, EBGPMultiHop: true,
			BFD: &v1alpha1.BFDSettings{TransmitInterval: &metav1.Duration{Duration: 100 * time.Millisecond}},
		}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "r-ibgp"}, Spec: v1alpha1.BGPPeerSpec{
			PeerAddress: "198.51.100.2", PeerASN: 64512, MyASN: 64512,
			PasswordSecretRef: &v1alpha1.SecretKeyRef{Namespace: "default", Name: "bgp-md5", Key: "password"},
		}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.BGPAdvertisementSpec{
			IPPools: v1alpha1.ObjectNames{"bgp"}, LocalPref: &lp, Communities: []v1alpha1.Community{"65000:100", "large:64512:1:2"},
		}},
	)
	ns := namespace(t, "bgp")
	lbService(t, ns, "web", false, "203.0.113.97")
	m := &members{bgp: true}
	sp := cluster(t, m, nil, "bgp-a")["bgp-a"]
	f := sp.bgp

	// The peers are there at once, with nothing to advertise yet: the
	// Service has no endpoint.
	testutil.Eventually(t, "both peers", func() (bool, string) {
		e, ok1 := f.peer("r-ebgp")
		i, ok2 := f.peer("r-ibgp")
		return ok1 && ok2 && len(e.Routes) == 0 && len(i.Routes) == 0, fmt.Sprintf("%+v %+v", e, i)
	})
	if got := f.routerID(); got != netip.MustParseAddr("198.51.100.11") {
		t.Errorf("router ID %v, want the node's InternalIP 198.51.100.11", got)
	}
	e, _ := f.peer("r-ebgp")
	wantSession := bgp.Session{Address: netip.MustParseAddr("198.51.100.1"), Port: 179, ASN: 64500, LocalASN: 64512, HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, MultiHop: true, GracefulRestart: true, MaxReceived: 1000}
	if diff := cmp.Diff(wantSession, e.Session, cmpopts.EquateComparable(netip.Addr{})); diff != "" || e.Disabled != "" {
		t.Errorf("eBGP session (-want +got):\n%s disabled %q", diff, e.Disabled)
	}
	wantBFD := &bgp.BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}
	if diff := cmp.Diff(wantBFD, e.BFD); diff != "" {
		t.Errorf("eBGP peer's BFD (-want +got):\n%s", diff)
	}
	i, _ := f.peer("r-ibgp")
	if !strings.Contains(i.Disabled, "Secret default/bgp-md5") {
		t.Errorf("the iBGP peer's missing Secret: disabled %q, want it named", i.Disabled)
	}
	expectEvent(t, "default", "r-ibgp", ReasonPeerUnusable, "bgp-md5")

	// A ready endpoint on another node: Cluster advertises from here too.
	pfx := netip.MustParsePrefix("203.0.113.97/32")
	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.2"}, NodeName: new("elsewhere")}},
	})
	expectRoutes(t, f, "r-ebgp", map[netip.Prefix]bgp.Route{pfx: {Communities: []uint32{65000<<16 | 100}, Large: []bgp.LargeCommunity{{Global: 64512, Local1: 1, Local2: 2}}}})
	// The disabled peer still gets its plan, with the local preference
	// of iBGP, for when it is fixed.
	expectRoutes(t, f, "r-ibgp", map[netip.Prefix]bgp.Route{pfx: {LocalPref: 150, HasLocalPref: true, Communities: []uint32{65000<<16 | 100}, Large: []bgp.LargeCommunity{{Global: 64512, Local1: 1, Local2: 2}}}})

	// The Secret appears; a change of the peer makes the speaker read it.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bgp-md5"}, Data: map[string][]byte{"password": []byte("s3cret")}})
	var peer v1alpha1.BGPPeer
	if err := c.Get(ctx, client.ObjectKey{Name: "r-ibgp"}, &peer); err != nil {
		t.Fatal(err)
	}
	peer.Labels = map[string]string{"touched": "yes"}
	if err := c.Update(ctx, &peer); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the password in use", func() (bool, string) {
		i, _ := f.peer("r-ibgp")
		return i.Password == "s3cret" && i.Disabled == "", fmt.Sprintf("password %q disabled %q", i.Password, i.Disabled)
	})

	// Session state: events on the BGPPeer, and the NodeAnnouncement.
	f.setState("r-ebgp", bgp.StateEstablished)
	expectEvent(t, "default", "r-ebgp", ReasonSessionUp, "bgp-a")
	testutil.Eventually(t, "the NodeAnnouncement", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(ctx, client.ObjectKey{Name: "bgp-a"}, &na); err != nil {
			return false, err.Error()
		}
		st := na.Status
		var states []string
		for _, s := range st.BGPSessions {
			states = append(states, s.Peer+"="+s.State+"/"+fmt.Sprint(s.Advertised)+"/bfd="+s.BFD)
		}
		ok := st.BGPPrefixes == 1 && len(st.BGP) == 1 && st.BGP[0].Prefix == "203.0.113.97/32" &&
			slices.Equal(st.BGP[0].Services, []string{ns + "/web"}) && slices.Equal(st.BGP[0].Peers, []string{"r-ebgp", "r-ibgp"}) &&
			slices.Equal(states, []string{"r-ebgp=Established/1/bfd=Up", "r-ibgp=Active/1/bfd="}) &&
			st.BGPSessionSummary == "r-ebgp=Established,r-ibgp=Active" // kubectl's column
		return ok, fmt.Sprintf("%+v sessions %v", st, states)
	})
	f.setState("r-ebgp", bgp.StateActive)
	expectEvent(t, "default", "r-ebgp", ReasonSessionDown, "bgp-a")

	// From here on only Services change: the BGP side is given the
	// prefixes that changed, never the whole state again.
	setsBefore, _ := f.calls()

	// The last endpoint becomes unready: withdrawn everywhere.
	var slice discoveryv1.EndpointSlice
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web-1"}, &slice); err != nil {
		t.Fatal(err)
	}
	slice.Endpoints[0].Conditions.Ready = new(false)
	if err := c.Update(ctx, &slice); err != nil {
		t.Fatal(err)
	}
	expectRoutes(t, f, "r-ebgp", map[netip.Prefix]bgp.Route{})
	expectRoutes(t, f, "r-ibgp", map[netip.Prefix]bgp.Route{})

	// Local with a ready endpoint on this node: advertised; the Service
	// deleted: withdrawn.
	local := lbService(t, ns, "local", true, "203.0.113.98")
	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.3"}, NodeName: new("bgp-a")}},
	})
	lpfx := netip.MustParsePrefix("203.0.113.98/32")
	expectRoutes(t, f, "r-ebgp", map[netip.Prefix]bgp.Route{lpfx: {Communities: []uint32{65000<<16 | 100}, Large: []bgp.LargeCommunity{{Global: 64512, Local1: 1, Local2: 2}}}})
	if err := c.Delete(ctx, local); err != nil {
		t.Fatal(err)
	}
	expectRoutes(t, f, "r-ebgp", map[netip.Prefix]bgp.Route{})
	if sets, updates := f.calls(); sets != setsBefore || updates == 0 {
		t.Errorf("Service changes were handed over by %d Sets and %d Updates, want Updates alone", sets-setsBefore, updates)
	}
	if f.err != nil {
		t.Error(f.err)
	}
}

// expectEvent waits for an event on a BGPPeer (cluster-scoped; its
// events land in namespace default) with the reason and a note holding
// text.
func expectEvent(t *testing.T, ns, name, reason, text string) {
	t.Helper()
	c := testenv.Get(t).Client
	testutil.Eventually(t, fmt.Sprintf("event %s on %s", reason, name), func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name == name {
				seen = append(seen, e.Reason+": "+e.Note)
				if e.Reason == reason && strings.Contains(e.Note, text) {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("events %q", seen)
	})
}
