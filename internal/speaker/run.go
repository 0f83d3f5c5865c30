package speaker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/cmdutil"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/kube"
	"github.com/ironlb/ironlb/internal/layer2"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/planner"
)

// RunOptions are everything Run needs besides the API server.
type RunOptions struct {
	Options
	// MetricsAddr is where /metrics is served ("0": nowhere), and
	// MetricsServing how it is protected (the zero value: HTTPS for
	// callers the API server authorizes).
	MetricsAddr    string
	MetricsServing cmdutil.MetricsServing
	// HealthAddr is where /healthz and /readyz are served; the speaker
	// runs in the host network, so the binary's default is loopback,
	// where the kubelet's probes reach it and nothing off the node does.
	HealthAddr string
	// Membership configures memberlist; its Key, Log and Metrics are
	// filled in by Run.
	Membership membership.Options
	// KeyFile holds the memberlist key, and SecondaryKeysFile, when set,
	// the keys accepted besides it (see loadKey); when KeyFile is empty,
	// KeySecret (namespace/name, data keys "key" and "secondaryKeys")
	// holds them. Both empty: gossip is not encrypted, and Run says so.
	KeyFile, SecondaryKeysFile, KeySecret string
	// Join lists speakers to join; when empty, the speaker pods in
	// PodNamespace matching PodSelector are found through the API server.
	Join         []string
	PodNamespace string
	PodSelector  labels.Selector
	Layer2       layer2.Options
	// BGP configures the BGP side; its Log, Metrics and Changed are
	// filled in by Run.
	BGP bgp.Options
	// Dataplane configures forwarding, unless ForwardingMode is none; its
	// Log and Metrics are filled in by Run.
	Dataplane dataplane.Options
	// Linger is how long a stopping speaker keeps answering after it left
	// the memberlist cluster, so its successors take over first.
	Linger time.Duration
	// Fencing makes layer 2 answer only while the alive speakers are a
	// quorum of the known ones (Options.Known, which Run fills in).
	Fencing bool
}

// Run runs the speaker until ctx ends, then leaves the memberlist cluster,
// keeps answering for Linger while the others take over, and stops.
//
// It builds the manager and the edges (assemble), starts the edges under
// their three lifetimes (startEdges), runs the manager until ctx ends or
// it fails, and then stops the edges in the order that hands this node's
// addresses over cleanly (lifetimes.stop).
func Run(ctx context.Context, cfg *rest.Config, o RunOptions) error {
	mgr, err := newManager(cfg, o)
	if err != nil {
		return err
	}
	p, err := assemble(ctx, mgr, &o)
	if err != nil {
		return err
	}
	if err := addChecks(mgr, p.members); err != nil {
		return err
	}
	l := startEdges(ctx, p)
	defer l.cancel()
	if err := p.sp.SetupWithManager(mgr); err != nil {
		return err
	}
	left := joinOnceSynced(l.run, o, mgr, p)
	if err := watchSpeakerPods(ctx, o, mgr, p); err != nil {
		return err
	}

	o.Log.Info("starting", "node", o.Node, "class", o.Class.Name, "requireClass", o.Class.Require, "configFile", o.Static != nil, "fencing", o.Fencing)
	mgrErr := mgr.Start(ctx)
	if mgrErr != nil {
		o.Log.Error("the manager stopped", "error", mgrErr)
	}
	edgeErr := l.stop(o, left)
	clearStatus(mgr.GetClient(), o.Node)
	return errors.Join(mgrErr, edgeErr)
}

// cacheOptions are the speaker's informer cache options: the shared lean
// transforms (kube.CacheOptions) and, when speakers find each other as
// pods, only the speaker pods.
func cacheOptions(o RunOptions) cache.Options {
	opts := kube.CacheOptions()
	if len(o.Join) == 0 && o.PodNamespace != "" {
		opts.ByObject[&corev1.Pod{}] = cache.ByObject{Namespaces: map[string]cache.Config{o.PodNamespace: {}}, Label: o.PodSelector}
	}
	return opts
}

