package assigner_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// fastClientset is a clientset without client-side rate limiting, so the
// test's own requests are limited by the API server only.
func fastClientset(tb testing.TB) kubernetes.Interface {
	tb.Helper()
	cfg := rest.CopyConfig(testenv.Get(tb).Config)
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// watchServices starts a real watch on the Services of ns, from the
// resourceVersion of a List made now, so it sees every change after this
// call, in the order the API server stored them. The RetryWatcher resumes
// from the last resourceVersion seen if the connection drops, so no event
// is lost or reordered. stop ends the watch.
func watchServices(tb testing.TB, cs kubernetes.Interface, ns string) (events <-chan watch.Event, stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return cs.CoreV1().Services(ns).Watch(ctx, o)
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, lw)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	return rw.ResultChan(), func() {
		cancel()
		rw.Stop()
		<-rw.Done()
	}
}

// addrTracker follows, event by event, the ingress addresses each Service
// of a namespace shows, and reports when two Services show one address or
// a Service shows one outside the pool.
//
// How it catches a duplicate: a watch delivers a namespace's Service
// changes one at a time in the order of their resourceVersions, so after
// each event holders is exactly the API server's state at that revision.
// A Service's entries are only removed by a later event of that same
// Service (a status change or its deletion). So if the API server ever
// stores Service B with address X while Service A still shows X, A's
// entry for X is still in holders[X] when B's event arrives, holders[X]
// then has two members, and observe returns an error. Were A's deletion
// (or its move away from X) stored after B took X, it would come later in
// the stream and not save the check. The subtest "tracker catches a
// duplicate" feeds such a stream and expects the error.
type addrTracker struct {
	pool    netip.Prefix
	holders map[string]map[string]bool // address → Services showing it
	shows   map[string][]string        // Service → addresses it shows
	// used counts the Services that ever showed each address.
	used   map[string]int
	served map[string]bool
}

func newAddrTracker(pool netip.Prefix) *addrTracker {
	return &addrTracker{pool: pool, holders: map[string]map[string]bool{}, shows: map[string][]string{}, used: map[string]int{}, served: map[string]bool{}}
}

// observe applies one watch event: the Service's addresses are now ips
// (none when it was deleted).
func (tr *addrTracker) observe(typ watch.EventType, svc string, ips []string) error {
	for _, ip := range tr.shows[svc] {
		delete(tr.holders[ip], svc)
		if len(tr.holders[ip]) == 0 {
			delete(tr.holders, ip)
		}
	}
	delete(tr.shows, svc)
	if typ == watch.Deleted || len(ips) == 0 {
		return nil
	}
	var problems []string
	if len(ips) > 1 {
		problems = append(problems, fmt.Sprintf("single-stack Service %s shows %d addresses %v", svc, len(ips), ips))
	}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil || !tr.pool.Contains(ip) {
			problems = append(problems, fmt.Sprintf("Service %s shows %q, not in the pool %s", svc, s, tr.pool))
		}
		if tr.holders[s] == nil {
			tr.holders[s] = map[string]bool{}
		}
		tr.holders[s][svc] = true
		if !tr.served[svc+" "+s] {
			tr.served[svc+" "+s] = true
			tr.used[s]++
		}
		if len(tr.holders[s]) > 1 {
			others := slices.Sorted(func(yield func(string) bool) {
				for h := range tr.holders[s] {
					if h != svc && !yield(h) {
						return
					}
				}
			})
			problems = append(problems, fmt.Sprintf("Service %s shows %s, which %v show(s) too", svc, s, others))
		}
	}
	tr.shows[svc] = ips
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// The churn: churnWorkers goroutines each create churnPerWorker Services
// and delete each again after a random 0..churnMaxLag further creations
// of that worker, or, one Service in churnLongEvery, after 0..churnLongLag:
// those hold their addresses across a controller's restart (a restart
// takes over a second, in which a worker creates about ten Services), so
// the next controller finds addresses in Service status it must not hand
// out again (about 15 at each restart). About 35 Services exist at once,
// well below the pool's 256 addresses.
const (
	churnWorkers   = 4
	churnPerWorker = 250 // 1,000 Services in all
	churnMaxLag    = 4
	churnLongEvery = 8
	churnLongLag   = 100
)

