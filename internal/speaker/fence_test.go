package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestFencing: in a memberlist partition only the side with a quorum of
// the known speakers answers. The owner cut off alone stops answering (and
// says why, in its NodeAnnouncement and an event on its Node) while the
// others take over; after the heal it answers again. Without fencing the
// owner would go on answering beside its successor.
func TestFencing(t *testing.T) {
	nodes := []string{"fe-a", "fe-b", "fe-c"}
	for _, n := range nodes {
		create(t, node(n, nil))
	}
	l2Config(t, "fe", "203.0.113.200/30", v1alpha1.L2AdvertisementSpec{})
	ns := namespace(t, "fe")
	addr := netip.MustParseAddr("203.0.113.201")
	lbService(t, ns, "web", false, addr.String())
	// A fenced speaker that sees a majority but not every known speaker
	// waits as long as it was fenced, at most fenceSettle: for ever, as
	// far as the test goes, once the clock has jumped.
	settle := fenceSettle
	t.Cleanup(func() { fenceSettle = settle })
	fenceSettle = time.Hour
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	m := &members{known: func() []string { return slices.Clone(nodes) }, now: func() time.Time { return time.Unix(0, clock.Load()) }}
	sps := cluster(t, m, nil, nodes...)
	m.set(nodes...)
	order := ranked(addr, nodes...)
	expectOwner(t, sps, addr, order[0])

	// The owner is cut off: it sees itself alone, the two others see each
	// other. Exactly one node answers: the next in rank.
	m.partition([]string{order[0]}, []string{order[1], order[2]})
	expectOwner(t, sps, addr, order[1])
	c := testenv.Get(t).Client
	testutil.Eventually(t, "the cut-off owner's NodeAnnouncement says it is fenced", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(context.Background(), client.ObjectKey{Name: order[0]}, &na); err != nil {
			return false, err.Error()
		}
		st := na.Status
		return len(st.Layer2) == 0 && st.Members == 1 && st.KnownSpeakers == 3 && strings.Contains(st.Fenced, "1 of 3 known speakers alive"), fmt.Sprintf("%+v", st)
	})
	expectEvent(t, "default", order[0], "Fenced", "1 of 3 known speakers alive")

	// Healed: the owner has a quorum again and takes its address back.
	m.partition()
	expectOwner(t, sps, addr, order[0])
	expectEvent(t, "default", order[0], "Unfenced", "3 of 3")
	testutil.Eventually(t, "the NodeAnnouncement no longer fenced", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(context.Background(), client.ObjectKey{Name: order[0]}, &na); err != nil {
			return false, err.Error()
		}
		return na.Status.Fenced == "" && len(na.Status.Layer2) == 1, fmt.Sprintf("%+v", na.Status)
	})

	// The next in rank is cut off, and memberlist declares the owner dead
	// first: it sees two of three alive, a majority, but its pings reach
	// nobody. It must not take the address the owner still answers for.
	status := func(node string) v1alpha1.NodeAnnouncementStatus {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(context.Background(), client.ObjectKey{Name: node}, &na); err != nil {
			t.Fatal(err)
		}
		return na.Status
	}
	m.mu.Lock()
	m.reach = map[string][]string{order[1]: {order[1]}}
	m.mu.Unlock()
	m.partition([]string{order[0], order[2]}, []string{order[1], order[2]})
	testutil.Eventually(t, order[1]+" fenced by its pings", func() (bool, string) {
		st := status(order[1])
		return strings.Contains(st.Fenced, "1 of 3") && strings.Contains(st.Fenced, "answered a ping"), fmt.Sprintf("%+v", st)
	})
	if got := owners(sps, addr); !slices.Equal(got, []string{order[0]}) {
		t.Errorf("with the next in rank cut off, %s announced by %v, want %s alone", addr, got, order[0])
	}

	// Its pings reach the others again, after it was fenced for hours,
	// but it sees only two of three: a quorum, yet it waits for every
	// known speaker (or fenceSettle).
	clock.Add(int64(2 * time.Hour))
	m.mu.Lock()
	m.reach = nil
	m.mu.Unlock()
	m.partition([]string{order[0], order[2]}, []string{order[1], order[2]})
	testutil.Eventually(t, order[1]+" waiting for every known speaker", func() (bool, string) {
		st := status(order[1])
		return strings.Contains(st.Fenced, "2 of 3") && strings.Contains(st.Fenced, "not back yet"), fmt.Sprintf("%+v", st)
	})
	m.partition()
	testutil.Eventually(t, order[1]+" answering again once it sees all", func() (bool, string) {
		st := status(order[1])
		return st.Fenced == "", fmt.Sprintf("%+v", st)
	})
	expectOwner(t, sps, addr, order[0])

	// A split with no majority (each node alone): nobody answers.
	m.partition([]string{order[0]}, []string{order[1]}, []string{order[2]})
	expectOwner(t, sps, addr)
}

