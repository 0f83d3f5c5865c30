package lab

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/crd"
)

// Options describe a lab to start.
type Options struct {
	Name  string
	Nodes int
	// Dir holds the lab's files: certificates, kubeconfig, every log.
	Dir string
	Bin Binaries
	Log *slog.Logger
	// SpeakerArgs are added to the chart's arguments of every speaker
	// the lab starts, when it starts and whenever StartSpeaker starts one
	// again (a lab of old speakers, say: --claim-version=1).
	SpeakerArgs []string
	// Runtime runs the controller and the speakers from the images in
	// Bin.Images (RuntimeImage) or from the binaries (RuntimeBinary, also
	// when empty).
	Runtime Runtime
}

// Lab is a running lab.
type Lab struct {
	Plan      Plan
	Dir       string
	CP        *ControlPlane
	Clientset kubernetes.Interface
	// Speakers says, per node, whether its speaker runs, or why not.
	Speakers map[string]string

	procs []*Process
	// speakers are the speaker processes by node; each is also in procs
	// until it is stopped or killed.
	speakers map[string]*Process
	bin      Binaries
	// speakerArgs are Options.SpeakerArgs.
	speakerArgs []string
	// controller and speaker are the chart's workloads the lab runs.
	controller, speaker workload
	// speakerKubeconfigs are the speakers' kubeconfigs by node, each with
	// a token bound to that node's speaker Pod.
	speakerKubeconfigs map[string]string
	// metricsToken is the scraper's token (setupScraper).
	metricsToken string
	// speakerEnv is the speakers' environment beyond the lab's own: a
	// PATH that holds nft, which they run to program forwarding.
	speakerEnv []string
	// podman runs the controller and the speakers from their images; nil
	// when the lab runs the binaries.
	podman *podman
	// macs maps each node's LAN MAC to its name, filled once by NodeOfMAC.
	macsOnce sync.Once
	// applier applies objects as the cluster's administrator: the chart,
	// the example configuration.
	applier     *Applier
	macs        map[string]string
	agentCancel context.CancelFunc
	agentDone   chan error
}

