package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configfile"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/planner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// BenchmarkEndpointChange measures, with n LoadBalancer Services of ten
// endpoints each in the API server, how long one endpoint turning
// unready or ready takes from the EndpointSlice's update event in the
// speaker's cache to the nft transaction that changes the frontend
// applied in a network namespace of the benchmark's: the speaker reads
// the one Service, plans it and hands the frontends to a real dataplane
// running as in the speaker. ms/change is that time on average and
// max-ms/change the longest; the loop's ns/op adds the API server's
// write. make bench runs it with -benchtime 100x: creating the Services
// takes minutes.
func BenchmarkEndpointChange(b *testing.B) {
	testutil.NeedNet(b, "ip", "nft")
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchEndpointChange(b, n) })
	}
}

func benchEndpointChange(b *testing.B, n int) {
	ctx := context.Background()
	c := testenv.Get(b).Client
	ns := fmt.Sprintf("bench-ep-%d", n)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	// The i-th Service's address is benchAddr(n+i), apart from the other
	// runs'.
	eps := createBenchServices(b, c, ns, n)
	fwd := newNetnsForwarder(b)
	events := startBenchSpeaker(b, fwd)
	// Services of an earlier run stay: the test API server deletes no
	// namespace's objects.
	fwd.await(b, func(fes []dataplane.Frontend) bool { return len(fes) >= n })

	var total, worst time.Duration
	changes := 0
	for b.Loop() {
		i := changes * 7919 % n
		es := eps[i]
		es.Endpoints[3].Conditions.Ready = new(!*es.Endpoints[3].Conditions.Ready)
		if err := c.Update(ctx, es); err != nil {
			b.Fatal(err)
		}
		arrived := events.await(b, es.Name, es.ResourceVersion)
		want := 9
		if *es.Endpoints[3].Conditions.Ready {
			want = 10
		}
		addr := benchAddr(n + i)
		applied := fwd.await(b, func(fes []dataplane.Frontend) bool {
			j, found := slices.BinarySearchFunc(fes, addr, func(fe dataplane.Frontend, a netip.Addr) int { return fe.Addr.Compare(a) })
			return found && len(fes[j].Backends) == want
		})
		took := applied.at.Sub(arrived)
		total, worst = total+took, max(worst, took)
		changes++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(changes), "ms/change")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms/change")
}

// benchAddr is the address of the i-th Service.
func benchAddr(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0x66, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// createBenchServices creates n Services with an address in their status
// and an EndpointSlice of ten ready endpoints each, sixteen at a time,
// and returns the slices.
func createBenchServices(b *testing.B, c client.Client, ns string, n int) []*discoveryv1.EndpointSlice {
	ctx := context.Background()
	out := make([]*discoveryv1.EndpointSlice, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				errs <- createBenchService(ctx, c, ns, i, out)
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

func createBenchService(ctx context.Context, c client.Client, ns string, i int, out []*discoveryv1.EndpointSlice) error {
	name := fmt.Sprintf("svc-%d", i)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http", Port: 80}},
			AllocateLoadBalancerNodePorts: new(false)},
	}
	if err := c.Create(ctx, svc); err != nil {
		return err
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: benchAddr(len(out) + i).String(), IPMode: new(corev1.LoadBalancerIPModeVIP)}}
	if err := c.Status().Update(ctx, svc); err != nil {
		return err
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
	}
	for e := range 10 {
		a := netip.AddrFrom16([16]byte{0xfd, 0x00, 11: byte(len(out) >> 16), 12: byte(i >> 16), 13: byte(i >> 8), 14: byte(i), 15: byte(e + 1)})
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.String()}, NodeName: new("bench"),
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)}})
	}
	out[i] = es
	return c.Create(ctx, es)
}

// netnsForwarder is a real dataplane, as the speaker runs it (Set hands
// the list over, Run applies the latest from its own goroutine), whose
// nft runs in a network namespace of the benchmark's; it records when
// each list was applied.
type netnsForwarder struct {
	*dataplane.Dataplane
	netns   string
	applied chan appliedList
}

