package lab

// This file reads the speakers' own count of memberlist members
// (SpeakerMembers, WatchMembers; e2e/measure analyses the readings), and
// the speakers' memberlist key: where it is kept (MemberlistSecret), a
// new one (NewMemberlistKey), reading and writing it (MemberlistKey,
// SetMemberlistKeys).

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// membersMetric is the speaker's gauge of the memberlist members it sees
// alive, itself included, 0 before it has joined.
const membersMetric = "ironlb_memberlist_members"

// metricsClient reads the speakers' metrics from the control plane's
// namespace, over the LAN as Prometheus would (HTTPS, with the token of a
// scraper the chart's reader role binds), on a new connection each time
// (a speaker may have been restarted since the last read).
func (l *Lab) metricsClient(timeout time.Duration) *http.Client {
	return ScrapeClient(l.Plan.ControlPlane.NetNS, l.metricsToken, timeout)
}

// SpeakerMembers reads, from a node's speaker's metrics, how many
// speakers it sees alive in memberlist (itself included; 0 until it has
// joined). It fails when the speaker does not answer (stopped, or its
// node cut off).
func (l *Lab) SpeakerMembers(node string) (int, error) {
	return l.speakerMembers(l.metricsClient(2*time.Second), node)
}

func (l *Lab) speakerMembers(c *http.Client, node string) (int, error) {
	url, err := l.SpeakerMetricsURL(node)
	if err != nil {
		return 0, err
	}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s's metrics: %s", node, resp.Status)
	}
	return parseGauge(string(body), membersMetric)
}

// parseGauge finds an unlabelled gauge in Prometheus' text format.
func parseGauge(text, name string) (int, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("no %s among the metrics", name)
}

// MemberSample is one reading of a speaker's member count.
type MemberSample struct {
	Node string
	// At is when the reading was asked for.
	At time.Time
	// Members is what the speaker reported (see SpeakerMembers).
	Members int
	// Err says why there is no reading: the speaker did not answer.
	Err error
}

// MemberWatch reads every speaker's member count at a fixed interval.
type MemberWatch struct {
	quit chan struct{}
	wg   sync.WaitGroup
	stop sync.Once

	// mu guards samples.
	mu      sync.Mutex
	samples []MemberSample
}

// WatchMembers starts reading every node's SpeakerMembers every interval
// (each node on its own, so a silent one does not hold up the others)
// until ctx ends or Stop is called.
func (l *Lab) WatchMembers(ctx context.Context, interval time.Duration) *MemberWatch {
	w := &MemberWatch{quit: make(chan struct{})}
	c := l.metricsClient(min(interval*5, 2*time.Second))
	for _, n := range l.Plan.Nodes {
		w.wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				at := time.Now()
				m, err := l.speakerMembers(c, n.Name)
				w.mu.Lock()
				w.samples = append(w.samples, MemberSample{Node: n.Name, At: at, Members: m, Err: err})
				w.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-w.quit:
					return
				case <-tick.C:
				}
			}
		})
	}
	return w
}

// Samples returns the readings so far, in the order they were asked for.
func (w *MemberWatch) Samples() []MemberSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.samples)
	slices.SortStableFunc(out, func(a, b MemberSample) int { return a.At.Compare(b.At) })
	return out
}

// Stop ends the readings and returns them all. Safe to call twice.
func (w *MemberWatch) Stop() []MemberSample {
	w.stop.Do(func() { close(w.quit) })
	w.wg.Wait()
	return w.Samples()
}

// MemberlistSecret names the Secret the speakers read their memberlist
// key from, as the chart's DaemonSet passes it (--memberlist-secret).
func (l *Lab) MemberlistSecret() (namespace, name string, err error) {
	for _, a := range l.speaker.container().Args {
		if v, ok := strings.CutPrefix(a, "--memberlist-secret="); ok {
			ns, n, ok := strings.Cut(v, "/")
			if !ok {
				return "", "", fmt.Errorf("--memberlist-secret=%s: not namespace/name", v)
			}
			return ns, n, nil
		}
	}
	return "", "", errors.New("the chart's speaker has no --memberlist-secret")
}

// NewMemberlistKey returns a fresh memberlist key, as the Secret holds
// it (32 random bytes, base64).
func NewMemberlistKey() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// MemberlistKey reads the memberlist key the speakers send with from
// their Secret (see MemberlistSecret).
func (l *Lab) MemberlistKey(ctx context.Context) (string, error) {
	ns, name, err := l.MemberlistSecret()
	if err != nil {
		return "", err
	}
	s, err := l.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(s.Data["key"])), nil
}

// SetMemberlistKeys writes key, and the secondary keys, into the
// speakers' Secret. A speaker reads it only when it starts.
func (l *Lab) SetMemberlistKeys(ctx context.Context, key string, secondary ...string) error {
	ns, name, err := l.MemberlistSecret()
	if err != nil {
		return err
	}
	s, err := l.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.Data = map[string][]byte{"key": []byte(key)}
	if len(secondary) > 0 {
		s.Data["secondaryKeys"] = []byte(strings.Join(secondary, "\n"))
	}
	if _, err := l.Clientset.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", ns, name, err)
	}
	return nil
}