// Start brings a lab up: first it removes whatever a killed lab of the
// same name left, then the network, the control plane with ironlb's CRDs,
// the FRR router, the node agent, ironlb's chart, the controller and a
// speaker per node (see installChart).
// On error it tears down what it started.
func Start(ctx context.Context, o Options) (l *Lab, err error) {
	p, err := NewPlan(o.Name, o.Nodes)
	if err != nil {
		return nil, err
	}
	if err := Down(p.Name); err != nil {
		return nil, fmt.Errorf("removing the leftovers of an earlier lab %s: %w", p.Name, err)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	l = &Lab{Plan: p, Dir: o.Dir, Speakers: map[string]string{}, speakers: map[string]*Process{}, bin: o.Bin, speakerArgs: slices.Clone(o.SpeakerArgs)}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if err := Up(p); err != nil {
		return l, err
	}
	if l.CP, err = StartControlPlane(ctx, p, o.Dir, o.Bin); err != nil {
		return l, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err == nil {
		// client-go's default limit (5 requests a second) would throttle
		// the measurements and scenarios, not the system under test.
		cfg.QPS, cfg.Burst = 1000, 1000
	}
	if err != nil {
		return l, err
	}
	l.Clientset = kubernetes.NewForConfigOrDie(cfg)
	if err := installCRDs(ctx, apiextensionsclient.NewForConfigOrDie(cfg)); err != nil {
		return l, err
	}
	router, err := StartRouter(p, o.Dir)
	if err != nil {
		return l, err
	}
	l.procs = append(l.procs, router...)

	agentLog, err := os.Create(filepath.Join(o.Dir, "node-agent.log"))
	if err != nil {
		return l, err
	}
	agentCtx, cancel := context.WithCancel(context.Background())
	l.agentCancel, l.agentDone = cancel, make(chan error, 1)
	go func() {
		l.agentDone <- NewAgent(p, l.Clientset, slog.New(slog.NewTextHandler(agentLog, nil))).Run(agentCtx)
		agentLog.Close()
	}()

	if l.controller, l.speaker, err = l.installChart(ctx, cfg, o.Bin); err != nil {
		return l, err
	}
	if err := l.startController(o); err != nil {
		return l, err
	}
	if err := l.createSpeakerPods(ctx, l.speaker); err != nil {
		return l, err
	}
	if l.speakerEnv, err = nftEnv(); err != nil {
		return l, err
	}
	for _, n := range p.Nodes {
		if err := l.StartSpeaker(n.Name); err != nil {
			return l, err
		}
	}
	l.Speakers = l.speakerState(ctx, 30*time.Second)
	return l, nil
}

// startController starts the controller, from its image (after loading
// the images into the lab's own podman) or its binary.
func (l *Lab) startController(o Options) error {
	env, err := l.controller.env(ChartNamespace, "", "")
	if err != nil {
		return err
	}
	if o.Runtime == RuntimeImage {
		archives, err := o.Bin.ImageArchives()
		if err != nil {
			return err
		}
		if l.podman, err = newPodman(l.Plan.Name, archives); err != nil {
			return err
		}
	}
	ctrl, err := l.run(l.controller, "controller", l.Plan.ControlPlane.NetNS, env, l.controller.kubeconfig, o.Bin.Controller, nil)
	if err != nil {
		return err
	}
	l.procs = append(l.procs, ctrl)
	return nil
}

// nftEnv is the environment that lets a speaker run nft (the machine's
// own, as a node's would be; nftables keeps its rules per network
// namespace, so each node's speaker programs its own node): the PATH,
// with nft's folder added when it is not on it (it is in /usr/sbin,
// which a user's PATH may lack).
func nftEnv() ([]string, error) {
	if _, err := exec.LookPath("nft"); err == nil {
		return nil, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, "nft")); err == nil {
			return []string{"PATH=" + os.Getenv("PATH") + string(filepath.ListSeparator) + dir}, nil
		}
	}
	return nil, errors.New("nft not found: the speakers program their forwarding rules with it (apt-get install nftables)")
}

// node returns the plan's node of that name.
func (l *Lab) node(name string) (Node, error) {
	for _, n := range l.Plan.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("the lab has no node %q", name)
}

// StartSpeaker starts the speaker of a node (again) with the chart's
// arguments, then the lab's Options.SpeakerArgs, then extra. The speaker
// takes the last value of a flag given twice, so extra overrides the
// lab's: a lab of old speakers upgrades one with --claim-version=2.
func (l *Lab) StartSpeaker(node string, extra ...string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if pr := l.speakers[node]; pr != nil {
		if exited, _ := pr.Exited(); !exited {
			return fmt.Errorf("the speaker of %s runs already", node)
		}
	}
	env, err := l.speaker.env(ChartNamespace, n.Name, n.Addr.Addr().String())
	if err != nil {
		return err
	}
	if l.podman == nil {
		env = append(env, l.speakerEnv...) // the image brings its own nft
	}
	pr, err := l.run(l.speaker, "speaker-"+n.Name, n.NetNS, env, l.SpeakerKubeconfig(node), l.bin.Speaker, append(slices.Clone(l.speakerArgs), extra...))
	if err != nil {
		return err
	}
	l.speakers[node] = pr
	l.procs = append(l.procs, pr)
	return nil
}

// run starts a workload of the chart in namespace ns, from its image or
// its binary, with the chart's arguments and a kubeconfig holding what
// the host's file kubeconfig does, then extra; its log is logName.log.
func (l *Lab) run(w workload, logName, ns string, env []string, kubeconfig, binary string, extra []string) (*Process, error) {
	if l.podman != nil {
		return l.podman.start(l.Dir, logName, l.Plan.Name+"-"+logName, ns, w, env, kubeconfig, extra)
	}
	return startIn(l.Dir, logName, ns, env, binary, append(w.command(kubeconfig), extra...)...)
}

