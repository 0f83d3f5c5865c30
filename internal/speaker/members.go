package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/membership"
)

// keyRetry is how often an unusable memberlist key is read again, and
// memberlist started again after it failed (a variable for tests).
var keyRetry = 10 * time.Second

// keyReadTimeout bounds one read of the memberlist key Secret.
const keyReadTimeout = 10 * time.Second

// clusterRef lets the speaker ask for the alive set before memberlist runs.
type clusterRef struct {
	mu sync.Mutex
	c  *membership.Cluster // guarded by mu; nil until the key is usable
}

func (r *clusterRef) set(c *membership.Cluster) {
	r.mu.Lock()
	r.c = c
	r.mu.Unlock()
}

// Members implements Members.
func (r *clusterRef) Members() []membership.Member {
	r.mu.Lock()
	c := r.c
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Members()
}

// Reachable implements Reacher.
func (r *clusterRef) Reachable(enough int) []string {
	r.mu.Lock()
	c := r.c
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Reachable(enough)
}

// Joined reports whether memberlist runs and has settled its first join.
func (r *clusterRef) Joined() bool {
	r.mu.Lock()
	c := r.c
	r.mu.Unlock()
	return c != nil && c.Joined()
}

// runMembership loads the key (retrying until it is usable) and runs the
// memberlist cluster until ctx ends; it reports whether it ran.
func runMembership(ctx context.Context, o RunOptions, reader client.Reader, cached client.Reader, ref *clusterRef, sp *Speaker) bool {
	log := o.Log
	var lastErr string
	for !o.Membership.BindAddr.IsValid() {
		a, err := nodeAddress(ctx, cached, o.Node)
		if err == nil {
			o.Membership.BindAddr = a
			break
		}
		log.Error("no address for memberlist; set --memberlist-bind-address or $POD_IP", "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(keyRetry):
		}
	}
	for {
		// Bounded: an API server that accepts the connection and never
		// answers would otherwise hold this speaker out for good.
		keyCtx, cancel := context.WithTimeout(ctx, keyReadTimeout)
		key, secondary, err := loadKey(keyCtx, reader, o.KeyFile, o.SecondaryKeysFile, o.KeySecret)
		cancel()
		if err == nil {
			mo := o.Membership
			mo.Key, mo.SecondaryKeys = key, secondary
			c, err := membership.New(mo)
			if err == nil {
				if key == nil {
					log.Warn("memberlist traffic is not encrypted: --memberlist-key-file and --memberlist-secret are both empty")
				}
				ref.set(c)
				err = c.Run(ctx, func() []string { return peers(ctx, o, cached, log) }, sp.Trigger)
				if err == nil || ctx.Err() != nil {
					return true
				}
				// Such as its port taken by another program: try again
				// rather than stay out of the cluster until restarted.
				ref.set(nil)
			}
			if err.Error() != lastErr {
				lastErr = err.Error()
				log.Error("cannot run memberlist; layer 2 announcements from this node are off until it can, retrying", "error", err, "retry", keyRetry)
				sp.nodeEvent(corev1.EventTypeWarning, "MemberlistFailed", "%v", err)
			}
		} else if err.Error() != lastErr {
			lastErr = err.Error()
			log.Error("memberlist key unusable; this node does not join the speakers and announces nothing in layer 2 until it is fixed", "error", err)
			sp.nodeEvent(corev1.EventTypeWarning, "MemberlistKeyInvalid", "%v", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(keyRetry):
		}
	}
}

// nodeAddress is the Node's first InternalIP.
func nodeAddress(ctx context.Context, reader client.Reader, name string) (netip.Addr, error) {
	var n corev1.Node
	if err := reader.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
		return netip.Addr{}, fmt.Errorf("reading Node %s: %w", name, err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("Node %s has no InternalIP address", name)
}

// loadKey reads the memberlist key, and the keys accepted besides it,
// from files or a Secret; nil without either. A Secret holds the key in
// data key "key" and the others, optional, in "secondaryKeys" (base64 keys
// separated by whitespace or commas).
func loadKey(ctx context.Context, reader client.Reader, file, secondaryFile, secret string) (key []byte, secondary [][]byte, err error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("--memberlist-key-file: %w", err)
		}
		if key, err = membership.ParseKey(b); err != nil {
			return nil, nil, fmt.Errorf("--memberlist-key-file %s: %w", file, err)
		}
		if secondaryFile != "" {
			b, err := os.ReadFile(secondaryFile)
			if err != nil {
				return nil, nil, fmt.Errorf("--memberlist-secondary-keys-file: %w", err)
			}
			if secondary, err = membership.ParseKeys(b); err != nil {
				return nil, nil, fmt.Errorf("--memberlist-secondary-keys-file %s: %w", secondaryFile, err)
			}
		}
		return key, secondary, nil
	case secret != "":
		ns, name, ok := strings.Cut(secret, "/")
		if !ok {
			return nil, nil, fmt.Errorf("--memberlist-secret %q: must be namespace/name", secret)
		}
		var s corev1.Secret
		if err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			return nil, nil, fmt.Errorf("reading Secret %s (--memberlist-secret): %w", secret, err)
		}
		b, ok := s.Data["key"]
		if !ok {
			return nil, nil, fmt.Errorf("Secret %s (--memberlist-secret): data.key is missing; it must hold a 16, 24 or 32 byte key, raw or base64", secret)
		}
		if key, err = membership.ParseKey(b); err != nil {
			return nil, nil, fmt.Errorf("Secret %s (--memberlist-secret) data.key: %w", secret, err)
		}
		if secondary, err = membership.ParseKeys(s.Data["secondaryKeys"]); err != nil {
			return nil, nil, fmt.Errorf("Secret %s (--memberlist-secret) data.secondaryKeys: %w", secret, err)
		}
		return key, secondary, nil
	case secondaryFile != "":
		return nil, nil, errors.New("--memberlist-secondary-keys-file needs --memberlist-key-file: secondary keys only add to a primary key")
	}
	return nil, nil, nil
}

// peers returns the addresses of the speakers to join.
func peers(ctx context.Context, o RunOptions, cached client.Reader, log interface{ Error(string, ...any) }) []string {
	if len(o.Join) > 0 {
		return o.Join
	}
	var pods corev1.PodList
	if err := cached.List(ctx, &pods, client.InNamespace(o.PodNamespace), client.MatchingLabelsSelector{Selector: o.PodSelector}); err != nil {
		log.Error("listing speaker pods to join", "error", err)
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.Spec.NodeName != o.Node {
			out = append(out, p.Status.PodIP)
		}
	}
	return out
}
