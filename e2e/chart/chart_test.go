// Package chart checks the Helm chart in charts/ironlb without a cluster:
// helm lint, what each value set renders, the schema's refusals, and that
// the binaries accept the arguments the chart gives them. The suite
// (e2e/suite/chart_test.go) applies the same renderings to a real API
// server.
package chart

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	kruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/ironlb/ironlb/e2e/lab"
)

// repo is the repository's root.
func repo() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// helm returns the Helm that make tools builds; without it the tests fail
// in CI and skip elsewhere.
func helm(t *testing.T) string {
	t.Helper()
	h := filepath.Join(repo(), "bin", "helm")
	if _, err := os.Stat(h); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (make tools)", err)
		}
		t.Skipf("%v (run make tools)", err)
	}
	return h
}

func chartDir() string { return filepath.Join(repo(), "charts", "ironlb") }

func valueSets(t *testing.T) map[string][]string {
	sets, err := lab.ChartValueSets(chartDir())
	if err != nil || len(sets) < 4 {
		t.Fatalf("value sets: %v %v", sets, err)
	}
	return sets
}

func TestLint(t *testing.T) {
	h := helm(t)
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(h, append([]string{"lint", "--strict", chartDir()}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// rendered is one value set's rendering, with the workloads decoded.
type rendered struct {
	objs       []*unstructured.Unstructured
	controller appsv1.Deployment
	speaker    appsv1.DaemonSet
	roles      []rbacv1.PolicyRule // every rule, of Roles and ClusterRoles
	cluster    []rbacv1.PolicyRule // the rules of ClusterRoles
	secret     *corev1.Secret
}

func render(t *testing.T, args []string) rendered {
	t.Helper()
	objs, err := lab.RenderChart(helm(t), chartDir(), "ironlb", "ironlb-system", args...)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{objs: objs}
	for _, o := range objs {
		var into any
		switch o.GetKind() {
		case "Deployment":
			into = &r.controller
		case "DaemonSet":
			into = &r.speaker
		case "Secret":
			r.secret = &corev1.Secret{}
			into = r.secret
		case "Role", "ClusterRole":
			var role rbacv1.ClusterRole // a Role has the same rules
			if err := kruntime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				t.Fatal(err)
			}
			r.roles = append(r.roles, role.Rules...)
			if o.GetKind() == "ClusterRole" {
				r.cluster = append(r.cluster, role.Rules...)
			}
			continue
		default:
			continue
		}
		if err := kruntime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if r.controller.Name == "" || r.speaker.Name == "" {
		t.Fatalf("no controller Deployment or speaker DaemonSet rendered")
	}
	return r
}

// arg returns the value of --name=value among args, and whether it is there.
func arg(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestRendered checks, for every value set, what the issue asks of the
// workloads' security and of the RBAC, and that the pieces fit together.
func TestRendered(t *testing.T) {
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, args)

			// The controller: non-root, read-only, nothing to escalate to.
			pod := r.controller.Spec.Template.Spec
			c := pod.Containers[0]
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
				t.Errorf("controller pod: runAsNonRoot not set: %+v", pod.SecurityContext)
			}
			checkContainer(t, "controller", c, nil)
			if pod.HostNetwork {
				t.Error("controller runs in the host network")
			}

			// The speaker: host network, root with NET_RAW and NET_ADMIN only.
			spod := r.speaker.Spec.Template.Spec
			s := spod.Containers[0]
			if !spod.HostNetwork || spod.HostPID || spod.HostIPC {
				t.Errorf("speaker: hostNetwork %v, hostPID %v, hostIPC %v; want only the host network", spod.HostNetwork, spod.HostPID, spod.HostIPC)
			}
			checkContainer(t, "speaker", s, []corev1.Capability{"NET_ADMIN", "NET_RAW"})

			// Leader election is on exactly when the Lease Role is there.
			le, _ := arg(c.Args, "leader-elect")
			hasLease := slices.ContainsFunc(r.roles, func(p rbacv1.PolicyRule) bool { return slices.Contains(p.Resources, "leases") })
			if (le == "true") != hasLease {
				t.Errorf("--leader-elect=%s but a Role for Leases: %v", le, hasLease)
			}

			// The speaker's memberlist Secret is the one rendered (or the
			// operator's), and its pod selector selects its own pods.
			secret, _ := arg(s.Args, "memberlist-secret")
			switch {
			case r.secret != nil && secret != "ironlb-system/"+r.secret.Name:
				t.Errorf("--memberlist-secret=%s, but the chart makes Secret %s", secret, r.secret.Name)
			case r.secret == nil && strings.HasSuffix(secret, "-memberlist"):
				t.Errorf("--memberlist-secret=%s names the chart's own Secret, but none is rendered", secret)
			}
			if r.secret != nil {
				// The speakers restart when the key changes.
				sum := fmt.Sprintf("%x", sha256.Sum256([]byte(base64.StdEncoding.EncodeToString(r.secret.Data["key"]))))
				if got := r.speaker.Spec.Template.Annotations["checksum/memberlist-key"]; got != sum {
					t.Errorf("the speakers' checksum/memberlist-key is %q, the Secret's key sums to %q", got, sum)
				}
			}
			sel, _ := arg(s.Args, "memberlist-pod-selector")
			if parsed, err := labels.Parse(sel); err != nil || !parsed.Matches(labels.Set(r.speaker.Spec.Template.Labels)) {
				t.Errorf("--memberlist-pod-selector=%q does not select the speaker pods (labels %v): %v", sel, r.speaker.Spec.Template.Labels, err)
			}

			checkRBAC(t, r)
		})
	}
}

