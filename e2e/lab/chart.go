package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// The lab installs ironlb from its Helm chart, as a cluster would, with
// one difference: it runs the controller and the speakers itself (there is
// no kubelet), from their images with podman and the security context of
// the chart (container.go), or as processes of the binaries, with the
// arguments and environment of the chart's Deployment and DaemonSet and
// the tokens of the chart's ServiceAccounts. So a flag the binaries
// reject, a permission the chart's RBAC lacks, or a file or capability
// the image lacks, breaks the lab.
const (
	ChartRelease   = "ironlb"
	ChartNamespace = "ironlb-system"
)

// RenderChart runs `helm template` for a release of the chart and returns
// the objects it renders; args go to helm as they are (--values, --set,
// --include-crds).
func RenderChart(helm, chart, release, namespace string, args ...string) ([]*unstructured.Unstructured, error) {
	cmd := exec.Command(helm, append([]string{"template", release, chart, "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %s %v: %w: %s", chart, args, err, strings.TrimSpace(stderr.String()))
	}
	return DecodeObjects("helm template", out)
}

// ChartValueSets are the value sets the chart is checked with: its
// defaults and every file in its ci folder, as helm arguments by name.
func ChartValueSets(chart string) (map[string][]string, error) {
	files, err := filepath.Glob(filepath.Join(chart, "ci", "*-values.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no value sets in %s/ci", chart)
	}
	sets := map[string][]string{"default": nil}
	for _, f := range files {
		sets[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = []string{"--values", f}
	}
	return sets, nil
}

// DecodeObjects decodes a multi-document YAML stream, skipping empty
// documents.
func DecodeObjects(source string, data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// Applier applies objects with server-side apply, as `kubectl apply
// --server-side` does.
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier returns an Applier that acts with cfg's credentials.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Apply applies every object, or with dryRun has the API server check
// every one (admission, validation, defaulting) without keeping it. It
// returns every object's error, each naming its object.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) error {
	var errs []error
	for _, o := range objs {
		if err := a.apply(ctx, o, dryRun); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", o.GetKind(), objectKey(o), err))
		}
	}
	return errors.Join(errs...)
}

func (a *Applier) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) error {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.mapper.Reset() // a CRD may have been added since discovery ran
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = a.dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "ironlb-lab", Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
	return err
}

func objectKey(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

// workload is what the lab takes from the chart's Deployment or DaemonSet
// to run a component: its pod template and a kubeconfig with its
// ServiceAccount's token.
type workload struct {
	name       string
	template   corev1.PodTemplateSpec
	kubeconfig string
}

// container is the workload's one container.
func (w workload) container() corev1.Container { return w.template.Spec.Containers[0] }

// command is the workload's container arguments, with a kubeconfig
// that stands in for the in-cluster configuration.
func (w workload) command(kubeconfig string) []string {
	return append(slices.Clone(w.container().Args), "--kubeconfig="+kubeconfig)
}

// env resolves the container's environment for a pod on node.
func (w workload) env(namespace, node, podIP string) ([]string, error) {
	env, err := ContainerEnv(w.container(), namespace, node, podIP)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", w.name, err)
	}
	return env, nil
}

// ContainerEnv resolves a container's environment as the kubelet would
// for a pod of namespace on node, whose address is podIP. It fails on
// anything the lab cannot provide, so a chart change it does not know
// about is noticed.
func ContainerEnv(c corev1.Container, namespace, node, podIP string) ([]string, error) {
	var out []string
	for _, e := range c.Env {
		v := e.Value
		if src := e.ValueFrom; src != nil {
			if src.FieldRef == nil {
				return nil, fmt.Errorf("env %s: the lab resolves only fieldRef", e.Name)
			}
			switch src.FieldRef.FieldPath {
			case "metadata.namespace":
				v = namespace
			case "metadata.name":
				v = podName(c.Name, node)
			case "spec.nodeName":
				v = node
			case "status.podIP", "status.hostIP":
				v = podIP
			default:
				return nil, fmt.Errorf("env %s: the lab cannot resolve fieldRef %s", e.Name, src.FieldRef.FieldPath)
			}
		}
		out = append(out, e.Name+"="+v)
	}
	return out, nil
}

// podName is the name the lab gives the pod of a container: the chart's
// controller runs in one pod, a speaker in one per node.
func podName(container, node string) string {
	if node == "" {
		return "ironlb-" + container + "-lab"
	}
	return "ironlb-" + container + "-" + node
}