type appliedList struct {
	fes []dataplane.Frontend
	at  time.Time
}

func newNetnsForwarder(b *testing.B) *netnsForwarder {
	name := fmt.Sprintf("ironlb-bench-%dx0-ep", os.Getpid())
	testutil.Run(b, "ip", "netns", "add", name)
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	f := &netnsForwarder{netns: name, applied: make(chan appliedList, 1024)}
	synced := func(fes []dataplane.Frontend) { f.applied <- appliedList{fes, time.Now()} }
	err := testutil.InNetNS(name, func() (err error) {
		f.Dataplane, err = dataplane.New(dataplane.Options{Log: slog.New(slog.DiscardHandler), Synced: synced})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Run's goroutine is the one InNetNS switched, so its nft runs in the
	// namespace.
	go func() { done <- testutil.InNetNS(name, func() error { return f.Run(ctx) }) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return f
}

// await returns the first list that done accepts, dropping those before.
func (f *netnsForwarder) await(b *testing.B, done func([]dataplane.Frontend) bool) appliedList {
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case l := <-f.applied:
			if done(l.fes) {
				return l
			}
		case <-timeout:
			b.Fatal("the dataplane was not given the frontends awaited within five minutes")
		}
	}
}

// sliceEvents records when the speaker's cache saw each update of an
// EndpointSlice.
type sliceEvents struct {
	mu   sync.Mutex
	seen map[string]time.Time // by name and resourceVersion
	kick chan struct{}
}

func (e *sliceEvents) record(obj any) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	e.mu.Lock()
	e.seen[es.Name+"@"+es.ResourceVersion] = time.Now()
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *sliceEvents) await(b *testing.B, name, rv string) time.Time {
	timeout := time.After(time.Minute)
	for {
		e.mu.Lock()
		at, ok := e.seen[name+"@"+rv]
		e.mu.Unlock()
		if ok {
			return at
		}
		select {
		case <-e.kick:
		case <-timeout:
			b.Fatalf("the speaker's cache never saw EndpointSlice %s at resourceVersion %s", name, rv)
		}
	}
}

// startBenchSpeaker runs a speaker of node "bench" forwarding to
// endpoints through fwd, with a static pool of the benchmark's addresses
// and no layer 2 or BGP announcement, and records the slice events its
// cache sees.
func startBenchSpeaker(b *testing.B, fwd Forwarder) *sliceEvents {
	env := testenv.Get(b)
	l, err := configfile.New()
	if err != nil {
		b.Fatal(err)
	}
	snap, err := l.Load(context.Background(), "bench.yaml", []byte(`
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: bench}
spec: {addresses: ["2001:db8:ff66::/104"]}
`))
	if err != nil {
		b.Fatal(err)
	}
	cfg, problems := config.Resolve(snap)
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: env.Client.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: cacheOptions(RunOptions{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	sp := New(Options{
		Node: "bench", Class: config.Class{Name: "ironlb.io/lb"}, Static: cfg, Log: slog.New(slog.DiscardHandler),
		Announcer: &fakeAnnouncer{seq: new(atomic.Int64), gained: map[netip.Addr]int64{}, lost: map[netip.Addr]int64{}},
		Members:   staticMembers{"bench"}, Forwarding: fwd, ForwardingMode: planner.ForwardEndpoints,
	})
	if err := sp.SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	events := &sliceEvents{seen: map[string]time.Time{}, kick: make(chan struct{}, 1)}
	inf, err := mgr.GetCache().GetInformer(context.Background(), &discoveryv1.EndpointSlice{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{UpdateFunc: func(_, obj any) { events.record(obj) }}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return events
}

// staticMembers is a membership of the named speakers, always alive.
type staticMembers []string

func (m staticMembers) Members() []membership.Member {
	out := make([]membership.Member, len(m))
	for i, name := range m {
		out[i] = membership.Member{Name: name}
	}
	return out
}