// checkContainer checks a container's security context: no privilege or
// escalation, a read-only root, every capability dropped but add.
func checkContainer(t *testing.T, name string, c corev1.Container, add []corev1.Capability) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s: no securityContext", name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation not false", name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem not true", name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: capabilities not all dropped: %+v", name, sc.Capabilities)
	} else if got := slices.Sorted(slices.Values(sc.Capabilities.Add)); !slices.Equal(got, add) {
		t.Errorf("%s: capabilities added %v, want %v", name, got, add)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet == nil ||
		c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: want HTTP probes on /healthz and /readyz", name)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: want memory requests and limits: %+v", name, c.Resources)
	}
}

// checkRBAC holds the RBAC to what ironlb needs: no wildcards, nothing
// deleted, Secrets only read one at a time and only in namespaces, and
// writes to Services only to their status.
func checkRBAC(t *testing.T, r rendered) {
	t.Helper()
	if len(r.roles) == 0 {
		t.Fatal("no RBAC rendered")
	}
	for _, p := range r.roles {
		all := slices.Concat(p.Verbs, p.Resources, p.APIGroups)
		if slices.Contains(all, "*") {
			t.Errorf("wildcard in rule %+v", p)
		}
		if slices.ContainsFunc(p.Verbs, func(v string) bool {
			return v == "delete" || v == "deletecollection" || v == "escalate" || v == "bind" || v == "impersonate"
		}) {
			t.Errorf("rule %+v grants %v", p, p.Verbs)
		}
		if slices.Contains(p.Resources, "secrets") && !slices.Equal(p.Verbs, []string{"get"}) {
			t.Errorf("Secrets may only be read one at a time (get): %+v", p)
		}
		if slices.Contains(p.Resources, "services") && slices.ContainsFunc(p.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
			t.Errorf("Services may only be read: %+v", p)
		}
	}
	for _, p := range r.cluster {
		if slices.Contains(p.Resources, "secrets") || slices.Contains(p.Resources, "pods") {
			t.Errorf("a ClusterRole grants %v cluster-wide: %+v", p.Resources, p)
		}
	}
}

// TestArgsAccepted runs both binaries with the arguments and environment
// of every value set (and a kubeconfig that does not exist): each must get
// past its flag checks and stop only at the kubeconfig.
func TestArgsAccepted(t *testing.T) {
	bin := filepath.Join(repo(), "bin")
	for _, b := range []string{"controller", "speaker"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%v (make build)", err)
			}
			t.Skipf("%v (run make build)", err)
		}
	}
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, args)
			for b, c := range map[string]corev1.Container{"controller": r.controller.Spec.Template.Spec.Containers[0], "speaker": r.speaker.Spec.Template.Spec.Containers[0]} {
				env, err := lab.ContainerEnv(c, "ironlb-system", "node1", "192.0.2.10")
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(filepath.Join(bin, b), append(slices.Clone(c.Args), "--kubeconfig=/nonexistent/kubeconfig")...)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				want := b + ": --kubeconfig: stat /nonexistent/kubeconfig"
				if err == nil || !strings.HasPrefix(string(out), want) {
					t.Errorf("%s %v: %v\n%s\nwant it to stop only at the kubeconfig", b, c.Args, err, out)
				}
			}
		})
	}
}

// TestSchemaRefuses checks that values.schema.json and the templates turn
// bad values away with a message naming the value.
func TestSchemaRefuses(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct{ set, want string }{
		{"forwarding.mode=iptables", "/forwarding/mode"},
		{"memberlist.key=too-short", "/memberlist/key"},
		{"speaker.handoff=5", "/speaker/handoff"},
		{"speaker.claimVersion=4", "/speaker/claimVersion"},
		{"speaker.claimSwitchDelay=soon", "/speaker/claimSwitchDelay"},
		{"speaker.fencing=maybe", "/speaker/fencing"},
		{"memberlist.joinTimeout=later", "/memberlist/joinTimeout"},
		{"memberlist.secondaryKeys={too-short}", "/memberlist/secondaryKeys/0"},
		{"memberlist.probeInterval=fast", "/memberlist/probeInterval"},
		{"logLevel=verbose", "/logLevel"},
		{"controller.image.pullPolicy=Sometimes", "/controller/image/pullPolicy"},
		{"speaker.metricsPort=70000", "/speaker/metricsPort"},
		{"speaker.bgp.passwordSecretNamespaces[0]=Not_A_Namespace", "/speaker/bgp/passwordSecretNamespaces/0"},
		{"loadBalancerClass=not a class", "/loadBalancerClass"},
		{"replicaCount=3", "additional properties 'replicaCount'"},
		{"controller.leaderElection.enabled=false", "controller.replicas > 1 needs controller.leaderElection.enabled"},
		{"metrics.service.enabled=false,metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.enabled needs metrics.service.enabled"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := exec.Command(h, "template", "x", chartDir(), "--set", tc.set).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("helm template --set %s: %v\n%s\nwant a refusal naming %q", tc.set, err, out, tc.want)
			}
		})
	}
}
