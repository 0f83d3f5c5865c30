package lab

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
}

// Lab is a running lab.
type Lab struct {
	Plan      Plan
	Dir       string
	CP        *ControlPlane
	Clientset kubernetes.Interface
	// Speakers says, per node, whether its speaker runs, or why not.
	Speakers map[string]string

	procs       []*Process
	agentCancel context.CancelFunc
	agentDone   chan error
}

// Start brings a lab up: first it removes whatever a killed lab of the
// same name left, then the network, the control plane with ironlb's CRDs,
// the FRR router, the node agent, the controller and a speaker per node.
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
	l = &Lab{Plan: p, Dir: o.Dir, Speakers: map[string]string{}}
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

	ctrl, err := startIn(o.Dir, "controller", p.ControlPlane.NetNS, nil, o.Bin.Controller,
		"--kubeconfig", l.CP.Kubeconfig, "--leader-elect=false",
		"--metrics-bind-address", "127.0.0.1:7472", "--health-probe-bind-address", "127.0.0.1:7473")
	if err != nil {
		return l, err
	}
	l.procs = append(l.procs, ctrl)
	for _, n := range p.Nodes {
		sp, err := startIn(o.Dir, "speaker-"+n.Name, n.NetNS, []string{"NODE_NAME=" + n.Name}, o.Bin.Speaker,
			"--kubeconfig", l.CP.Kubeconfig, "--memberlist-join", joinList(p))
		if err != nil {
			return l, err
		}
		l.procs = append(l.procs, sp)
	}
	l.Speakers = l.speakerState(2 * time.Second)
	return l, nil
}

func joinList(p Plan) string {
	var addrs []string
	for _, n := range p.Nodes {
		addrs = append(addrs, n.Addr.Addr().String())
	}
	return strings.Join(addrs, ",")
}

// speakerState waits a moment and reports each speaker running, or the
// last line it wrote before it ended (until the speaker issues land, it
// says it is not implemented yet).
func (l *Lab) speakerState(grace time.Duration) map[string]string {
	time.Sleep(grace)
	out := map[string]string{}
	for _, pr := range l.procs {
		node, ok := strings.CutPrefix(pr.Name, "speaker-")
		if !ok {
			continue
		}
		if exited, _ := pr.Exited(); !exited {
			out[node] = "running"
			continue
		}
		b, _ := os.ReadFile(filepath.Join(l.Dir, pr.Name+".log"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		out[node] = "not running: " + lines[len(lines)-1]
	}
	return out
}

// Processes returns the process IDs of what the lab runs, to check that
// none survives Close.
func (l *Lab) Processes() []int {
	var out []int
	for _, pr := range append(slices.Clone(l.procs), l.CP.procs...) {
		out = append(out, pr.cmd.Process.Pid)
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
	deadline := time.Now().Add(60 * time.Second)
	for _, name := range names {
		for {
			obj, err := c.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(obj) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not established: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
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
