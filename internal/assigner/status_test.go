package assigner_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestPoolCountsReadable: a /64 pool counts more addresses than an int64
// holds; the integer fields stop at the largest int64 and the text fields,
// which kubectl shows, stay exact.
func TestPoolCountsReadable(t *testing.T) {
	ns := namespace(t, nil)
	pool := ns + "-big"
	apply(t, nsPool(pool, ns, "2001:db8:e00c::/64"))
	start(t, nil)
	create(t, lbService(ns, "a", ipv6Only))
	waitCondition(t, ns, "a", assigner.ReasonAllocated)
	want := v1alpha1.AddressCounts{Total: math.MaxInt64, Assigned: 1, Available: math.MaxInt64, TotalText: "2^64", AvailableText: "2^64-1"}
	testutil.Eventually(t, "the pool's counts", func() (bool, string) {
		var p v1alpha1.IPPool
		if err := testenv.Get(t).Client.Get(context.Background(), client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, assigner.ConditionValid)
		return p.Status.IPv6 != nil && *p.Status.IPv6 == want && p.Status.IPv4 == nil && c != nil && c.Status == metav1.ConditionTrue,
			fmt.Sprintf("ipv4 %+v, ipv6 %+v, Valid %+v", p.Status.IPv4, p.Status.IPv6, c)
	})
}

// TestPeerSessions: the controller counts each BGPPeer's sessions from
// the speakers' NodeAnnouncements, and follows them as they change.
func TestPeerSessions(t *testing.T) {
	ctx := context.Background()
	c := testenv.Get(t).Client
	ns := namespace(t, nil) // only for unique names
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: ns + "-rtr"},
		Spec: v1alpha1.BGPPeerSpec{PeerAddress: "198.51.100.254", PeerASN: 64512, MyASN: 64513}}
	other := ns + "-other"
	apply(t, peer)
	start(t, nil)
	waitSessions(t, peer.Name, "0/0", 0, 0) // no node peers with it yet

	// announce writes a node's sessions, as its speaker does.
	announce := func(node string, kv ...string) {
		t.Helper()
		n := &v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: node}}
		if err := c.Get(ctx, client.ObjectKeyFromObject(n), n); err != nil {
			if err := c.Create(ctx, n); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
		}
		n.Status.BGPSessions = nil
		for i := 0; i < len(kv); i += 2 {
			n.Status.BGPSessions = append(n.Status.BGPSessions, v1alpha1.BGPSession{Peer: kv[i], Address: "198.51.100.254", State: kv[i+1]})
		}
		if err := c.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	announce(ns+"-n1", peer.Name, "Established", other, "Established")
	announce(ns+"-n2", peer.Name, "Active")
	announce(ns + "-n3") // a node the peer does not select
	waitSessions(t, peer.Name, "1/2", 1, 2)
	announce(ns+"-n2", peer.Name, "Established")
	waitSessions(t, peer.Name, "2/2", 2, 2)
	if err := c.Delete(ctx, &v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: ns + "-n1"}}); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, peer.Name, "1/1", 1, 1)
}

func waitSessions(t *testing.T, peer, text string, established, total int32) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("BGPPeer %s to count sessions %s", peer, text), func() (bool, string) {
		var p v1alpha1.BGPPeer
		if err := testenv.Get(t).Client.Get(context.Background(), client.ObjectKey{Name: peer}, &p); err != nil {
			return false, err.Error()
		}
		st := p.Status
		c := meta.FindStatusCondition(st.Conditions, assigner.ConditionValid)
		return st.Sessions == text && st.EstablishedSessions == established && st.TotalSessions == total && c != nil && c.Status == metav1.ConditionTrue,
			fmt.Sprintf("sessions %q (%d/%d), Valid %+v", st.Sessions, st.EstablishedSessions, st.TotalSessions, c)
	})
}
