package assigner_test

// BenchmarkCatchUp measures a controller catching up (issue 15): N Services
// are created while no controller runs, then one is started, and the time
// until every Service shows an address (s-controller, start-up included)
// is set beside the time a bare client needs to write the same N statuses
// on the same control plane (s-bare), with their ratio (x-bare). The goal is
// at most 2× the bare client, and 5,000 Services in at most 15 s on a 2-CPU
// machine. It is a benchmark and not a test because both times depend on
// the machine and on what else it runs: a test failing above a threshold
// would be flaky, so `make bench` records the figures in
// docs/performance.md instead.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/assigner"
)

// catchUpSeq numbers the catch-up iterations; iteration k uses the pool
// 2001:db8:f800:<k>::/112. BenchmarkControllerAllocate uses only the first
// /112 of each 2001:db8:f<xxx>::/48 (fourth group 0), the other tests
// 2001:db8:<small>::/120 and 2001:db8:e00x::/120, so these blocks, whose
// fourth group is never 0, are no one else's.
var catchUpSeq atomic.Int64

// catchUpWriters is how many goroutines create the Services and write the
// bare client's statuses: as many as the controller's Service workers.
const catchUpWriters = 16

func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var ctrl, bare time.Duration
			for range b.N {
				c, br := catchUpOnce(b, n)
				ctrl += c
				bare += br
			}
			b.ReportMetric(0, "ns/op") // the iteration's wall time includes setup
			b.ReportMetric(ctrl.Seconds()/float64(b.N), "s-controller")
			b.ReportMetric(bare.Seconds()/float64(b.N), "s-bare")
			b.ReportMetric(ctrl.Seconds()/bare.Seconds(), "x-bare")
		})
	}
}

// catchUpOnce is one iteration; it returns how long the controller took to
// give n waiting Services addresses, and how long a bare client took to
// write n such statuses. Each phase deletes its Services when it is done,
// so both find n Services in the cluster and a further iteration starts
// from an empty one; the namespaces and the pool go when the benchmark
// ends.
func catchUpOnce(b *testing.B, n int) (ctrl, bare time.Duration) {
	b.StopTimer() // the figures are the durations returned, not the timer
	k := catchUpSeq.Add(1)
	if k > 0xffff {
		b.Fatal("out of /112 blocks in 2001:db8:f800::/48")
	}
	block := netip.MustParsePrefix(fmt.Sprintf("2001:db8:f800:%x::/112", k))
	cs := fastClientset(b)
	ctx := context.Background()

	// The controller: n Services wait, then it starts.
	ns := namespace(b, nil)
	pool := nsPool(ns+"-pool", ns, block.String())
	apply(b, pool)
	svcs := createServices(b, cs, ns, n)
	events, stopWatch := watchServices(b, cs, ns)
	before := apiRequests(b, cs)
	t0 := time.Now()
	r := start(b, nil)
	seen, err := waitAddressed(events, n, r.done)
	stopWatch()
	reqs := apiRequests(b, cs).minus(before)
	r.stop(b)
	if err != nil {
		b.Fatalf("controller: %v\ncontroller log:\n%s", err, r.logs.String())
	}
	ctrl = seen[n-1].Sub(t0)
	b.Logf("n=%d pool %s: the controller showed addresses after %s; API requests meanwhile (all clients): %s",
		n, block, pace(t0, seen), reqs.summary(n))
	logControllerTrouble(b, r)
	deleteServices(b, cs, svcs)

	// The bare client: n statuses like the controller's, written into n
	// fresh Services of another namespace. Fresh ones rather than the same
	// Services with their status cleared, so that each write meets what the
	// controller's met: a Service that was created and never written since.
	// They are created only now, so the controller never saw them.
	bareNS := namespace(b, nil)
	svcs = createServices(b, cs, bareNS, n)
	patches := make([][]byte, n)
	addr := block.Addr()
	for i, s := range svcs {
		addr = addr.Next()
		if patches[i], err = statusPatch(s, addr, pool.Name); err != nil {
			b.Fatal(err)
		}
	}
	events, stopWatch = watchServices(b, cs, bareNS)
	before = apiRequests(b, cs)
	t0 = time.Now()
	writeErr := make(chan error, 1)
	go func() {
		writeErr <- inParallel(n, func(i int) error {
			_, err := cs.CoreV1().Services(bareNS).Patch(ctx, svcs[i].Name, types.StrategicMergePatchType, patches[i], metav1.PatchOptions{}, "status")
			return err
		})
	}()
	seen, err = waitAddressed(events, n, writeErr)
	stopWatch()
	if err != nil {
		b.Fatalf("bare client: %v", err)
	}
	bare = seen[n-1].Sub(t0)
	b.Logf("n=%d: the bare client's status writes showed after %s; API requests meanwhile: %s",
		n, pace(t0, seen), apiRequests(b, cs).minus(before).summary(n))
	deleteServices(b, cs, svcs)
	return ctrl, bare
}

// pace says when the first, the 10th, 50th and 90th percentile and the
// last of the times were, after t0.
func pace(t0 time.Time, seen []time.Time) string {
	at := func(q int) time.Duration { return seen[(len(seen)-1)*q/100].Sub(t0).Round(time.Millisecond) }
	return fmt.Sprintf("first %v, 10%% %v, 50%% %v, 90%% %v, all %v", at(0), at(10), at(50), at(90), at(100))
}

