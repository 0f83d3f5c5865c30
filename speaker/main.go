// Command speaker runs on every node: it announces the addresses the
// controller assigned (ARP/NDP or BGP) and forwards their traffic. It
// parses its flags into Options and runs; the work lives in internal
// packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/ironlb/ironlb/internal/bgp"
	"github.com/ironlb/ironlb/internal/buildinfo"
	"github.com/ironlb/ironlb/internal/cmdutil"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/dataplane"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/layer2"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/planner"
	"github.com/ironlb/ironlb/internal/speaker"
)

// Options are the speaker's settings, from flags and the environment.
type Options struct {
	NodeName     string
	Kubeconfig   string
	ConfigFile   string
	LBClass      string
	RequireClass bool

	MemberlistBindAddr string
	MemberlistPort     int
	MemberlistJoin     string
	MemberlistKeyFile  string
	MemberlistKeys2    string
	MemberlistSecret   string
	MemberlistJoinWait time.Duration
	Fencing            string
	PodNamespace       string
	PodSelector        string
	LeaveGrace         time.Duration
	Handoff            time.Duration
	ClaimVersion       int
	ClaimSwitchDelay   time.Duration
	ProbeInterval      time.Duration
	ProbeTimeout       time.Duration
	SuspicionMult      int
	GossipInterval     time.Duration
	GratuitousRepeat   time.Duration
	BGPConnectRetry    time.Duration
	BGPWithdrawWait    time.Duration
	ForwardingMode     string
	ForwardingResync   time.Duration
	Cleanup            bool
	MetricsAddr        string
	Metrics            cmdutil.MetricsServing
	HealthAddr         string
	Log                cmdutil.LogOptions
	API                cmdutil.APIOptions
}

func (o *Options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "name of the Node this speaker runs on (default: $NODE_NAME)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty means in-cluster configuration")
	fs.StringVar(&o.ConfigFile, "config-file", "", "read IPPools and advertisements from this multi-document YAML file instead of the cluster's custom resources")
	fs.StringVar(&o.LBClass, "lb-class", "ironlb.io/lb", "spec.loadBalancerClass of the Services to announce")
	fs.BoolVar(&o.RequireClass, "require-class", false, "announce only Services whose loadBalancerClass is --lb-class, not those without a class")
	fs.StringVar(&o.MemberlistBindAddr, "memberlist-bind-address", os.Getenv("POD_IP"), "address memberlist listens on and others reach this speaker at (default: $POD_IP, else the Node's first InternalIP)")
	fs.IntVar(&o.MemberlistPort, "memberlist-port", 7947, "TCP and UDP port of memberlist (7947, not memberlist's usual 7946, which MetalLB's speakers hold on the same nodes)")
	fs.StringVar(&o.MemberlistJoin, "memberlist-join", "", "comma-separated addresses of speakers to join; empty means discover speaker pods by label")
	fs.StringVar(&o.MemberlistKeyFile, "memberlist-key-file", "", "file holding the key that encrypts memberlist traffic")
	fs.StringVar(&o.MemberlistKeys2, "memberlist-secondary-keys-file", "", "file holding further keys (base64, separated by whitespace or commas) accepted besides --memberlist-key-file's while a key is rotated; never sent with")
	fs.DurationVar(&o.MemberlistJoinWait, "memberlist-join-timeout", membership.DefaultJoinTimeout, "how long a starting speaker that reaches none of the speakers it knows of stays silent before it concludes that it is alone and answers for what it owns")
	fs.StringVar(&o.Fencing, "fencing", "quorum", "quorum: answer in layer 2 only while this speaker sees a majority of the known speakers (the speaker pods the API server reports ready), so that one side of a partition answers; off: answer whatever the others")
	fs.StringVar(&o.MemberlistSecret, "memberlist-secret", "ironlb-system/ironlb-memberlist", "namespace/name of the Secret holding the memberlist key, when --memberlist-key-file is not set")
	fs.StringVar(&o.PodNamespace, "pod-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the speaker pods, searched for speakers to join when --memberlist-join is empty (default: $POD_NAMESPACE)")
	fs.StringVar(&o.PodSelector, "memberlist-pod-selector", "app.kubernetes.io/name=ironlb,app.kubernetes.io/component=speaker", "label selector of the speaker pods to join when --memberlist-join is empty")
	fs.DurationVar(&o.LeaveGrace, "leave-grace", time.Second, "on a graceful stop, how long to keep answering after leaving the memberlist cluster, while the successors take over")
	fs.DurationVar(&o.Handoff, "handoff", 500*time.Millisecond, "how long to keep answering for an address another speaker now ranks first for (one that just joined), while it starts answering; 0 stops at once")
	fs.IntVar(&o.ClaimVersion, "claim-version", int(election.LatestClaim), fmt.Sprintf("newest layer 2 claim version (how owners are ranked) this speaker speaks, from %d to %d; the speakers rank with the oldest any of them speaks. 1 is the claim of releases before versions, which puts a pool's addresses on few nodes; set it only to hold a cluster on it", election.ClaimV1, election.LatestClaim))
	fs.DurationVar(&o.ClaimSwitchDelay, "claim-switch-delay", 2*time.Second, "when the speakers' agreed claim version changes (the last speaker of an older release left, or one joined), how long addresses whose owner differs between the versions are answered by no node, so that two nodes never answer together while the news spreads")
	fs.DurationVar(&o.ProbeInterval, "memberlist-probe-interval", membership.DefaultProbeInterval, "how often each speaker probes another for liveness")
	fs.DurationVar(&o.ProbeTimeout, "memberlist-probe-timeout", membership.DefaultProbeTimeout, "how long a probe waits for an answer")
	fs.IntVar(&o.SuspicionMult, "memberlist-suspicion-mult", membership.DefaultSuspicionMult, "how many probe intervals (scaled by cluster size) a suspected speaker has to refute before it is declared dead")
	fs.DurationVar(&o.GossipInterval, "memberlist-gossip-interval", membership.DefaultGossipInterval, "how often gossip messages are sent")
	fs.DurationVar(&o.GratuitousRepeat, "gratuitous-repeat", 0, "repeat gratuitous ARP / unsolicited NA for owned addresses this often (0: only when ownership is gained)")
	fs.DurationVar(&o.BGPConnectRetry, "bgp-connect-retry", 5*time.Second, "how long a BGP session waits between connection attempts (up to as much again is added at random; after an established session drops, GoBGP first waits a fixed 5s)")
	fs.DurationVar(&o.BGPWithdrawWait, "bgp-withdraw-wait", 2*time.Second, "on a graceful stop, how long at most to wait for BGP withdrawals to be sent before closing the sessions")
	fs.StringVar(&o.ForwardingMode, "forwarding-mode", "endpoints", "how traffic for announced addresses is forwarded: endpoints (DNAT to ready endpoints), nodeport (DNAT to the Service's NodePort) or none (another component, such as kube-proxy, handles it)")
	fs.DurationVar(&o.ForwardingResync, "forwarding-resync", time.Hour, "how often the forwarding rules are written in full (they are written in part on every change), which repairs anything changed behind ironlb's back")
	fs.BoolVar(&o.Cleanup, "cleanup", false, "remove ironlb's nftables tables (every forwarding rule ironlb made) and exit")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":7474", "address of the Prometheus metrics endpoint (/metrics, HTTPS for callers the API server authorizes unless --metrics-insecure); 0 disables it")
	o.Metrics.AddFlags(fs)
	// The speaker runs in the host network: on every address of the node
	// the probes would answer anyone who reaches it. The kubelet probes
	// host-network pods from the node itself, so loopback is enough.
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", "127.0.0.1:7475", "address of the /healthz and /readyz endpoints (no authentication; the default answers only on the node itself, where the kubelet probes from)")
	o.Log.AddFlags(fs)
	o.API.AddFlags(fs, 50, 100)
}

