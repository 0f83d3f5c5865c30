package suite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestChart puts the chart before the lab's real API server: every value
// set's rendering passes a server-side dry run, a release upgrades from
// one value set to the next keeping its memberlist key, and the
// ServiceAccounts the lab runs ironlb with cannot do what ironlb must not.
// (The lab itself runs on the chart's RBAC; see lab.installChart.)
func TestChart(t *testing.T) {
	l, c := startLab(t, 1)
	ctx := context.Background()
	bin := l.Bin()
	admin, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	applier, err := lab.NewApplier(admin)
	if err != nil {
		t.Fatal(err)
	}
	// The Prometheus Operator's ServiceMonitor CRD (make tools fetches
	// it), for the value set with ServiceMonitors; and the namespaces the
	// value sets name.
	crd, err := os.ReadFile(filepath.Join(filepath.Dir(bin.Helm), "servicemonitor-crd.yaml"))
	if err != nil {
		t.Fatalf("%v (make tools)", err)
	}
	crdObjs, err := lab.DecodeObjects("servicemonitor-crd.yaml", crd)
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, crdObjs, false); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"ironlb-dryrun", "network-secrets"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	sets, err := lab.ChartValueSets(bin.Chart)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("dry-run", func(t *testing.T) {
		for name, args := range sets {
			objs, err := lab.RenderChart(bin.Helm, bin.Chart, "ironlb", "ironlb-dryrun", append([]string{"--include-crds"}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			// Until the CRD is established, ServiceMonitors have no mapping.
			testutil.Eventually(t, name+": every object accepted by a server-side dry run", func() (bool, string) {
				err := applier.Apply(ctx, objs, true)
				return err == nil, fmt.Sprint(err)
			})
		}
	})

	t.Run("upgrade", func(t *testing.T) { chartUpgrades(t, l, c, applier, sets) })
	t.Run("rbac", func(t *testing.T) { chartRBAC(t, l, c) })
}

// chartUpgrades installs a release with the defaults and upgrades it
// through the value sets with Helm itself. Helm fails an upgrade the API
// server refuses, as it refuses a change of an immutable field such as a
// workload's selector. The memberlist key must survive every upgrade that
// does not choose one.
func chartUpgrades(t *testing.T, l *lab.Lab, c client.Client, applier *lab.Applier, sets map[string][]string) {
	ctx := context.Background()
	bin := l.Bin()
	const release, ns = "ironlb-upgrade", "ironlb-upgrade"
	home := t.TempDir()
	helm := func(args ...string) string {
		t.Helper()
		if args[0] != "uninstall" {
			// No controller pods: the lab's node agent would run them as
			// stand-in pods, which this test has no use for.
			args = append(args, "--set", "controller.replicas=0")
		}
		cmd := exec.Command(bin.Helm, append(args, "--kubeconfig", l.CP.Kubeconfig, "--namespace", ns)...)
		cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home+"/config", "HELM_CACHE_HOME="+home+"/cache", "HELM_DATA_HOME="+home+"/data")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	key := func(name string) string {
		t.Helper()
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatalf("the memberlist Secret: %v", err)
		}
		if len(s.Data["key"]) == 0 {
			t.Fatalf("Secret %s has no data.key", name)
		}
		return string(s.Data["key"])
	}
	const secret = release + "-memberlist"
	chosen := readChosenKey(t, sets["monitoring"])

	notes := helm("install", release, bin.Chart, "--create-namespace")
	checkNotes(t, applier, notes)
	if strings.Contains(notes, "MetalLB's CRDs") {
		t.Errorf("the NOTES warn of MetalLB in a cluster without it:\n%s", notes)
	}
	first := key(secret)
	// With MetalLB's CRDs in the cluster, the NOTES warn that both take
	// Services without a class, unless ironlb requires its class.
	crd, err := lab.DecodeObjects("metallb-crd.yaml", []byte(metallbPoolCRD))
	if err != nil {
		t.Fatal(err)
	}
	if err := applier.Apply(ctx, crd, false); err != nil {
		t.Fatal(err)
	}
	notes = helm("upgrade", release, bin.Chart)
	if !strings.Contains(notes, "MetalLB's CRDs are in this cluster") || !strings.Contains(notes, "requireLoadBalancerClass=true") {
		t.Errorf("with MetalLB's CRDs present, the NOTES do not warn and say how to coexist:\n%s", notes)
	}
	notes = helm("upgrade", release, bin.Chart, "--set", "requireLoadBalancerClass=true")
	if !strings.Contains(notes, "ironlb takes only Services with spec.loadBalancerClass: ironlb.io/lb") {
		t.Errorf("with requireLoadBalancerClass, the NOTES do not say that MetalLB keeps the Services without a class:\n%s", notes)
	}
	if err := c.Delete(ctx, crd[0]); err != nil {
		t.Fatal(err)
	}
	helm("upgrade", release, bin.Chart, sets["bgp"][0], sets["bgp"][1])
	if k := key(secret); k != first {
		t.Errorf("the memberlist key changed in the upgrade to the bgp values: %q, then %q", first, k)
	}
	helm("upgrade", release, bin.Chart, sets["monitoring"][0], sets["monitoring"][1])
	if k := key(secret); k != chosen {
		t.Errorf("memberlist.key %q chosen, the Secret holds %q", chosen, k)
	}
	helm("upgrade", release, bin.Chart)
	if k := key(secret); k != chosen {
		t.Errorf("the chosen memberlist key was lost going back to the defaults: %q, want %q", k, chosen)
	}
	helm("upgrade", release, bin.Chart, sets["external"][0], sets["external"][1])
	helm("upgrade", release, bin.Chart, sets["monitoring"][0], sets["monitoring"][1])
	helm("uninstall", release, "--wait")
}