// KillSpeaker kills a node's speaker with SIGKILL, as a crash would, and
// waits until it is gone.
func (l *Lab) KillSpeaker(node string) error {
	pr := l.speakers[node]
	if pr == nil {
		return fmt.Errorf("no speaker runs on %s", node)
	}
	pr.Kill()
	return nil
}

// StopSpeaker stops a node's speaker gracefully (SIGTERM) and waits until
// it has ended.
func (l *Lab) StopSpeaker(node string) error {
	pr := l.speakers[node]
	if pr == nil {
		return fmt.Errorf("no speaker runs on %s", node)
	}
	pr.Stop()
	return nil
}

// RestartSpeaker stops a node's speaker gracefully and starts it again.
func (l *Lab) RestartSpeaker(node string) error {
	if err := l.StopSpeaker(node); err != nil {
		return err
	}
	return l.StartSpeaker(node)
}

// SpeakerReady tells whether a node's speaker answers /readyz (it has
// synced its caches and joined the memberlist cluster), asked where the
// kubelet would ask it (SpeakerProbe).
func (l *Lab) SpeakerReady(node string) error {
	ns, url, err := l.SpeakerProbe(node, "/readyz")
	if err != nil {
		return err
	}
	body, err := HTTPGetFrom(ns, url, 2*time.Second)
	if err != nil {
		return err
	}
	if strings.TrimSpace(body) != "ok" {
		return fmt.Errorf("readyz: %s", body)
	}
	return nil
}

// WaitSpeakerReady waits until a node's speaker answers /readyz and
// returns when it first did; its error ends with the end of the
// speaker's log.
func (l *Lab) WaitSpeakerReady(node string) (time.Time, error) {
	if err := l.waitReady(node); err != nil {
		return time.Time{}, fmt.Errorf("%w; its log ends:\n%s", err, l.LogTail("speaker-"+node, 15))
	}
	return time.Now(), nil
}

