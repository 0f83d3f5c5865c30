package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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

// keyRetry is how often an unusable memberlist key is read again, and
// memberlist started again after it failed (a variable for tests).
var keyRetry = 10 * time.Second

// keyReadTimeout bounds one read of the memberlist key Secret.
const keyReadTimeout = 10 * time.Second

// Run runs the speaker until ctx ends, then leaves the memberlist cluster,
// keeps answering for Linger while the others take over, and stops.
func Run(ctx context.Context, cfg *rest.Config, o RunOptions) error {
	scheme, err := cmdutil.Scheme()
	if err != nil {
		return err
	}
	// The speaker never reads managedFields; with thousands of Services
	// and EndpointSlices cached they are much of its memory.
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if len(o.Join) == 0 && o.PodNamespace != "" {
		cacheOpts.ByObject = map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Namespaces: map[string]cache.Config{o.PodNamespace: {}}, Label: o.PodSelector},
		}
	}
	metricsOpts, err := o.MetricsServing.ServerOptions(o.MetricsAddr)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(o.Log.Handler()),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.HealthAddr,
		Cache:                  cacheOpts,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if o.Events == nil {
		o.Events = mgr.GetEventRecorder("ironlb-speaker")
	}
	o.Layer2.Log = o.Log.With("component", "layer2")
	o.Layer2.Metrics = layer2.NewMetrics(ctrlmetrics.Registry)
	var sp *Speaker
	o.Layer2.Claimed = func(a netip.Addr, mac net.HardwareAddr) bool { return sp.Claimed(a, mac) }
	announcer := layer2.New(o.Layer2)
	o.Membership.Log = o.Log.With("component", "memberlist")
	o.Membership.Metrics = membership.NewMetrics(ctrlmetrics.Registry)
	o.Membership.Meta = ClaimMeta(o.ClaimVersion)
	var members clusterRef
	o.Announcer, o.Members = announcer, &members
	if o.Fencing {
		o.Known = newKnown(o, mgr.GetClient(), &members).get
	}
	o.BGP.Log = o.Log.With("component", "bgp")
	o.BGP.Metrics = bgp.NewMetrics(ctrlmetrics.Registry)
	o.BGP.Changed = func() { sp.Trigger() }
	bgpServer := bgp.New(o.BGP)
	o.Options.BGP, o.Secrets = bgpServer, mgr.GetAPIReader()
	var dp *dataplane.Dataplane
	if o.ForwardingMode != planner.ForwardNone {
		o.Dataplane.Log = o.Log.With("component", "dataplane")
		o.Dataplane.Metrics = dataplane.NewMetrics(ctrlmetrics.Registry)
		if dp, err = dataplane.New(o.Dataplane); err != nil {
			return fmt.Errorf("forwarding mode %s: %w", o.ForwardingMode, err)
		}
		o.Forwarding = dp
	} else if err := dataplane.Cleanup(ctx, dataplane.Options{}); err != nil {
		// Rules left by an earlier run in another mode would still take
		// traffic; say so, but a node without nft has none.
		o.Log.Warn("forwarding mode none: could not remove ironlb's nftables tables", "error", err)
	}
	sp = New(o.Options)

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready means joined: a speaker that has not yet joined the others
	// (nor concluded that it is alone) answers nothing.
	if err := mgr.AddReadyzCheck("memberlist", func(*http.Request) error {
		if !members.Joined() {
			return errors.New("not a member of the speakers' memberlist cluster yet")
		}
		return nil
	}); err != nil {
		return err
	}

	// The announcer outlives everything else: it must keep answering
	// while the memberlist leave spreads.
	annCtx, annStop := context.WithCancel(context.WithoutCancel(ctx))
	defer annStop()
	annDone := make(chan error, 1)
	go func() { annDone <- announcer.Run(annCtx) }()
	// BGP withdraws everything as soon as the speaker is told to stop
	// (or the manager fails).
	bgpCtx, bgpStop := context.WithCancel(ctx)
	defer bgpStop()
	bgpDone := make(chan error, 1)
	go func() { bgpDone <- bgpServer.Run(bgpCtx) }()
	// runCtx ends with ctx or as soon as the manager stops, which it does
	// on its own when it fails (a port taken, say): everything else must
	// then stop too, and Run return the manager's error.
	runCtx, runStop := context.WithCancel(ctx)
	defer runStop()
	// Forwarding rules stay when the speaker stops: connections keep
	// flowing while it restarts. speaker --cleanup removes them.
	dpDone := make(chan error, 1)
	if dp != nil {
		go func() { dpDone <- dp.Run(runCtx) }()
	} else {
		dpDone <- nil
	}

	if err := sp.SetupWithManager(mgr); err != nil {
		return err
	}
	var joined sync.WaitGroup
	var wasMember bool // written before joined.Done, read after Wait
	joined.Add(1)
	go func() {
		defer joined.Done()
		select {
		case <-runCtx.Done():
			return
		case <-sp.synced:
		}
		wasMember = runMembership(runCtx, o, mgr.GetAPIReader(), mgr.GetClient(), &members, sp)
	}()
	if o.Fencing && len(o.Join) == 0 && o.PodNamespace != "" {
		// The known speakers are read from the speaker pods and their
		// Nodes: a change of either may change the quorum.
		inf, err := mgr.GetCache().GetInformer(ctx, &corev1.Pod{})
		if err != nil {
			return fmt.Errorf("watching the speaker pods: %w", err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { sp.Trigger() }, UpdateFunc: func(any, any) { sp.Trigger() }, DeleteFunc: func(any) { sp.Trigger() },
		}); err != nil {
			return err
		}
	}

	o.Log.Info("starting", "node", o.Node, "class", o.Class.Name, "requireClass", o.Class.Require, "configFile", o.Static != nil, "fencing", o.Fencing)
	mgrErr := mgr.Start(ctx)
	if mgrErr != nil {
		o.Log.Error("the manager stopped", "error", mgrErr)
	}
	runStop()
	bgpStop()
	joined.Wait() // memberlist has left (or never joined)
	if o.Linger > 0 && wasMember {
		o.Log.Info("left the memberlist cluster; answering a little longer while successors take over", "linger", o.Linger)
		time.Sleep(o.Linger)
	}
	annStop()
	annErr := <-annDone
	bgpErr := <-bgpDone
	dpErr := <-dpDone
	clearStatus(mgr.GetClient(), o.Node)
	return errors.Join(mgrErr, annErr, bgpErr, dpErr)
}

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