func (o *Options) validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name (or $NODE_NAME) must name this speaker's Node"))
	}
	if o.MemberlistPort < 1 || o.MemberlistPort > 65535 {
		errs = append(errs, fmt.Errorf("--memberlist-port %d: must be from 1 to 65535", o.MemberlistPort))
	}
	if o.ProbeInterval <= 0 || o.ProbeTimeout <= 0 || o.ProbeTimeout > o.ProbeInterval {
		errs = append(errs, fmt.Errorf("--memberlist-probe-timeout (%s) must be positive and not longer than --memberlist-probe-interval (%s)", o.ProbeTimeout, o.ProbeInterval))
	}
	if o.SuspicionMult < 1 {
		errs = append(errs, fmt.Errorf("--memberlist-suspicion-mult %d: must be at least 1", o.SuspicionMult))
	}
	if o.GossipInterval <= 0 || o.GratuitousRepeat < 0 {
		errs = append(errs, errors.New("--memberlist-gossip-interval must be positive and --gratuitous-repeat not negative"))
	}
	if o.MemberlistBindAddr != "" {
		if _, err := netip.ParseAddr(o.MemberlistBindAddr); err != nil {
			errs = append(errs, fmt.Errorf("--memberlist-bind-address %q: must be an IP address", o.MemberlistBindAddr))
		}
	}
	if o.MemberlistJoin == "" {
		if o.PodNamespace == "" {
			errs = append(errs, errors.New("--memberlist-join is empty, so speakers are found as pods, which needs --pod-namespace (or $POD_NAMESPACE)"))
		}
		if _, err := labels.Parse(o.PodSelector); err != nil || o.PodSelector == "" {
			errs = append(errs, fmt.Errorf("--memberlist-pod-selector %q: must be a non-empty label selector", o.PodSelector))
		}
	}
	if _, err := election.ParseClaimVersion(o.ClaimVersion); err != nil {
		errs = append(errs, fmt.Errorf("--claim-version: %w", err))
	}
	if o.ClaimSwitchDelay < 0 {
		errs = append(errs, fmt.Errorf("--claim-switch-delay %s: must not be negative", o.ClaimSwitchDelay))
	}
	if o.LeaveGrace < 0 || o.Handoff < 0 {
		errs = append(errs, errors.New("--leave-grace and --handoff must not be negative"))
	}
	if o.Fencing != "quorum" && o.Fencing != "off" {
		errs = append(errs, fmt.Errorf("--fencing %q: must be quorum or off", o.Fencing))
	}
	if o.MemberlistJoinWait <= 0 {
		errs = append(errs, fmt.Errorf("--memberlist-join-timeout %s: must be positive", o.MemberlistJoinWait))
	}
	if o.BGPConnectRetry < time.Second || o.BGPWithdrawWait <= 0 {
		errs = append(errs, fmt.Errorf("--bgp-connect-retry (%s) must be at least 1s and --bgp-withdraw-wait (%s) positive", o.BGPConnectRetry, o.BGPWithdrawWait))
	}
	if !slices.Contains(planner.ForwardingModes, planner.ForwardingMode(o.ForwardingMode)) {
		errs = append(errs, fmt.Errorf("--forwarding-mode %q: must be one of %v", o.ForwardingMode, planner.ForwardingModes))
	}
	if o.ForwardingResync < time.Minute {
		errs = append(errs, fmt.Errorf("--forwarding-resync %s: must be at least 1m", o.ForwardingResync))
	}
	errs = append(errs, o.Metrics.Validate())
	return errors.Join(errs...)
}