// newManager makes the manager whose caches and client the speaker reads
// through, and which serves metrics and health.
func newManager(cfg *rest.Config, o RunOptions) (manager.Manager, error) {
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return nil, err
	}
	metricsOpts, err := o.MetricsServing.ServerOptions(o.MetricsAddr)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(o.Log.Handler()),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.HealthAddr,
		Cache:                  cacheOptions(o),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	return mgr, nil
}

// parts are what Run wires together: the speaker and the edges it drives.
type parts struct {
	sp        *Speaker
	announcer *layer2.Announcer
	bgp       *bgp.Server
	dp        *dataplane.Dataplane // nil when not forwarding
	members   *clusterRef
	known     *known // nil without fencing
}

// assemble builds the speaker and its edges, filling in the parts of o
// that they share (loggers, metrics, callbacks into the speaker).
func assemble(ctx context.Context, mgr manager.Manager, o *RunOptions) (*parts, error) {
	p := &parts{members: &clusterRef{}}
	if o.Events == nil {
		o.Events = mgr.GetEventRecorder("ironlb-speaker")
	}
	o.Layer2.Log = o.Log.With("component", "layer2")
	o.Layer2.Metrics = layer2.NewMetrics(ctrlmetrics.Registry)
	o.Layer2.Claimed = func(a netip.Addr, mac net.HardwareAddr) bool { return p.sp.Claimed(a, mac) }
	p.announcer = layer2.New(o.Layer2)
	o.Membership.Log = o.Log.With("component", "memberlist")
	o.Membership.Metrics = membership.NewMetrics(ctrlmetrics.Registry)
	o.Membership.Meta = ClaimMeta(o.ClaimVersion)
	o.Announcer, o.Members = p.announcer, p.members
	if o.Fencing {
		p.known = newKnown(*o, mgr.GetClient(), p.members)
		o.Known = p.known.get
	}
	o.BGP.Log = o.Log.With("component", "bgp")
	o.BGP.Metrics = bgp.NewMetrics(ctrlmetrics.Registry)
	o.BGP.Changed = func() { p.sp.Trigger() }
	p.bgp = bgp.New(o.BGP)
	o.Options.BGP, o.Secrets = p.bgp, mgr.GetAPIReader()
	if o.ForwardingMode != planner.ForwardNone {
		o.Dataplane.Log = o.Log.With("component", "dataplane")
		o.Dataplane.Metrics = dataplane.NewMetrics(ctrlmetrics.Registry)
		dp, err := dataplane.New(o.Dataplane)
		if err != nil {
			return nil, fmt.Errorf("forwarding mode %s: %w", o.ForwardingMode, err)
		}
		p.dp, o.Forwarding = dp, dp
	} else if err := dataplane.Cleanup(ctx, dataplane.Options{}); err != nil {
		// Rules left by an earlier run in another mode would still take
		// traffic; say so, but a node without nft has none.
		o.Log.Warn("forwarding mode none: could not remove ironlb's nftables tables", "error", err)
	}
	p.sp = New(o.Options)
	return p, nil
}

// addChecks serves /healthz and /readyz. Ready means joined: a speaker
// that has not yet joined the others (nor concluded that it is alone)
// answers nothing.
func addChecks(mgr manager.Manager, members *clusterRef) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("memberlist", func(*http.Request) error {
		if !members.Joined() {
			return errors.New("not a member of the speakers' memberlist cluster yet")
		}
		return nil
	})
}

// lifetimes are the three nested lifetimes of a running speaker's edges,
// and the results of the edges running under them.
type lifetimes struct {
	// run ends with Run's ctx or as soon as the manager stops, which it
	// does on its own when it fails (a port taken, say): everything else
	// must then stop too, and Run return the manager's error. Forwarding
	// and memberlist run under it.
	run     context.Context
	runStop context.CancelFunc
	// bgpStop ends BGP, which withdraws everything as soon as the speaker
	// is told to stop (or the manager fails).
	bgpStop context.CancelFunc
	// annStop ends the announcer, which outlives everything else: it must
	// keep answering while the memberlist leave spreads.
	annStop context.CancelFunc

	annDone, bgpDone, dpDone chan error
}

