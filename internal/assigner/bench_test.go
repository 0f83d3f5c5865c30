package assigner_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
)

// benchSeq numbers benchmark iterations; iteration k uses the pool
// 2001:db8:f<k+2>::/112, inside 2001:db8:f000::/36 (f001 is the churn
// test's).
var benchSeq atomic.Int64

// BenchmarkControllerAllocate measures how fast one controller gives
// addresses to many IPv6 Services created at once: the time until all show
// an address (s-all) and the per-Service latency from just before its
// Create to the watch event that shows its address (ms-p50, ms-p99).
func BenchmarkControllerAllocate(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var sAll, p50, p99 float64
			b.ResetTimer()
			for range b.N {
				r := allocateOnce(b, n)
				sAll += r.all.Seconds()
				p50 += float64(r.p50) / float64(time.Millisecond)
				p99 += float64(r.p99) / float64(time.Millisecond)
			}
			b.ReportMetric(sAll/float64(b.N), "s-all")
			b.ReportMetric(p50/float64(b.N), "ms-p50")
			b.ReportMetric(p99/float64(b.N), "ms-p99")
		})
	}
}

type allocateResult struct {
	all, p50, p99 time.Duration
}

// allocateOnce is one iteration: a fresh namespace, pool and controller,
// n Services created by 8 goroutines, and everything removed again before
// it returns (deferred, so also when it fails). Only the creation and the
// wait for the addresses are timed.
func allocateOnce(b *testing.B, n int) allocateResult {
	b.StopTimer()
	ctx := context.Background()
	env := testenv.Get(b)
	cs := fastClientset(b)
	k := benchSeq.Add(1) + 1
	if k > 0xfff {
		b.Fatal("out of /112 blocks in 2001:db8:f000::/36")
	}
	cidr := fmt.Sprintf("2001:db8:f%03x::/112", k)
	ns := fmt.Sprintf("bench-%d-%d", k, time.Now().UnixNano()%100000)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		b.StopTimer()
		// One by one from many goroutines: one DeleteCollection of 5,000
		// outlasts the API server's request timeout on a busy machine.
		list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Error(err)
		} else if err := inParallel(len(list.Items), func(i int) error {
			return cs.CoreV1().Services(ns).Delete(ctx, list.Items[i].Name, metav1.DeleteOptions{})
		}); err != nil {
			b.Error(err)
		}
		if err := env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Error(err)
		}
	}()
	pool := nsPool(ns+"-pool", ns, cidr)
	if err := env.Client.Create(ctx, pool); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := env.Client.Delete(ctx, pool); err != nil {
			b.Error(err)
		}
	}()

	r := start(b, nil)
	defer func() {
		r.stop(b) // within the iteration; start's Cleanup then does nothing
		logControllerTrouble(b, r)
	}()

	// Count the pool's status writes while the Services are allocated.
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	pw, err := wc.Watch(ctx, &v1alpha1.IPPoolList{}, client.MatchingFields{"metadata.name": pool.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: pool.ResourceVersion}})
	if err != nil {
		b.Fatal(err)
	}
	defer pw.Stop()
	var counting atomic.Bool
	var poolWrites atomic.Int64
	go func() {
		for ev := range pw.ResultChan() {
			if ev.Type == watch.Modified && counting.Load() {
				poolWrites.Add(1)
			}
		}
	}()

	// The watch starts before any Service exists; the first event that
	// shows a Service's address is when the benchmark observes it.
	events, stopWatch := watchServices(b, cs, ns)
	const warmup = "warmup"
	idx := map[string]int{warmup: n}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%05d", i)
		idx[names[i]] = i
	}
	created := make([]time.Time, n)  // just before Create
	returned := make([]time.Time, n) // when Create returned
	// The watcher writes these; they are read once watchDone is closed.
	seen := make([]time.Time, n+1)
	addrs := make([]string, n+1)
	var watchErr error
	var nSeen atomic.Int64
	warm := make(chan struct{})
	allSeen := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ev := range events {
			if ev.Type == watch.Error {
				watchErr = apierrors.FromObject(ev.Object)
				return
			}
			svc, ok := ev.Object.(*corev1.Service)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			i, ok := idx[svc.Name]
			ips := ingressIPs(svc)
			if !ok || len(ips) == 0 || !seen[i].IsZero() {
				continue
			}
			seen[i], addrs[i] = time.Now(), ips[0]
			if i == n {
				close(warm)
				continue
			}
			if nSeen.Add(1) == int64(n) {
				close(allSeen)
			}
		}
	}()
	endWatch := func() {
		stopWatch()
		<-watchDone
	}
	defer endWatch()

	// A first Service shows that the controller has started and loaded the
	// pool, so start-up is not part of what is measured.
	if err := env.Client.Create(ctx, lbService(ns, warmup, ipv6Only)); err != nil {
		b.Fatal(err)
	}
	select {
	case <-warm:
	case err := <-r.done:
		r.done <- err // for r.stop
		b.Fatalf("the controller ended before the warm-up Service got an address: %v", err)
	case <-time.After(waitTimeout):
		endWatch()
		b.Fatalf("the warm-up Service got no address in %v (watch error %v)\ncontroller log:\n%s", waitTimeout, watchErr, r.logs.String())
	}

	b.StartTimer()
	counting.Store(true)
	t0 := time.Now()
	var wg sync.WaitGroup
	var createErr atomic.Value
	const creators = 8
	for w := range creators {
		wg.Go(func() {
			for i := w; i < n; i += creators {
				svc := lbService(ns, names[i], ipv6Only)
				created[i] = time.Now()
				if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					createErr.CompareAndSwap(nil, fmt.Errorf("creating %s: %w", names[i], err))
					return
				}
				returned[i] = time.Now()
			}
		})
	}
	wg.Wait()
	createTook := time.Since(t0)
	if err, _ := createErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	const timeout = 5 * time.Minute
	select {
	case <-allSeen:
	case <-time.After(timeout):
		b.StopTimer()
		endWatch()
		var missing []string
		for i, t := range seen[:n] {
			if t.IsZero() {
				s := getService(b, ns, names[i])
				missing = append(missing, fmt.Sprintf("%s %v", names[i], meta.FindStatusCondition(s.Status.Conditions, assigner.ConditionIPAllocated)))
			}
		}
		b.Fatalf("after %v, %d of %d Services show no address (watch error %v), e.g. %v", timeout, len(missing), n, watchErr, missing[:min(len(missing), 5)])
	}
	b.StopTimer()
	counting.Store(false)
	endWatch()

	var res allocateResult
	lat := make([]time.Duration, n)
	// The parts of lat: the Create call, and from its return until the
	// address is seen (the controller's share, plus the watch's delivery).
	call, after := make([]time.Duration, n), make([]time.Duration, n)
	holder := map[string]string{addrs[n]: warmup}
	for i := range n {
		lat[i] = seen[i].Sub(created[i])
		call[i], after[i] = returned[i].Sub(created[i]), seen[i].Sub(returned[i])
		res.all = max(res.all, seen[i].Sub(t0))
		if other, ok := holder[addrs[i]]; ok {
			b.Errorf("Services %s and %s both show %s", other, names[i], addrs[i])
		}
		holder[addrs[i]] = names[i]
	}
	p50 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[(n-1)/2] }
	p99 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[(99*n+99)/100-1] }
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	res.p50, res.p99 = p50(lat), p99(lat)
	b.Logf("n=%d pool %s: creates took %v; all addresses after %v (%d pool status writes meanwhile); latency p50 %v p99 %v max %v; of it the Create call p50 %v p99 %v, after Create returned p50 %v p99 %v",
		n, cidr, ms(createTook), ms(res.all), poolWrites.Load(), ms(res.p50), ms(res.p99), ms(lat[n-1]),
		ms(p50(call)), ms(p99(call)), ms(p50(after)), ms(p99(after)))
	return res
}