// TestKnownSpeakers: the known speakers are the nodes of the ready
// speaker pods that are not being deleted and whose Node is not reported
// down, plus this one; with a fixed list of peers, every member seen.
func TestKnownSpeakers(t *testing.T) {
	c := testenv.Get(t).Client
	ctx := context.Background()
	ns := namespace(t, "known")
	sel := labels.SelectorFromSet(labels.Set{"app": "speaker"})
	nodeReady := map[string]corev1.ConditionStatus{"kn-a": corev1.ConditionTrue, "kn-b": corev1.ConditionTrue, "kn-c": corev1.ConditionTrue, "kn-down": corev1.ConditionUnknown}
	for n, ready := range nodeReady {
		create(t, node(n, nil))
		var obj corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: n}, &obj); err != nil {
			t.Fatal(err)
		}
		obj.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
		if err := c.Status().Update(ctx, &obj); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(name, nodeName string, ready bool, lbls map[string]string) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
			Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "speaker", Image: "speaker"}}},
		}
		create(t, p)
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	speaker := map[string]string{"app": "speaker"}
	pod("sp-a", "kn-a", true, speaker)
	pod("sp-b", "kn-b", true, speaker)
	pod("sp-c", "kn-c", false, speaker)      // crashed: not ready
	pod("sp-down", "kn-down", true, speaker) // its node is reported down
	pod("other", "kn-c", true, map[string]string{"app": "web"})
	// One being deleted (a finalizer keeps it for the test).
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sp-leaving", Labels: speaker, Finalizers: []string{"ironlb.io/test"}},
		Spec: corev1.PodSpec{NodeName: "kn-c", Containers: []corev1.Container{{Name: "speaker", Image: "speaker"}}}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Finalizers = nil
		_ = c.Update(ctx, p)
	})
	if err := c.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}

	k := newKnown(RunOptions{Options: Options{Node: "kn-self"}, PodNamespace: ns, PodSelector: sel}, c, &members{})
	if got, want := k.get(), []string{"kn-a", "kn-b", "kn-self"}; !slices.Equal(got, want) {
		t.Errorf("known %v, want %v", got, want)
	}

	// The crashed speaker comes back: the pods are read again only once
	// an event has said something changed.
	var sc corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sp-c"}, &sc); err != nil {
		t.Fatal(err)
	}
	sc.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := c.Status().Update(ctx, &sc); err != nil {
		t.Fatal(err)
	}
	if got, want := k.get(), []string{"kn-a", "kn-b", "kn-self"}; !slices.Equal(got, want) {
		t.Errorf("known before an event %v, want the last %v", got, want)
	}
	k.invalidate()
	if got, want := k.get(), []string{"kn-a", "kn-b", "kn-c", "kn-self"}; !slices.Equal(got, want) {
		t.Errorf("known after an event %v, want %v", got, want)
	}

	// A fixed list of peers: every member seen since the start.
	m := &members{}
	k = newKnown(RunOptions{Options: Options{Node: "s-a"}, Join: []string{"192.0.2.2"}}, c, m)
	m.set("s-a", "s-b")
	k.get()
	m.set("s-a", "s-c")
	if got, want := k.get(), []string{"s-a", "s-b", "s-c"}; !slices.Equal(got, want) {
		t.Errorf("known with --memberlist-join %v, want %v", got, want)
	}
}