// checkNotes checks that the NOTES Helm prints after an install hold a
// first pool and advertisement that the API server accepts (server-side
// dry run), and say how to check the result.
func checkNotes(t *testing.T, applier *lab.Applier, notes string) {
	t.Helper()
	_, rest, ok := strings.Cut(notes, "<<'YAML'\n")
	manifest, _, ok2 := strings.Cut(rest, "\n  YAML\n")
	if !ok || !ok2 {
		t.Fatalf("the NOTES hold no pool to apply:\n%s", notes)
	}
	var dedented []string // the NOTES indent it by two spaces
	for _, line := range strings.Split(manifest, "\n") {
		dedented = append(dedented, strings.TrimPrefix(line, "  "))
	}
	objs, err := lab.DecodeObjects("NOTES.txt", []byte(strings.Join(dedented, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "IPPool" || objs[1].GetKind() != "L2Advertisement" {
		t.Fatalf("the NOTES' manifest is not an IPPool and an L2Advertisement:\n%s", manifest)
	}
	if err := applier.Apply(context.Background(), objs, true); err != nil {
		t.Errorf("the NOTES' pool is refused: %v", err)
	}
	for _, want := range []string{"kubectl get ippools", "kubectl get nodeannouncements", "EXTERNAL-IP"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the NOTES do not say %q:\n%s", want, notes)
		}
	}
}

// readChosenKey returns memberlist.key of a value set's file.
func readChosenKey(t *testing.T, args []string) string {
	t.Helper()
	b, err := os.ReadFile(args[1])
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Memberlist struct{ Key string }
	}
	if err := yaml.Unmarshal(b, &values); err != nil || values.Memberlist.Key == "" {
		t.Fatalf("%s chooses no memberlist.key: %v", args[1], err)
	}
	return values.Memberlist.Key
}

// chartRBAC acts with the tokens the lab runs ironlb with and checks that
// what ironlb must not do is refused, beside what it must do.
func chartRBAC(t *testing.T, l *lab.Lab, c client.Client) {
	ctx := context.Background()
	// A LoadBalancer Service of another class: ironlb leaves it alone.
	other := "example.com/other"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rbac-probe"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &other, Ports: []corev1.ServicePort{{Port: 80}}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "not-ironlbs"}, Data: map[string][]byte{"password": []byte("x")}}
	for _, o := range []client.Object{svc, secret} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	announcements := schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "nodeannouncements"}
	pools := schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "ippools"}
	node := l.Plan.Nodes[0].Name

	as := func(component string) (kubernetes.Interface, dynamic.Interface) {
		cfg, err := clientcmd.BuildConfigFromFlags("", l.ComponentKubeconfig(component))
		if err != nil {
			t.Fatal(err)
		}
		return kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg)
	}
	expect := func(who, what string, err error, allowed bool) {
		t.Helper()
		switch {
		case allowed && err != nil:
			t.Errorf("%s may %s, but: %v", who, what, err)
		case !allowed && !apierrors.IsForbidden(err):
			t.Errorf("%s must not %s, but the API server answered %v", who, what, err)
		}
	}
	patch := []byte(`{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.200"}]}}}`)

	cs, dyn := as("controller")
	_, err := cs.CoreV1().Services("default").Get(ctx, svc.Name, metav1.GetOptions{})
	expect("the controller", "read a Service", err, true)
	_, err = cs.CoreV1().Services("default").Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
	expect("the controller", "write a Service's status", err, true)
	err = cs.CoreV1().Services("default").Delete(ctx, svc.Name, metav1.DeleteOptions{})
	expect("the controller", "delete a Service", err, false)
	_, err = cs.CoreV1().Services("default").Patch(ctx, svc.Name, types.MergePatchType, []byte(`{"spec":{"externalTrafficPolicy":"Local"}}`), metav1.PatchOptions{})
	expect("the controller", "change a Service's spec", err, false)
	_, err = cs.CoreV1().Secrets(lab.ChartNamespace).Get(ctx, "ironlb-memberlist", metav1.GetOptions{})
	expect("the controller", "read the memberlist Secret", err, false)
	_, err = cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	expect("the controller", "list Secrets", err, false)
	_, err = cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none"}}}}, metav1.CreateOptions{})
	expect("the controller", "create a Pod", err, false)
	err = dyn.Resource(pools).Delete(ctx, "any", metav1.DeleteOptions{})
	expect("the controller", "delete an IPPool", err, false)
	_, err = dyn.Resource(announcements).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ironlb.io/v1alpha1", "kind": "NodeAnnouncement", "metadata": map[string]any{"name": "x"}}}, metav1.CreateOptions{})
	expect("the controller", "create a NodeAnnouncement", err, false)

	cs, dyn = as("speaker")
	_, err = cs.CoreV1().Secrets(lab.ChartNamespace).Get(ctx, "ironlb-memberlist", metav1.GetOptions{})
	expect("the speaker", "read the memberlist Secret", err, true)
	_, err = cs.CoreV1().Secrets("default").Get(ctx, secret.Name, metav1.GetOptions{})
	expect("the speaker", "read a Secret outside its namespace", err, false)
	_, err = cs.CoreV1().Secrets(lab.ChartNamespace).List(ctx, metav1.ListOptions{})
	expect("the speaker", "list Secrets", err, false)
	_, err = cs.CoreV1().Services("default").Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
	expect("the speaker", "write a Service's status", err, false)
	err = cs.CoreV1().Services("default").Delete(ctx, svc.Name, metav1.DeleteOptions{})
	expect("the speaker", "delete a Service", err, false)
	_, err = cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
	expect("the speaker", "change a Node", err, false)
	_, err = cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	expect("the speaker", "list Pods outside its namespace", err, false)
	_, err = dyn.Resource(announcements).Patch(ctx, node, types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
	expect("the speaker", "write its NodeAnnouncement's status", err, true)
	err = dyn.Resource(announcements).Delete(ctx, node, metav1.DeleteOptions{})
	expect("the speaker", "delete a NodeAnnouncement", err, false)
	_, err = dyn.Resource(pools).Patch(ctx, "any", types.MergePatchType, []byte(`{"spec":{}}`), metav1.PatchOptions{})
	expect("the speaker", "change an IPPool", err, false)
}

// metallbPoolCRD stands for MetalLB's IPAddressPool CRD, which is all the
// chart's NOTES look for: the name is MetalLB's, the schema is not.
const metallbPoolCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ipaddresspools.metallb.io
spec:
  group: metallb.io
  names: {kind: IPAddressPool, listKind: IPAddressPoolList, plural: ipaddresspools, singular: ipaddresspool}
  scope: Namespaced
  versions:
    - name: v1beta1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
