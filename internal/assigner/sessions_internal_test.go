package assigner

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

func nodeAnn(name string, kv ...string) *v1alpha1.NodeAnnouncement {
	n := &v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for i := 0; i < len(kv); i += 2 {
		n.Status.BGPSessions = append(n.Status.BGPSessions, v1alpha1.BGPSession{Peer: kv[i], State: kv[i+1], Address: "198.51.100.1"})
	}
	return n
}

func TestCountSessions(t *testing.T) {
	got := countSessions([]v1alpha1.NodeAnnouncement{
		*nodeAnn("a", "rtr-1", "Established", "rtr-2", "Active"),
		*nodeAnn("b", "rtr-1", "Established", "rtr-2", "Established"),
		*nodeAnn("c", "rtr-1", "Idle"),
		*nodeAnn("d"),
	})
	want := map[string]sessionCount{"rtr-1": {total: 3, established: 2}, "rtr-2": {total: 2, established: 1}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(sessionCount{})); diff != "" {
		t.Errorf("countSessions (-want +got):\n%s", diff)
	}
}

func TestSetSessions(t *testing.T) {
	var st v1alpha1.BGPPeerStatus
	steps := []struct {
		c       sessionCount
		changed bool
		text    string
	}{
		{sessionCount{}, true, "0/0"}, // a new peer: no node peers with it yet
		{sessionCount{}, false, "0/0"},
		{sessionCount{total: 3}, true, "0/3"},
		{sessionCount{total: 3, established: 3}, true, "3/3"},
		{sessionCount{total: 3, established: 3}, false, "3/3"},
		{sessionCount{total: 2, established: 2}, true, "2/2"},
	}
	for i, s := range steps {
		if changed := setSessions(&st, s.c); changed != s.changed {
			t.Errorf("step %d: changed = %t, want %t", i, changed, s.changed)
		}
		if st.Sessions != s.text || st.TotalSessions != s.c.total || st.EstablishedSessions != s.c.established {
			t.Errorf("step %d: status %q %d/%d, want %q", i, st.Sessions, st.EstablishedSessions, st.TotalSessions, s.text)
		}
	}
}

func TestSessionsPredicate(t *testing.T) {
	up := nodeAnn("a", "rtr-1", "Established")
	down := nodeAnn("a", "rtr-1", "Active")
	moreAddrs := nodeAnn("a", "rtr-1", "Established")
	moreAddrs.Status.Layer2Addresses = 7
	moreAddrs.Status.BGPSessions[0].Advertised = 9
	for _, tt := range []struct {
		name     string
		old, new *v1alpha1.NodeAnnouncement
		want     bool
	}{
		{"a session goes down", up, down, true},
		{"a session comes", nodeAnn("a"), up, true},
		{"a session goes", up, nodeAnn("a"), true},
		{"addresses and prefixes change", up, moreAddrs, false},
	} {
		if got := sessionsPredicate.Update(event.UpdateEvent{ObjectOld: tt.old, ObjectNew: tt.new}); got != tt.want {
			t.Errorf("%s: update passes = %t, want %t", tt.name, got, tt.want)
		}
	}
	if !sessionsPredicate.Create(event.CreateEvent{Object: up}) || sessionsPredicate.Create(event.CreateEvent{Object: nodeAnn("b")}) {
		t.Error("create: passes only a NodeAnnouncement with sessions")
	}
	if !sessionsPredicate.Delete(event.DeleteEvent{Object: up}) || sessionsPredicate.Delete(event.DeleteEvent{Object: nodeAnn("b")}) {
		t.Error("delete: passes only a NodeAnnouncement with sessions")
	}
}
