package assigner_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/assigner"
	"github.com/ironlb/ironlb/internal/cmdutil"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

func TestMain(m *testing.M) {
	// As the binary does at start: controller-runtime's and klog's package
	// loggers, set before any client exists. Each controller logs to its
	// own buffer through its manager anyway.
	cmdutil.BridgeLoggers(slog.New(slog.DiscardHandler))
	testenv.Main(m)
}

// waitTimeout bounds every wait for the controller; it is a guard against
// a hung test, not a measure of speed.
const waitTimeout = 60 * time.Second

// running is a controller started by a test.
type running struct {
	cancel context.CancelFunc
	done   chan error
	logs   *testutil.SyncBuffer
	once   sync.Once
	err    error
}

// stop stops the controller and waits until it has; safe to call twice.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	if r.err != nil {
		t.Errorf("controller ended with %v", r.err)
	}
}

// start runs a controller against the test API server until the test ends
// or stop is called. mutate may change its options.
func start(t testing.TB, mutate func(*assigner.RunOptions)) *running {
	t.Helper()
	env := testenv.Get(t)
	logs := &testutil.SyncBuffer{}
	o := assigner.RunOptions{
		Options: assigner.Options{
			Class:             assigner.Class{Name: "ironlb.io/lb"},
			Log:               slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
			SeveralPerProcess: true,
			// Each controller its own: the metrics served are those of
			// the one test that asks for controller-runtime's registry.
			Registry: prometheus.NewRegistry(),
		},
		MetricsAddr: "0",
		HealthAddr:  "0",
	}
	if mutate != nil {
		mutate(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- assigner.Run(ctx, env.Config, o) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	return r
}

var nsSeq atomic.Int64

// namespace makes a namespace for one test and deletes its Services at the
// end (the test control plane has no namespace controller to do it).
func namespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	env := testenv.Get(t)
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%100000, nsSeq.Add(1))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = env.Client.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace(name))
		_ = env.Client.Delete(ctx, ns)
	})
	return name
}

// apply creates configuration objects and deletes them when the test ends.
func apply(t testing.TB, objs ...client.Object) {
	t.Helper()
	env := testenv.Get(t)
	for _, o := range objs {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
}

// ippool builds an IPPool; name must be unique across the package.
func ippool(name string, addrs ...string) *v1alpha1.IPPool {
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	return p
}

// lbService builds a LoadBalancer Service on port 80 without NodePorts.
func lbService(ns, name string, mutate ...func(*corev1.Service)) *corev1.Service {
	no := false
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Ports:                         []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
			Selector:                      map[string]string{"app": name},
			AllocateLoadBalancerNodePorts: &no,
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func create(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := testenv.Get(t).Client.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
}

func getService(t testing.TB, ns, name string) *corev1.Service {
	t.Helper()
	var s corev1.Service
	if err := testenv.Get(t).Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// ingressIPs lists the addresses in a Service's status.
func ingressIPs(s *corev1.Service) []string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// waitCondition waits until the Service's IPAllocated condition has the
// reason, and returns the Service.
func waitCondition(t testing.TB, ns, name, reason string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	testutil.Eventually(t, fmt.Sprintf("Service %s/%s to have reason %s", ns, name, reason), func() (bool, string) {
		svc = getService(t, ns, name)
		c := meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated)
		if c == nil {
			return false, "no condition yet"
		}
		return c.Reason == reason, fmt.Sprintf("condition %s %s: %s; ingress %v", c.Status, c.Reason, c.Message, ingressIPs(svc))
	})
	return svc
}

// waitIPs waits until the Service shows exactly these addresses.
func waitIPs(t testing.TB, ns, name string, want ...string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	testutil.Eventually(t, fmt.Sprintf("Service %s/%s to show %v", ns, name, want), func() (bool, string) {
		svc = getService(t, ns, name)
		got := ingressIPs(svc)
		return strings.Join(got, ",") == strings.Join(want, ","), fmt.Sprintf("shows %v, condition %v", got, meta.FindStatusCondition(svc.Status.Conditions, assigner.ConditionIPAllocated))
	})
	return svc
}

// waitEvent waits for an event with the reason on the object.
func waitEvent(t testing.TB, ns, name, reason, contains string) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("event %s on %s/%s", reason, ns, name), func() (bool, string) {
		var list corev1.EventList
		if err := testenv.Get(t).Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Name == name {
				seen = append(seen, e.Reason+": "+e.Message)
				if e.Reason == reason && strings.Contains(e.Message, contains) {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("events: %v", seen)
	})
}

// staticConfig resolves pools for a controller run with --config-file.
func staticConfig(t testing.TB, pools ...*v1alpha1.IPPool) *config.Config {
	t.Helper()
	var snap config.Snapshot
	for _, p := range pools {
		snap.IPPools = append(snap.IPPools, *p)
	}
	cfg, problems := config.Resolve(snap)
	if len(problems) > 0 {
		t.Fatal(problems.Err())
	}
	return cfg
}