// createServices creates n IPv6 LoadBalancer Services s00000… in ns from
// catchUpWriters goroutines, and returns them as created.
func createServices(b *testing.B, cs kubernetes.Interface, ns string, n int) []*corev1.Service {
	b.Helper()
	t0 := time.Now()
	out := make([]*corev1.Service, n)
	err := inParallel(n, func(i int) (err error) {
		out[i], err = cs.CoreV1().Services(ns).Create(context.Background(), lbService(ns, fmt.Sprintf("s%05d", i), ipv6Only), metav1.CreateOptions{})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d Services in %s in %v", n, ns, time.Since(t0).Round(time.Millisecond))
	return out
}

// inParallel calls f for 0..n-1 from catchUpWriters goroutines and returns
// the first error; a goroutine stops at its first error.
func inParallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, catchUpWriters)
	for w := range catchUpWriters {
		wg.Go(func() {
			for i := w; i < n; i += catchUpWriters {
				if err := f(i); err != nil {
					errs[w] = fmt.Errorf("item %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deleteServices deletes the Services from catchUpWriters goroutines
// (one DeleteCollection of thousands outlasts the API server's request
// timeout).
func deleteServices(b *testing.B, cs kubernetes.Interface, svcs []*corev1.Service) {
	b.Helper()
	t0 := time.Now()
	err := inParallel(len(svcs), func(i int) error {
		return cs.CoreV1().Services(svcs[i].Namespace).Delete(context.Background(), svcs[i].Name, metav1.DeleteOptions{})
	})
	if err != nil {
		b.Error(err)
	}
	b.Logf("deleted %d Services in %v", len(svcs), time.Since(t0).Round(time.Millisecond))
}

// statusPatch is the status write the controller makes when it gives svc
// the address ip from the pool: built by the same code, so it has the same
// size and the same optimistic lock.
func statusPatch(svc *corev1.Service, ip netip.Addr, pool string) ([]byte, error) {
	vip := corev1.LoadBalancerIPModeVIP
	s := svc.DeepCopy()
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
		Type:               assigner.ConditionIPAllocated,
		Status:             metav1.ConditionTrue,
		ObservedGeneration: svc.Generation,
		Reason:             assigner.ReasonAllocated,
		Message:            fmt.Sprintf("%s from IPPool %q", ip, pool),
	})
	return client.StrategicMergeFrom(svc, client.MergeFromWithOptimisticLock{}).Data(s)
}

// waitAddressed reads Service events until n different Services have
// shown an address, and returns when each did, in order. It fails when two
// Services show one address, when the watch breaks, when ended sends an
// error (a controller or writers that stopped early), or after five
// minutes. What it receives from ended it sends back, for the owner
// (r.stop reads the controller's), so ended must have room for one.
func waitAddressed(events <-chan watch.Event, n int, ended chan error) ([]time.Time, error) {
	holder := map[string]string{} // address → Service
	var seen []time.Time
	addressed := map[string]bool{}
	timeout := time.After(5 * time.Minute)
	for len(seen) < n {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, fmt.Errorf("the watch ended after %d of %d Services showed an address", len(seen), n)
			}
			if ev.Type == watch.Error {
				return nil, fmt.Errorf("watch: %w", apierrors.FromObject(ev.Object))
			}
			svc, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type == watch.Deleted || addressed[svc.Name] {
				continue
			}
			ips := ingressIPs(svc)
			if len(ips) == 0 {
				continue
			}
			if other, dup := holder[ips[0]]; dup {
				return nil, fmt.Errorf("Services %s and %s both show %s", other, svc.Name, ips[0])
			}
			holder[ips[0]], addressed[svc.Name] = svc.Name, true
			seen = append(seen, time.Now())
		case err := <-ended:
			ended <- err
			if err == nil { // writers done: the watch has the rest to tell
				ended = nil
				continue
			}
			return nil, fmt.Errorf("ended after %d of %d Services showed an address: %w", len(seen), n, err)
		case <-timeout:
			return nil, fmt.Errorf("after 5m only %d of %d Services show an address", len(seen), n)
		}
	}
	return seen, nil
}

// requestCounts are the API server's apiserver_request_total counters,
// summed by verb and resource (with subresource): what every client asked.
type requestCounts map[string]float64

// apiRequests reads the API server's request counters from its /metrics.
func apiRequests(b *testing.B, cs kubernetes.Interface) requestCounts {
	b.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("reading the API server's metrics: %v", err)
	}
	const name = "apiserver_request_total{"
	out := requestCounts{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, name), "} ")
		if !ok || !strings.HasPrefix(line, name) {
			continue
		}
		l := map[string]string{}
		for kv := range strings.SplitSeq(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			b.Fatalf("metric line %q: %v", line, err)
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += v
	}
	return out
}

func (c requestCounts) minus(before requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// summary lists the counts, most first, and the requests per Service.
func (c requestCounts) summary(n int) string {
	keys := slices.SortedFunc(maps.Keys(c), func(a, b string) int { return int(c[b] - c[a]) })
	var parts []string
	var total float64
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, c[k]))
		total += c[k]
	}
	return fmt.Sprintf("%.0f (%.2f a Service): %s", total, total/float64(n), strings.Join(parts, ", "))
}