// watch asks for a sync on every change of what the plan reads.
func (s *Speaker) watch(ctx context.Context, c cache.Cache) error {
	type watched struct {
		obj    client.Object
		config bool // an ironlb configuration kind
	}
	objs := []watched{{&corev1.Service{}, false}, {&discoveryv1.EndpointSlice{}, false}, {&corev1.Node{}, false}}
	if s.opts.Static == nil {
		objs = append(objs, watched{&v1alpha1.IPPool{}, true}, watched{&v1alpha1.L2Advertisement{}, true},
			watched{&v1alpha1.BGPPeer{}, true}, watched{&v1alpha1.BGPAdvertisement{}, true})
	}
	for _, o := range objs {
		inf, err := c.GetInformer(ctx, o.obj)
		if err != nil {
			return fmt.Errorf("watching %T: %w", o.obj, err)
		}
		isConfig := o.config
		_, isNode := o.obj.(*corev1.Node)
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.Changed(isConfig) },
			UpdateFunc: func(old, new any) {
				if isNode && !nodeChanged(old, new) {
					if readyChanged(old, new) {
						s.Trigger() // the known speakers, for fencing
					}
					return // heartbeats
				}
				s.Changed(isConfig)
			},
			DeleteFunc: func(any) { s.Changed(isConfig) },
		}); err != nil {
			return err
		}
	}
	return nil
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