// startEdges runs the announcer, BGP and forwarding, each under its
// lifetime.
func startEdges(ctx context.Context, p *parts) *lifetimes {
	l := &lifetimes{annDone: make(chan error, 1), bgpDone: make(chan error, 1), dpDone: make(chan error, 1)}
	var annCtx, bgpCtx context.Context
	annCtx, l.annStop = context.WithCancel(context.WithoutCancel(ctx))
	go func() { l.annDone <- p.announcer.Run(annCtx) }()
	bgpCtx, l.bgpStop = context.WithCancel(ctx)
	go func() { l.bgpDone <- p.bgp.Run(bgpCtx) }()
	l.run, l.runStop = context.WithCancel(ctx)
	// Forwarding rules stay when the speaker stops: connections keep
	// flowing while it restarts. speaker --cleanup removes them.
	if p.dp != nil {
		go func() { l.dpDone <- p.dp.Run(l.run) }()
	} else {
		l.dpDone <- nil
	}
	return l
}

// cancel ends every lifetime at once, without waiting: for a Run that
// fails before the manager starts.
func (l *lifetimes) cancel() {
	l.runStop()
	l.bgpStop()
	l.annStop()
}

// stop hands this node's addresses over and stops the edges: memberlist
// leaves and BGP withdraws first, the announcer keeps answering for
// Linger after a leave so that the successors take over, and stops last.
// left waits for memberlist to have left and says whether it had joined.
func (l *lifetimes) stop(o RunOptions, left func() bool) error {
	l.runStop()
	l.bgpStop()
	if left() && o.Linger > 0 {
		o.Log.Info("left the memberlist cluster; answering a little longer while successors take over", "linger", o.Linger)
		time.Sleep(o.Linger)
	}
	l.annStop()
	annErr := <-l.annDone
	bgpErr := <-l.bgpDone
	dpErr := <-l.dpDone
	return errors.Join(annErr, bgpErr, dpErr)
}

// joinOnceSynced runs memberlist under ctx once the speaker's caches are
// synced. The function it returns waits until memberlist has left (or
// never joined) and says whether it ran.
func joinOnceSynced(ctx context.Context, o RunOptions, mgr manager.Manager, p *parts) (left func() bool) {
	var joined sync.WaitGroup
	var wasMember bool // written before joined.Done, read after Wait
	joined.Add(1)
	go func() {
		defer joined.Done()
		select {
		case <-ctx.Done():
			return
		case <-p.sp.synced:
		}
		wasMember = runMembership(ctx, o, mgr.GetAPIReader(), mgr.GetClient(), p.members, p.sp)
	}()
	return func() bool {
		joined.Wait()
		return wasMember
	}
}

// watchSpeakerPods, when fencing reads the known speakers from the
// speaker pods and their Nodes, makes the known speakers be read again
// and asks for a sync on every change of a speaker pod and on every Node
// added, deleted or turning (not) ready: each may change the quorum.
func watchSpeakerPods(ctx context.Context, o RunOptions, mgr manager.Manager, p *parts) error {
	if p.known == nil || p.known.static {
		return nil
	}
	changed := func(any) {
		p.known.invalidate()
		p.sp.Trigger()
	}
	pods, err := mgr.GetCache().GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return fmt.Errorf("watching the speaker pods: %w", err)
	}
	if _, err := pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: changed, UpdateFunc: func(_, new any) { changed(new) }, DeleteFunc: changed,
	}); err != nil {
		return err
	}
	nodes, err := mgr.GetCache().GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return fmt.Errorf("watching the Nodes: %w", err)
	}
	_, err = nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: changed,
		UpdateFunc: func(old, new any) {
			if readyChanged(old, new) {
				changed(new)
			}
		},
		DeleteFunc: changed,
	})
	return err
}

// clearStatus empties this node's NodeAnnouncement on the way out, best
// effort: the node no longer announces anything.
func clearStatus(c client.Client, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w := newStatusWriter(c, node, nil)
	_ = w.write(ctx, v1alpha1.NodeAnnouncementStatus{})
}

// SetupWithManager makes the manager run the speaker: once the caches
// are synced, the sync loop runs until the manager stops.
func (s *Speaker) SetupWithManager(mgr manager.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &discoveryv1.EndpointSlice{}, sliceServiceField, sliceService); err != nil {
		return fmt.Errorf("indexing EndpointSlices by Service: %w", err)
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if err := s.watch(ctx, mgr.GetCache()); err != nil {
			return err
		}
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return ctx.Err()
		}
		close(s.synced)
		s.Loop(ctx, mgr.GetClient(), mgr.GetClient())
		return nil
	}))
}

