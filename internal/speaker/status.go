package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// statusWriter writes this node's NodeAnnouncement in its own goroutine,
// so a slow API server never delays a failover; only the latest status is
// written, at most once per statusInterval, so that a burst of changes
// (thousands of Services created) costs a few writes, not one per change.
// While changes keep coming, the interval doubles up to
// statusIntervalBusy: a status write costs the API server tens of
// milliseconds of CPU (the object is large and its managed fields are
// worked out again), which three speakers writing twice a second during a
// burst made the main cost of creating Services.
type statusWriter struct {
	c    client.Client
	node string
	log  *slog.Logger
	// latest holds the newest status not yet written.
	latest chan v1alpha1.NodeAnnouncementStatus
}

// statusInterval is the least time between two writes of the status, and
// statusIntervalBusy the most it grows to during a burst of changes.
const (
	statusInterval     = 500 * time.Millisecond
	statusIntervalBusy = 8 * time.Second
)

// nextStatusInterval is the wait after a write that waited cur: twice as
// long, up to statusIntervalBusy, when a different status was already
// waiting at its end (changes keep coming); statusInterval again
// otherwise.
func nextStatusInterval(cur time.Duration, busy bool) time.Duration {
	if !busy {
		return statusInterval
	}
	return min(2*cur, statusIntervalBusy)
}

func newStatusWriter(c client.Client, node string, log *slog.Logger) *statusWriter {
	return &statusWriter{c: c, node: node, log: log, latest: make(chan v1alpha1.NodeAnnouncementStatus, 1)}
}

// set replaces the status waiting to be written.
func (w *statusWriter) set(st v1alpha1.NodeAnnouncementStatus) {
	for {
		select {
		case w.latest <- st:
			return
		default:
		}
		select {
		case <-w.latest:
		default:
		}
	}
}

func (w *statusWriter) run(ctx context.Context) {
	var written *v1alpha1.NodeAnnouncementStatus
	interval := statusInterval
	for {
		var st v1alpha1.NodeAnnouncementStatus
		select {
		case <-ctx.Done():
			return
		case st = <-w.latest:
		}
		if written != nil && equality.Semantic.DeepEqual(*written, st) {
			continue
		}
		if err := w.write(ctx, st); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Error("writing the NodeAnnouncement failed; retrying", "node", w.node, "error", err)
			// Write it again unless a newer one arrived meanwhile, which
			// must win: set would replace it with this older one.
			select {
			case w.latest <- st:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		written = &st
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		interval = nextStatusInterval(interval, w.changedSince(st))
	}
}

// changedSince tells whether the status waiting to be written differs
// from written; it leaves it waiting.
func (w *statusWriter) changedSince(written v1alpha1.NodeAnnouncementStatus) bool {
	select {
	case next := <-w.latest:
		// Back it goes, unless set put a newer one there meanwhile.
		select {
		case w.latest <- next:
		default:
		}
		return !equality.Semantic.DeepEqual(written, next)
	default:
		return false
	}
}

// write replaces the status of the node's NodeAnnouncement, creating the
// object first if needed (owned by the Node, so it goes with it).
func (w *statusWriter) write(ctx context.Context, st v1alpha1.NodeAnnouncementStatus) error {
	// A merge patch replaces the lists whole; this speaker is the
	// object's only writer, so there is nothing to merge with.
	capLayer2(&st)
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"layer2": st.Layer2, "layer2Addresses": nilIfZero(st.Layer2Addresses), "members": st.Members, "bgp": st.BGP, "bgpPrefixes": st.BGPPrefixes, "bgpSessions": st.BGPSessions,
		"bgpSessionSummary": nilIfEmpty(st.BGPSessionSummary),
		"knownSpeakers":     st.KnownSpeakers, "fenced": nilIfEmpty(st.Fenced),
	}})
	if err != nil {
		return err
	}
	obj := &v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: w.node}}
	err = w.c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	if apierrors.IsNotFound(err) {
		var node corev1.Node
		if err := w.c.Get(ctx, types.NamespacedName{Name: w.node}, &node); err != nil {
			return fmt.Errorf("reading Node %s: %w", w.node, err)
		}
		obj.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		if err := w.c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating NodeAnnouncement %s: %w", w.node, err)
		}
		err = w.c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	}
	if err != nil {
		return fmt.Errorf("writing the status of NodeAnnouncement %s: %w", w.node, err)
	}
	return nil
}

// maxLayer2Status is how many layer 2 addresses a NodeAnnouncement
// lists, as for BGP prefixes (maxBGPStatusPrefixes). A node may answer for
// thousands, and an object past etcd's size limit (1.5 MiB by default)
// could never be written again, so the status would freeze; the count
// says how many there are in all.
const maxLayer2Status = 100

// capLayer2 counts the layer 2 addresses and keeps the first
// maxLayer2Status of the list (sorted by address, so the lowest). It
// sets the count whatever it was, so it is safe to call twice.
func capLayer2(st *v1alpha1.NodeAnnouncementStatus) {
	if n := int32(len(st.Layer2)); n > st.Layer2Addresses {
		st.Layer2Addresses = n
	}
	st.Layer2 = st.Layer2[:min(len(st.Layer2), maxLayer2Status)]
}

// nilIfZero makes 0 null in a merge patch, which removes the field.
func nilIfZero(n int32) any {
	if n == 0 {
		return nil
	}
	return n
}

// nilIfEmpty makes an empty string null in a merge patch, which removes
// the field.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