// TestChurnNoDuplicateAddresses creates and deletes 1,000 Services from
// four goroutines at once against one pool, and checks on a watch that no
// two Services ever show the same address. It runs twice: with the
// controller in-process (under this binary's race detector, its log in
// memory), and with the controller binary as a separate process that is
// SIGKILLed after a third and after two thirds of the creations and
// restarted at once each time, so that a new process must take over
// addresses a dead one handed out, while Services keep coming and going.
func TestChurnNoDuplicateAddresses(t *testing.T) {
	t.Run("tracker catches a duplicate", func(t *testing.T) {
		tr := newAddrTracker(netip.MustParsePrefix("2001:db8:f001::/120"))
		steps := []struct {
			typ     watch.EventType
			svc     string
			ips     []string
			wantErr bool
		}{
			{watch.Added, "a", nil, false},
			{watch.Modified, "a", []string{"2001:db8:f001::"}, false},
			{watch.Added, "b", []string{"2001:db8:f001::1"}, false},
			{watch.Deleted, "a", []string{"2001:db8:f001::"}, false},
			{watch.Modified, "b", []string{"2001:db8:f001::"}, false}, // a is gone: fine
			{watch.Modified, "c", []string{"2001:db8:f001::"}, true},  // b shows it
			{watch.Modified, "c", []string{"2001:db8:f001::2"}, false},
			{watch.Modified, "d", []string{"2001:db8:f002::"}, true}, // outside the pool
		}
		for i, s := range steps {
			if err := tr.observe(s.typ, s.svc, s.ips); (err != nil) != s.wantErr {
				t.Fatalf("step %d (%s %s %v): error %v, want error %v", i, s.typ, s.svc, s.ips, err, s.wantErr)
			}
		}
	})

	const all = churnWorkers * churnPerWorker
	for _, v := range []struct {
		name string
		// pool is the variant's own, inside 2001:db8:f001::/48, which
		// the benchmarks leave alone.
		pool netip.Prefix
		// kills are the numbers of creations after which the controller
		// process is SIGKILLed and restarted; nil runs it in-process.
		kills []int
	}{
		{"in-process", netip.MustParsePrefix("2001:db8:f001::/120"), nil},
		{"binary SIGKILLed twice", netip.MustParsePrefix("2001:db8:f001:1::/120"), []int{all / 3, 2 * all / 3}},
	} {
		t.Run(v.name, func(t *testing.T) { churn(t, v.pool, v.kills) })
	}
}

// churnKill is one SIGKILL of the controller process during the churn.
type churnKill struct {
	at time.Time
	// showing and waiting are how many Services the watch showed with
	// and without an address when the kill was sent.
	showing, waiting int
}