// installChart installs the chart's objects in ChartNamespace, except its
// Deployment and DaemonSet, whose pods the lab runs as processes; it
// returns those two workloads, the controller's with a kubeconfig holding
// a token of its ServiceAccount (the speakers get theirs, bound to their
// Pods, in createSpeakerPods). It also makes the scraper that reads
// metrics (setupScraper).
func (l *Lab) installChart(ctx context.Context, cfg *rest.Config, b Binaries) (controller, speaker workload, err error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ChartNamespace}}
	if _, err := l.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return controller, speaker, err
	}
	objs, err := RenderChart(b.Helm, b.Chart, ChartRelease, ChartNamespace)
	if err != nil {
		return controller, speaker, err
	}
	var rest []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)
			controller.name, controller.template = o.GetName(), d.Spec.Template
		case "DaemonSet":
			var d appsv1.DaemonSet
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)
			speaker.name, speaker.template = o.GetName(), d.Spec.Template
		default:
			rest = append(rest, o)
			continue
		}
		if err != nil {
			return controller, speaker, fmt.Errorf("the chart's %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	if controller.name == "" || speaker.name == "" {
		return controller, speaker, errors.New("the chart rendered no controller Deployment or no speaker DaemonSet")
	}
	if l.applier, err = NewApplier(cfg); err != nil {
		return controller, speaker, err
	}
	if err := l.applier.Apply(ctx, rest, false); err != nil {
		return controller, speaker, fmt.Errorf("installing the chart: %w", err)
	}
	for _, w := range []*workload{&controller, &speaker} {
		if len(w.template.Spec.Containers) != 1 {
			return controller, speaker, fmt.Errorf("%s has %d containers; the lab runs one", w.name, len(w.template.Spec.Containers))
		}
	}
	if controller.kubeconfig, err = l.serviceAccountKubeconfig(ctx, controller.template.Spec.ServiceAccountName); err != nil {
		return controller, speaker, err
	}
	reader, err := MetricsReaderRole(objs)
	if err != nil {
		return controller, speaker, err
	}
	if l.metricsToken, err = l.setupScraper(ctx, reader); err != nil {
		return controller, speaker, err
	}
	return controller, speaker, nil
}

// serviceAccountKubeconfig writes a kubeconfig that reaches the API
// server as a ServiceAccount of ChartNamespace, with a token the API
// server issues for it.
func (l *Lab) serviceAccountKubeconfig(ctx context.Context, sa string) (string, error) {
	expiry := int64(48 * 3600) // longer than any lab runs
	tr, err := l.Clientset.CoreV1().ServiceAccounts(ChartNamespace).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token for ServiceAccount %s/%s: %w", ChartNamespace, sa, err)
	}
	path := filepath.Join(l.Dir, sa+".kubeconfig")
	return path, writeKubeconfig(path, l.CP.URL, l.CP.CAFile, tr.Status.Token)
}

// createSpeakerPods creates, for every node, the speaker Pod the
// DaemonSet would (the lab runs no DaemonSet controller), and waits until
// the node agent has given each its node's address: the speakers find
// each other through these Pods. Each speaker runs with a token bound to
// its Pod, which names its node, as the kubelet's does: the chart's
// admission policy lets it write only its own node's NodeAnnouncement.
func (l *Lab) createSpeakerPods(ctx context.Context, ds workload) error {
	pods := l.Clientset.CoreV1().Pods(ChartNamespace)
	l.speakerKubeconfigs = map[string]string{}
	for _, n := range l.Plan.Nodes {
		spec := *ds.template.Spec.DeepCopy()
		spec.NodeName = n.Name
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: ds.name + "-" + n.Name, Labels: ds.template.Labels}, Spec: spec}
		created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("speaker Pod for %s: %w", n.Name, err)
		}
		if l.speakerKubeconfigs[n.Name], err = l.podKubeconfig(ctx, created); err != nil {
			return err
		}
	}
	for _, n := range l.Plan.Nodes {
		if err := (Poll{Every: 100 * time.Millisecond, Within: 30 * time.Second}).Until(ctx, "the speaker Pod of "+n.Name+" to get its node's address", func() (bool, string) {
			p, err := pods.Get(ctx, ds.name+"-"+n.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return p.Status.PodIP == n.Addr.Addr().String(), "pod IP " + p.Status.PodIP
		}); err != nil {
			return err
		}
	}
	return nil
}

// Bin is what the lab runs: its binaries and chart.
func (l *Lab) Bin() Binaries { return l.bin }

// ComponentKubeconfig is the kubeconfig the lab runs a component
// ("controller" or "speaker") with: its ServiceAccount's token; for the
// speaker, that of the first node's speaker, bound to its Pod (see
// SpeakerKubeconfig).
func (l *Lab) ComponentKubeconfig(component string) string {
	switch component {
	case "controller":
		return l.controller.kubeconfig
	case "speaker":
		return l.SpeakerKubeconfig(l.Plan.Nodes[0].Name)
	}
	return ""
}

// Forbidden returns the lines of the controller's and speakers' logs that
// tell of a request the API server refused for want of permission.
func (l *Lab) Forbidden() []string {
	logs, _ := filepath.Glob(filepath.Join(l.Dir, "speaker-*.log"))
	var out []string
	for _, f := range append(logs, filepath.Join(l.Dir, "controller.log")) {
		b, err := os.ReadFile(f)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "forbidden") {
				out = append(out, filepath.Base(f)+": "+line)
			}
		}
	}
	return out
}
