package speaker

import (
	"context"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// known tells fencing which speakers should be running (Options.Known).
//
// When speakers find each other as pods, they are the nodes of the
// speaker pods that the API server reports ready, not being deleted, on a
// node that is not reported down: a crashed speaker's pod turns unready, a
// node cut off turns NotReady after the node monitor's grace period, and
// a rolling update deletes the pod before stopping the speaker, so each
// leaves the count while the others carry on. The reads are from the
// informer caches, which keep the last state while the API server cannot
// be reached: then the last known speakers count.
//
// With a fixed list of peers (--memberlist-join) there are no pods to
// read: every speaker seen alive since this one started counts.
//
// The pods are read again only after invalidate: Run calls it on every
// event of a speaker pod, and of a Node added, deleted or changing
// readiness (the informer's cache holds the change by then), so that
// syncs for Service changes do not list the pods every time.
type known struct {
	reader   client.Reader // cached
	node     string
	ns       string
	selector labels.Selector
	static   bool
	members  Members

	mu    sync.Mutex
	last  []string        // guarded by mu
	stale bool            // guarded by mu: last must be read again
	seen  map[string]bool // guarded by mu; static only
}

func newKnown(o RunOptions, cached client.Reader, members Members) *known {
	return &known{reader: cached, node: o.Node, ns: o.PodNamespace, selector: o.PodSelector,
		static: len(o.Join) > 0 || o.PodNamespace == "", members: members, seen: map[string]bool{o.Node: true}, stale: true}
}

// invalidate makes the next get read the pods again.
func (k *known) invalidate() {
	k.mu.Lock()
	k.stale = true
	k.mu.Unlock()
}

// get returns the known speakers, this one included. It reads only caches
// and never blocks on the API server.
func (k *known) get() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.static {
		for _, m := range k.members.Members() {
			k.seen[m.Name] = true
		}
		return slices.Sorted(maps.Keys(k.seen))
	}
	if !k.stale {
		return slices.Clone(k.last)
	}
	ctx := context.Background()
	var pods corev1.PodList
	if err := k.reader.List(ctx, &pods, client.InNamespace(k.ns), client.MatchingLabelsSelector{Selector: k.selector}); err != nil {
		return slices.Clone(k.last)
	}
	k.stale = false
	out := []string{k.node}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" || !podReady(p) {
			continue
		}
		var n corev1.Node
		if err := k.reader.Get(ctx, types.NamespacedName{Name: p.Spec.NodeName}, &n); err == nil && !nodeReady(&n) {
			continue
		}
		out = append(out, p.Spec.NodeName)
	}
	slices.Sort(out)
	k.last = slices.Compact(out)
	return slices.Clone(k.last)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeReady is false when the Node's Ready condition says it is down or
// unknown; a Node without one (not yet reported) counts as ready.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true
}