// churn runs the churn against pool and checks that no two Services ever
// show one address, and that every Service left ends with its own address
// of the pool. With kills, the controller runs as a separate process that
// is SIGKILLed and restarted after each of those numbers of creations.
func churn(t *testing.T, pool netip.Prefix, kills []int) {
	env := testenv.Get(t)
	began := time.Now() // after the control plane is up
	ns := namespace(t, nil)
	apply(t, nsPool(ns+"-churn", ns, pool.String()))
	var (
		r    *running           // in-process
		proc *controllerProcess // or a separate process
	)
	if kills == nil {
		r = start(t, nil)
	} else {
		proc = startControllerProcess(t, "--lb-class=ironlb.io/lb")
		// Up and serving before the churn, so that the first kill hits
		// a controller at work.
		proc.waitLog(`msg="configuration loaded"`)
		t.Logf("controller process ready %v after its start", time.Since(proc.run(0).started).Round(time.Millisecond))
	}

	// The watcher: every event updates the tracker; violations are kept.
	cs := fastClientset(t)
	events, stopWatch := watchServices(t, cs, ns)
	var (
		mu         sync.Mutex
		tr         = newAddrTracker(pool)
		exists     = map[string]bool{} // Services that exist, by the watch
		violations []string
		nEvents    int
		watchErr   error
	)
	// Reported last (deferred first), also when a later check stops the
	// test early.
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range violations {
			t.Errorf("duplicate or stray address seen on the watch %s", v)
		}
	}()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ev := range events {
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
			case watch.Error:
				mu.Lock()
				watchErr = apierrors.FromObject(ev.Object)
				mu.Unlock()
				return
			default:
				continue
			}
			svc, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			mu.Lock()
			nEvents++
			if ev.Type == watch.Deleted {
				delete(exists, svc.Name)
			} else {
				exists[svc.Name] = true
			}
			if err := tr.observe(ev.Type, svc.Name, ingressIPs(svc)); err != nil {
				violations = append(violations, fmt.Sprintf("at resourceVersion %s (%s): %v", svc.ResourceVersion, ev.Type, err))
			}
			mu.Unlock()
		}
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()

	// The killer: after the creation numbered kills[i] (counted over all
	// workers), SIGKILL the controller and start the next at once.
	var created atomic.Int64
	reached := make([]chan struct{}, len(kills))
	for i := range reached {
		reached[i] = make(chan struct{})
	}
	churnEnded, killerDone := make(chan struct{}), make(chan struct{})
	var done []churnKill // written by the killer until killerDone is closed
	go func() {
		defer close(killerDone)
		for i := range kills {
			select {
			case <-reached[i]:
			case <-churnEnded:
				return
			}
			mu.Lock()
			k := churnKill{showing: len(tr.shows), waiting: len(exists) - len(tr.shows)}
			mu.Unlock()
			var err error
			if k.at, err = proc.restart(); err != nil {
				t.Errorf("kill %d: %v", i+1, err)
				return
			}
			done = append(done, k)
		}
	}()

	// The churn: each worker creates its Services one after another and
	// deletes each again after a random number of further creations (see
	// churnMaxLag); those whose turn has not come when the worker ends are
	// kept.
	churnStart := time.Now()
	var wg sync.WaitGroup
	var kept sync.Map
	for w := range churnWorkers {
		wg.Go(func() {
			ctx := context.Background()
			type pending struct {
				name     string
				deleteAt int
			}
			var live []pending
			for i := range churnPerWorker {
				name := fmt.Sprintf("w%d-%03d", w, i)
				if err := env.Client.Create(ctx, lbService(ns, name, ipv6Only)); err != nil {
					t.Errorf("creating %s: %v", name, err)
					return
				}
				if k := slices.Index(kills, int(created.Add(1))); k >= 0 {
					close(reached[k])
				}
				lag := rand.IntN(churnMaxLag + 1)
				if rand.IntN(churnLongEvery) == 0 {
					lag = rand.IntN(churnLongLag + 1)
				}
				live = append(live, pending{name, i + lag})
				live = slices.DeleteFunc(live, func(p pending) bool {
					if p.deleteAt > i {
						return false
					}
					if err := env.Client.Delete(ctx, lbService(ns, p.name)); err != nil {
						t.Errorf("deleting %s: %v", p.name, err)
					}
					return true
				})
			}
			for _, p := range live {
				kept.Store(p.name, true)
			}
		})
	}
	wg.Wait()
	churnTook := time.Since(churnStart)
	close(churnEnded)
	<-killerDone
	if len(done) != len(kills) {
		t.Errorf("the controller was killed %d times, want %d", len(done), len(kills))
	}
	if t.Failed() {
		t.FailNow()
	}
	var wantKept []string
	kept.Range(func(k, _ any) bool { wantKept = append(wantKept, k.(string)); return true })
	slices.Sort(wantKept)

	// Every Service left shows one address from the pool, Allocated.
	var final map[string]string
	testutil.Eventually(t, "every remaining Service to be Allocated", func() (bool, string) {
		var list corev1.ServiceList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		final = map[string]string{}
		var names, waiting []string
		for i := range list.Items {
			s := &list.Items[i]
			names = append(names, s.Name)
			c := meta.FindStatusCondition(s.Status.Conditions, assigner.ConditionIPAllocated)
			ips := ingressIPs(s)
			if c == nil || c.Reason != assigner.ReasonAllocated || len(ips) != 1 {
				waiting = append(waiting, fmt.Sprintf("%s (ingress %v, condition %v)", s.Name, ips, c))
				continue
			}
			final[s.Name] = ips[0]
		}
		slices.Sort(names)
		if !slices.Equal(names, wantKept) {
			return false, fmt.Sprintf("Services %v, want %v", names, wantKept)
		}
		return len(waiting) == 0, fmt.Sprintf("%d of %d not allocated: %v", len(waiting), len(names), waiting)
	})
	seen := map[string]string{}
	for name, ip := range final {
		if other, dup := seen[ip]; dup {
			t.Errorf("Services %s and %s both show %s", other, name, ip)
		}
		seen[ip] = name
		if !pool.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("Service %s shows %s, outside %s", name, ip, pool)
		}
	}
	// The watch has caught up: its picture is the API server's.
	testutil.Eventually(t, "the watch to catch up", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		if watchErr != nil {
			return false, watchErr.Error()
		}
		if len(tr.shows) != len(final) {
			return false, fmt.Sprintf("watch sees %d Services with addresses, the API %d", len(tr.shows), len(final))
		}
		for name, ip := range final {
			if got := tr.shows[name]; !slices.Equal(got, []string{ip}) {
				return false, fmt.Sprintf("watch sees %s with %v, the API with %s", name, got, ip)
			}
		}
		return true, ""
	})
	// No address stays held by a deleted Service.
	testutil.Eventually(t, "the pool to count only the remaining Services", func() (bool, string) {
		var p v1alpha1.IPPool
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: ns + "-churn"}, &p); err != nil {
			return false, err.Error()
		}
		c := p.Status.IPv6
		return c != nil && c.Assigned == int64(len(final)) && c.Total == 256, fmt.Sprintf("IPv6 counts %+v, want %d assigned of 256", c, len(final))
	})
	converged := time.Since(churnStart) - churnTook

	mu.Lock()
	reused := 0
	for _, n := range tr.used {
		if n > 1 {
			reused++
		}
	}
	t.Logf("churn of %d Services took %v, convergence after it %v; %d remain; the watch saw %d events; %d Services got an address, %d distinct addresses, %d of them handed out again; test without control-plane start-up %v",
		churnWorkers*churnPerWorker, churnTook.Round(time.Millisecond), converged.Round(time.Millisecond), len(final), nEvents,
		len(tr.served), len(tr.used), reused, time.Since(began).Round(time.Millisecond))
	mu.Unlock()
	if r != nil {
		logControllerTrouble(t, r)
		return
	}
	proc.checkRunning()
	logKills(t, proc, kills, done)
}