// watch asks for a sync on every change of what the plan reads, saying
// what changed: a Service (by key), a Node, the configuration.
func (s *Speaker) watch(ctx context.Context, c cache.Cache) error {
	type watched struct {
		obj client.Object
		// changed records a change of obj; nil: a Node.
		changed func(obj any)
	}
	config := func(any) { s.changed(dirtySet{config: true}) }
	objs := []watched{
		{&corev1.Service{}, func(obj any) { s.serviceChanged(serviceKey(obj)) }},
		{&discoveryv1.EndpointSlice{}, func(obj any) {
			if key := sliceServiceKey(obj); key != "" {
				s.serviceChanged(key)
			}
		}},
		{&corev1.Node{}, nil},
	}
	if s.opts.Static == nil {
		objs = append(objs, watched{&v1alpha1.IPPool{}, config}, watched{&v1alpha1.L2Advertisement{}, config},
			watched{&v1alpha1.BGPPeer{}, config}, watched{&v1alpha1.BGPAdvertisement{}, config})
	}
	for _, o := range objs {
		inf, err := c.GetInformer(ctx, o.obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", o.obj, err)
		}
		changed := o.changed
		if changed == nil {
			changed = func(any) { s.changed(dirtySet{nodes: true}) }
		}
		isNode := o.changed == nil
		_, isService := o.obj.(*corev1.Service)
		_, isSlice := o.obj.(*discoveryv1.EndpointSlice)
		isConfig := !isNode && !isService && !isSlice
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: changed,
			UpdateFunc: func(old, new any) {
				if isNode && !nodeChanged(old, new) {
					if readyChanged(old, new) {
						s.Trigger() // the known speakers, for fencing
					}
					return // heartbeats
				}
				if isConfig && !specChanged(old, new) {
					return // the controller's status of an IPPool, say
				}
				changed(new)
			},
			DeleteFunc: changed,
		}); err != nil {
			return err
		}
	}
	return nil
}

// serviceKey is the namespace/name of a Service, or of the Service a
// deletion tombstone stands for.
func serviceKey(obj any) string {
	key, _ := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	return key
}

// sliceServiceKey is the namespace/name of the Service an EndpointSlice
// (or its deletion tombstone) belongs to; "" for a slice of none.
func sliceServiceKey(obj any) string {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || es.Labels[discoveryv1.LabelServiceName] == "" {
		return ""
	}
	return es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
}

// nodeChanged tells whether a Node update matters to the plan: its labels
// or its NetworkUnavailable condition.
func nodeChanged(old, new any) bool {
	a, ok1 := old.(*corev1.Node)
	b, ok2 := new.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	pa, pb := nodeFor(a), nodeFor(b)
	return pa.NetworkUnavailable != pb.NetworkUnavailable || !labels.Equals(pa.Labels, pb.Labels)
}

// specChanged tells whether an update of one of ironlb's objects may
// change the configuration: its spec (the generation), labels or
// annotations. The speaker reads nothing else of them; the controller
// writes IPPool status all the time while it assigns addresses.
func specChanged(old, new any) bool {
	a, ok1 := old.(metav1.Object)
	b, ok2 := new.(metav1.Object)
	return !ok1 || !ok2 || a.GetGeneration() != b.GetGeneration() ||
		!maps.Equal(a.GetLabels(), b.GetLabels()) || !maps.Equal(a.GetAnnotations(), b.GetAnnotations())
}

// readyChanged tells whether a Node update changed its Ready condition.
func readyChanged(old, new any) bool {
	a, ok1 := old.(*corev1.Node)
	b, ok2 := new.(*corev1.Node)
	return !ok1 || !ok2 || nodeReady(a) != nodeReady(b)
}

// nodeEvent records an event on this speaker's Node.
func (s *Speaker) nodeEvent(eventType, reason, format string, args ...any) {
	if s.opts.Events == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Node", Name: s.opts.Node, UID: types.UID(s.opts.Node), APIVersion: "v1"}
	s.opts.Events.Eventf(ref, nil, eventType, reason, "Announce", format, args...)
}