func main() {
	var o Options
	fs := flag.NewFlagSet("speaker", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: speaker [flags]\n\nAnnounces the addresses of LoadBalancer Services from this node (ARP/NDP or BGP) and forwards their traffic.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	o.addFlags(fs)
	_ = fs.Parse(os.Args[1:])
	if err := run(context.Background(), &o); err != nil {
		fmt.Fprintf(os.Stderr, "speaker: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *Options) error {
	if o.Cleanup {
		if err := dataplane.Cleanup(ctx, dataplane.Options{}); err != nil {
			return err
		}
		fmt.Println("removed ironlb's nftables tables (ip ironlb, ip6 ironlb)")
		return nil
	}
	if err := o.validate(); err != nil {
		return err
	}
	log, static, restCfg, err := cmdutil.Start(ctx, o.Log, o.API, o.ConfigFile, o.Kubeconfig)
	if err != nil {
		return err
	}
	o.Metrics.WarnInsecure(log, o.MetricsAddr)
	// The manager serves controller-runtime's registry, where the rest of
	// the binary's metrics go too.
	build := buildinfo.Get()
	log.Info("ironlb speaker", build.LogAttrs()...)
	if err := build.Register(ctrlmetrics.Registry); err != nil {
		return fmt.Errorf("registering ironlb_build_info: %w", err)
	}
	ro := speaker.RunOptions{
		Options: speaker.Options{
			Node:    o.NodeName,
			Class:   config.Class{Name: o.LBClass, Require: o.RequireClass},
			Static:  static,
			Log:     log,
			Handoff: o.Handoff,

			ClaimVersion:     election.ClaimVersion(o.ClaimVersion),
			ClaimSwitchDelay: o.ClaimSwitchDelay,

			ForwardingMode: planner.ForwardingMode(o.ForwardingMode),
		},
		Dataplane:      dataplane.Options{Resync: o.ForwardingResync},
		MetricsAddr:    o.MetricsAddr,
		MetricsServing: o.Metrics,
		HealthAddr:     o.HealthAddr,
		Membership: membership.Options{
			Name:           o.NodeName,
			Port:           o.MemberlistPort,
			ProbeInterval:  o.ProbeInterval,
			ProbeTimeout:   o.ProbeTimeout,
			GossipInterval: o.GossipInterval,
			SuspicionMult:  o.SuspicionMult,
			JoinTimeout:    o.MemberlistJoinWait,
		},
		SecondaryKeysFile: o.MemberlistKeys2,
		Fencing:           o.Fencing == "quorum",
		KeyFile:           o.MemberlistKeyFile,
		KeySecret:         o.MemberlistSecret,
		PodNamespace:      o.PodNamespace,
		Layer2:            layer2.Options{Repeat: o.GratuitousRepeat},
		BGP:               bgp.Options{ConnectRetry: o.BGPConnectRetry, WithdrawWait: o.BGPWithdrawWait},
		Linger:            o.LeaveGrace,
	}
	if o.MemberlistKeyFile != "" {
		ro.KeySecret = ""
	}
	if o.MemberlistBindAddr != "" {
		ro.Membership.BindAddr = netip.MustParseAddr(o.MemberlistBindAddr)
	}
	for _, j := range strings.Split(o.MemberlistJoin, ",") {
		if j = strings.TrimSpace(j); j != "" {
			ro.Join = append(ro.Join, j)
		}
	}
	if len(ro.Join) == 0 {
		ro.PodSelector, _ = labels.Parse(o.PodSelector)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return speaker.Run(ctx, restCfg, ro)
}