// logKills logs what each controller process did, and how long after each
// kill the next one was back at work. A restarted process that took over
// no address from Service status fails the test: the kill then tested
// nothing a fresh start does not.
func logKills(t *testing.T, proc *controllerProcess, kills []int, done []churnKill) {
	t.Helper()
	for i := range proc.count() {
		run := proc.run(i)
		f := run.figures()
		until := "the end"
		if i < len(done) {
			until = fmt.Sprintf("kill %d (after creation %d; the watch showed %d Services with an address, %d waiting)", i+1, kills[i], done[i].showing, done[i].waiting)
		}
		t.Logf("controller process %d, until %s: set %d Services Allocated, released %d, took over %d from Service status at start",
			i, until, f.allocated, f.released, f.claimed)
		if i > 0 {
			k := done[i-1].at
			t.Logf("after kill %d: new process started %v later, loaded the configuration %s later, wrote its first Service status %s later",
				i, run.started.Sub(k).Round(time.Millisecond), sinceKill(k, f.configLoaded), sinceKill(k, f.firstStatus))
			if f.claimed == 0 {
				t.Errorf("controller process %d took over no address from Service status: every Service the killed one served was gone before it started", i)
			}
		}
		logTrouble(t, fmt.Sprintf("controller process %d", i), run.logs())
	}
}

// sinceKill is how long after killedAt at was; "(never)" when at is zero.
func sinceKill(killedAt, at time.Time) string {
	if at.IsZero() {
		return "(never)"
	}
	return at.Sub(killedAt).Round(time.Millisecond).String()
}

// logControllerTrouble logs how many warnings and errors the controller
// logged, by kind, with an example of each.
func logControllerTrouble(tb testing.TB, r *running) {
	tb.Helper()
	logTrouble(tb, "controller", r.logs.String())
}

// logTrouble logs how many warnings and errors who logged in logs, by
// kind, with an example of each.
func logTrouble(tb testing.TB, who, logs string) {
	tb.Helper()
	kinds := map[string]int{}
	example := map[string]string{}
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, "level=ERROR") && !strings.Contains(line, "level=WARN") {
			continue
		}
		kind := "other"
		switch {
		case strings.Contains(line, "not found"):
			kind = "not found"
		case strings.Contains(line, "has been modified"):
			kind = "conflict (object has been modified)"
		}
		if strings.Contains(line, "IPPool") {
			kind += ", IPPool"
		} else if strings.Contains(line, "Service") {
			kind += ", Service"
		}
		kinds[kind]++
		if example[kind] == "" {
			example[kind] = line
		}
	}
	if len(kinds) == 0 {
		tb.Logf("%s logged no warnings or errors", who)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		tb.Logf("%s logged %d warnings/errors of kind %q, e.g.\n%s", who, kinds[k], k, example[k])
	}
}