// speakerState waits until every speaker is ready or has ended, at most
// limit, and reports each "ready", or why not: the last line of its log
// when it ended, its readiness answer otherwise.
func (l *Lab) speakerState(ctx context.Context, limit time.Duration) map[string]string {
	deadline := time.Now().Add(limit)
	out := map[string]string{}
	for _, n := range l.Plan.Nodes {
		pr := l.speakers[n.Name]
		for {
			if exited, _ := pr.Exited(); exited {
				b, _ := os.ReadFile(filepath.Join(l.Dir, pr.Name+".log"))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				out[n.Name] = "not running: " + lines[len(lines)-1]
				break
			}
			err := l.SpeakerReady(n.Name)
			if err == nil {
				out[n.Name] = "ready"
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				out[n.Name] = "not ready: " + err.Error()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out
}

// Processes returns the process IDs of what the lab runs, to check that
// none survives Close and to measure their CPU time: for a container,
// its podman's and its program's.
func (l *Lab) Processes() []int {
	var out []int
	for _, pr := range append(slices.Clone(l.procs), l.CP.procs...) {
		out = append(out, pr.cmd.Process.Pid)
		if pid := pr.PID(); pr.pid != nil && pid != 0 {
			out = append(out, pid)
		}
	}
	return out
}

// Close stops everything the lab runs and removes its namespaces. Safe to
// call twice.
func (l *Lab) Close() error {
	if l.agentCancel != nil {
		l.agentCancel()
		<-l.agentDone
		l.agentCancel = nil
	}
	for i := len(l.procs) - 1; i >= 0; i-- {
		l.procs[i].Stop()
	}
	l.procs = nil
	if l.CP != nil {
		// A test that failed while the API server was frozen would
		// otherwise wait out its SIGTERM's grace period.
		_ = l.ThawAPIServer()
		l.CP.Stop()
	}
	return Down(l.Plan.Name)
}

// installCRDs creates ironlb's CRDs and waits until they are established.
func installCRDs(ctx context.Context, c apiextensionsclient.Interface) error {
	files, err := fs.Glob(crd.FS, "*.yaml")
	if err != nil {
		return err
	}
	var names []string
	for _, f := range files {
		data, err := fs.ReadFile(crd.FS, f)
		if err != nil {
			return err
		}
		var obj apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &obj); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := c.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("installing CRD %s: %w", obj.Name, err)
		}
		names = append(names, obj.Name)
	}
	for _, name := range names {
		if err := (Poll{Every: 100 * time.Millisecond, Within: 30 * time.Second}).Until(ctx, "CRD "+name+" to be established", func() (bool, string) {
			obj, err := c.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			return err == nil && established(obj), Why(err, "not established")
		}); err != nil {
			return err
		}
	}
	return nil
}

func established(c *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// ExampleConfig is the configuration make lab applies.
//
//go:embed example.yaml
var ExampleConfig []byte

// ExampleObjects decodes ExampleConfig into objects to create.
func ExampleObjects() ([]*unstructured.Unstructured, error) {
	return DecodeObjects("example.yaml", ExampleConfig)
}

// ApplyExample applies the lab's example configuration (ExampleConfig),
// the one way the suite and the measurements set it up. With a
// password, the router's sessions with every node ask for it first, a
// Secret holds it and every BGPPeer refers to that Secret; it then waits
// until every session is established.
func (l *Lab) ApplyExample(ctx context.Context, password string) error {
	objs, err := ExampleObjects()
	if err != nil {
		return err
	}
	if password != "" {
		if err := l.passwordPeers(ctx, objs, password); err != nil {
			return err
		}
	}
	if err := l.applier.Apply(ctx, objs, false); err != nil {
		return fmt.Errorf("applying the example configuration: %w", err)
	}
	if password == "" {
		return nil
	}
	var addrs []netip.Addr
	for _, n := range l.Plan.Nodes {
		addrs = append(addrs, n.Addr.Addr(), n.Addr6.Addr())
	}
	return Poll{Every: 100 * time.Millisecond, Within: 30 * time.Second}.Until(ctx, "every session with the router established, with its password", func() (bool, string) {
		ss, err := RouterSessions(l.Plan)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range addrs {
			if ss[a].State != "Established" {
				return false, fmt.Sprintf("sessions %v", ss)
			}
		}
		return true, ""
	})
}

// passwordPeers sets the router's password, creates its Secret and
// points every BGPPeer of objs at it.
func (l *Lab) passwordPeers(ctx context.Context, objs []*unstructured.Unstructured, password string) error {
	if err := RouterPassword(l.Plan, password); err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ChartNamespace, Name: "lab-bgp-password"}, Data: map[string][]byte{"password": []byte(password)}}
	if _, err := l.Clientset.CoreV1().Secrets(secret.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	peers := 0
	for _, o := range objs {
		if o.GetKind() != "BGPPeer" {
			continue
		}
		ref := map[string]any{"name": secret.Name, "namespace": secret.Namespace, "key": "password"}
		if err := unstructured.SetNestedMap(o.Object, ref, "spec", "passwordSecretRef"); err != nil {
			return err
		}
		peers++
	}
	if peers == 0 {
		return errors.New("the example configuration has no BGPPeer to give a password")
	}
	return nil
}

// SpeakerPID is the process ID of a node's running speaker, 0 if none.
func (l *Lab) SpeakerPID(node string) int {
	pr := l.speakers[node]
	if pr == nil {
		return 0
	}
	// ip netns exec replaces itself with the speaker: same process; a
	// container's is the one podman started.
	return pr.PID()
}

// Dynamic is a dynamic client of the lab's API server, unthrottled.
func (l *Lab) Dynamic() (dynamic.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return dynamic.NewForConfig(cfg)
}
