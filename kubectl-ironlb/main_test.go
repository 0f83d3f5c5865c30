package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/inspect"
	"github.com/ironlb/ironlb/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runCmd runs the plugin's command line and returns its exit code and
// outputs.
func runCmd(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestServiceName(t *testing.T) {
	for _, tc := range []struct {
		arg, want, err string
	}{
		{arg: "web", want: "web"},
		{arg: "svc/web", want: "web"},
		{arg: "service/web", want: "web"},
		{arg: "Services/web", want: "web"},
		{arg: "pod/web", err: "not a pod"},
		{arg: "svc/", err: "explain takes a Service"},
		{arg: "svc/a/b", err: "explain takes a Service"},
	} {
		got, err := serviceName(tc.arg)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("serviceName(%q) = %q, %v; want %q, error with %q", tc.arg, got, err, tc.want, tc.err)
		}
	}
}

// version prints the build as internal/buildinfo reads it (its own tests
// cover where each value comes from).
func TestVersion(t *testing.T) {
	code, out, _ := runCmd("", "version", "-o", "json")
	var v versionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Revision == "" || v.GoVersion == "" {
		t.Errorf("version -o json: exit %d, %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-o", "wide"}, `--output "wide": must be json or yaml`},
		{[]string{"who-has", "not-an-ip"}, `"not-an-ip" is not an IP address`},
		{[]string{"explain", "deploy/web"}, "not a deploy"},
		{[]string{"explain"}, "accepts 1 arg"},
		{[]string{"migrate"}, "-f FILE is required"},
		{[]string{"migrate", "-f", "/nonexistent/metallb.yaml"}, "reading /nonexistent/metallb.yaml"},
	} {
		code, _, stderr := runCmd("", tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want non-zero and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestMigrateStdin: migrate reads standard input, writes ironlb objects
// to standard output and fails on input it cannot parse.
func TestMigrateStdin(t *testing.T) {
	in := `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool1, namespace: metallb-system}
spec:
  addresses: [203.0.113.0/28]
`
	code, out, stderr := runCmd(in, "migrate", "-f", "-")
	if code != 0 || !strings.Contains(out, "kind: IPPool") || !strings.Contains(out, "name: pool1") || !strings.Contains(out, "203.0.113.0/28") {
		t.Errorf("exit %d, stdout %q, stderr %q; want an IPPool pool1", code, out, stderr)
	}
	code, out, stderr = runCmd(in, "migrate", "-f", "-", "-o", "json")
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || list.Kind != "List" || len(list.Items) != 1 || list.Items[0].Kind != "IPPool" || list.Items[0].Metadata.Name != "pool1" {
		t.Errorf("-o json: exit %d, %v, stdout %q, stderr %q; want a List of IPPool pool1", code, err, out, stderr)
	}
	code, _, stderr = runCmd("kind: [unclosed\n", "migrate", "-f", "-")
	if code == 0 || !strings.Contains(stderr, "converting standard input") {
		t.Errorf("bad YAML: exit %d, stderr %q; want non-zero and an error naming the input", code, stderr)
	}
}

// kubeconfig writes a kubeconfig reaching the test's API server, with
// namespace as the context's namespace.
func kubeconfig(t *testing.T, env *testenv.Env, namespace string) string {
	t.Helper()
	cfg := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin", Namespace: namespace}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAgainstAPIServer runs the commands against a real API server
// holding a pool, a Service whose address node-a answers for, and a
// pending Service, statuses written as the controller and a speaker would.
func TestAgainstAPIServer(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	c := env.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plugin"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "plugin-pool"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.16/28"}}}
	l2 := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "plugin-l2"}, Spec: v1alpha1.L2AdvertisementSpec{IPPools: v1alpha1.ObjectNames{"plugin-pool"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	na := &v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	for _, o := range []client.Object{pool, l2, node, na} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %s: %v", o.GetName(), err)
		}
	}
	pool.Status = v1alpha1.IPPoolStatus{IPv4: &v1alpha1.AddressCounts{Total: 16, Assigned: 1, Available: 15},
		Conditions: []metav1.Condition{{Type: inspect.ConditionValid, Status: metav1.ConditionTrue, Reason: "Valid", Message: "in use", LastTransitionTime: metav1.Now()}}}
	if err := c.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}
	na.Status = v1alpha1.NodeAnnouncementStatus{Members: 1, Layer2Addresses: 1,
		Layer2:      []v1alpha1.L2Announcement{{Address: "203.0.113.17", Services: []string{"plugin/web"}, Interfaces: []string{"eth0"}, Since: metav1.Now()}},
		BGPSessions: []v1alpha1.BGPSession{{Peer: "rtr", Address: "198.51.100.1", State: "Established", Advertised: 0}}}
	if err := c.Status().Update(ctx, na); err != nil {
		t.Fatal(err)
	}
	service := func(name string, cond metav1.Condition, addr string) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "plugin", Name: name}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
		if err := c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		cond.Type, cond.LastTransitionTime = inspect.ConditionIPAllocated, metav1.Now()
		svc.Status.Conditions = []metav1.Condition{cond}
		if addr != "" {
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: addr}}
		}
		if err := c.Status().Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	service("web", metav1.Condition{Status: metav1.ConditionTrue, Reason: "Allocated", Message: `203.0.113.17 from IPPool "plugin-pool"`}, "203.0.113.17")
	service("stuck", metav1.Condition{Status: metav1.ConditionFalse, Reason: "PoolExhausted", Message: `no IPv4 address left in IPPool "plugin-pool"`}, "")
	kc := kubeconfig(t, env, "plugin")

	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"explain", "svc/web"}, 0, []string{"Service plugin/web", "from IPPool plugin-pool", "node node-a answers ARP on eth0", "no selector and no endpoints"}},
		{[]string{"explain", "stuck", "-n", "plugin"}, 0, []string{"reason PoolExhausted", "spec.addresses"}},
		{[]string{"explain", "service/missing"}, 1, []string{"service plugin/missing not found"}},
		{[]string{"explain", "web", "-n", "default"}, 1, []string{"service default/web not found"}},
		{[]string{"who-has", "203.0.113.17"}, 0, []string{"IPPool plugin-pool", "plugin/web", "node node-a answers ARP"}},
		{[]string{"who-has", "203.0.113.18"}, 0, []string{"not assigned to any Service"}},
		{[]string{"status"}, 0, []string{"plugin-pool", "1/15/16", "node-a", "203.0.113.17", "rtr", "Established"}},
	} {
		code, out, stderr := runCmd("", append(tc.args, "--kubeconfig", kc)...)
		all := out + stderr
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; output:\n%s", tc.args, code, tc.code, all)
		}
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("%v: the output lacks %q:\n%s", tc.args, w, all)
			}
		}
	}

	// The structured forms carry the same facts.
	for _, format := range []string{"json", "yaml"} {
		code, out, stderr := runCmd("", "explain", "svc/web", "-o", format, "--kubeconfig", kc)
		var e inspect.Explanation
		if code != 0 || yaml.Unmarshal([]byte(out), &e) != nil {
			t.Fatalf("-o %s: exit %d, %s %s", format, code, out, stderr)
		}
		if len(e.Addresses) != 1 || e.Addresses[0].Pool != "plugin-pool" || len(e.Addresses[0].Layer2) != 1 || e.Addresses[0].Layer2[0].Node != "node-a" || e.Allocation == nil || e.Allocation.Reason != "Allocated" {
			t.Errorf("-o %s: %s", format, fmt.Sprintf("%+v", e))
		}
	}
	code, out, _ := runCmd("", "status", "-o", "json", "--kubeconfig", kc)
	var st inspect.StatusReport
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Sessions) != 1 || st.Sessions[0].State != "Established" {
		t.Errorf("status -o json: exit %d, %s", code, out)
	}
}
