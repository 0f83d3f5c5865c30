package suite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestSecurity checks, on a lab installed from the chart, what issue 17
// asks of the speakers' reports, the metrics and the health probes:
// a speaker writes only its own node's NodeAnnouncement (the chart's
// admission policy, by the node named in its Pod-bound token), metrics
// answer only callers the chart's reader role admits, and the speakers'
// probes answer on the node itself and nowhere else.
func TestSecurity(t *testing.T) {
	l, c := startLab(t, 2)
	t.Run("own-nodeannouncement", func(t *testing.T) { ownAnnouncement(t, l, c) })
	t.Run("metrics", func(t *testing.T) { metricsNeedReader(t, l) })
	t.Run("health", func(t *testing.T) { healthOnNode(t, l) })
}

var announcementsGVR = schema.GroupVersionResource{Group: "ironlb.io", Version: "v1alpha1", Resource: "nodeannouncements"}

// asToken is a dynamic client that acts with a bearer token.
func asToken(t *testing.T, l *lab.Lab, token string) dynamic.Interface {
	t.Helper()
	admin, err := clientcmd.BuildConfigFromFlags("", l.CP.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = token
	return dynamic.NewForConfigOrDie(cfg)
}

// asKubeconfig is a dynamic client that acts as a kubeconfig says.
func asKubeconfig(t *testing.T, path string) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return dynamic.NewForConfigOrDie(cfg)
}

func ownAnnouncement(t *testing.T, l *lab.Lab, c client.Client) {
	ctx := context.Background()
	node1, node2 := l.Plan.Nodes[0].Name, l.Plan.Nodes[1].Name
	// The speakers themselves write under the policy: each report exists.
	for _, n := range []string{node1, node2} {
		testutil.Eventually(t, "the NodeAnnouncement of "+n+" written by its speaker", func() (bool, string) {
			var na v1alpha1.NodeAnnouncement
			err := c.Get(ctx, client.ObjectKey{Name: n}, &na)
			return err == nil, fmt.Sprint(err)
		})
	}
	speaker1 := asKubeconfig(t, l.SpeakerKubeconfig(node1)).Resource(announcementsGVR)
	wrote := "written by the speaker of " + node1
	patch := []byte(fmt.Sprintf(`{"status":{"fenced":%q}}`, wrote))

	_, err := speaker1.Patch(ctx, node2, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	want := fmt.Sprintf("NodeAnnouncement %s: the speaker on node %s may write only NodeAnnouncement %s", node2, node1, node1)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("the speaker of %s patched %s's NodeAnnouncement status: %v, want Forbidden with %q", node1, node2, err, want)
	}
	var na v1alpha1.NodeAnnouncement
	if err := c.Get(ctx, client.ObjectKey{Name: node2}, &na); err != nil {
		t.Fatal(err)
	} else if na.Status.Fenced == wrote {
		t.Errorf("NodeAnnouncement %s holds what the speaker of %s wrote", node2, node1)
	}
	_, err = speaker1.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "ironlb.io/v1alpha1", "kind": "NodeAnnouncement", "metadata": map[string]any{"name": "not-a-node"}}}, metav1.CreateOptions{})
	if want := "the speaker on node " + node1; !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("the speaker of %s created NodeAnnouncement not-a-node: %v, want Forbidden with %q", node1, err, want)
	}
	if _, err := speaker1.Patch(ctx, node1, types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Errorf("the speaker of %s patching its own NodeAnnouncement: %v", node1, err)
	}

	// The speakers' ServiceAccount with a token bound to no Pod: its
	// node is unknown, so it may write no report at all.
	pod, err := l.Clientset.CoreV1().Pods(lab.ChartNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=speaker", FieldSelector: "spec.nodeName=" + node1})
	if err != nil || len(pod.Items) != 1 {
		t.Fatalf("the speaker Pod of %s: %v %v", node1, err, pod)
	}
	sa := pod.Items[0].Spec.ServiceAccountName
	tr, err := l.Clientset.CoreV1().ServiceAccounts(lab.ChartNamespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unbound := asToken(t, l, tr.Status.Token).Resource(announcementsGVR)
	_, err = unbound.Patch(ctx, node1, types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
	if want := "its token names no node"; !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("a token of %s bound to no Pod patched %s's NodeAnnouncement: %v, want Forbidden with %q", sa, node1, err, want)
	}

	// The control: without the policy's binding, RBAC alone lets the
	// speaker of node1 write node2's report (a dry run), so what refused
	// it above was the policy.
	bindings, err := l.Clientset.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil || len(bindings.Items) != 1 {
		t.Fatalf("the chart's ValidatingAdmissionPolicyBinding: %v %v", err, bindings)
	}
	if err := l.Clientset.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, bindings.Items[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "RBAC alone to let the speaker of "+node1+" write "+node2+"'s NodeAnnouncement", func() (bool, string) {
		_, err := speaker1.Patch(ctx, node2, types.MergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
		return err == nil, fmt.Sprint(err)
	})
}

// scrape asks url from the control plane's namespace (the LAN, as
// Prometheus would) with a token ("": none).
func scrape(l *lab.Lab, url, token string) (int, string, error) {
	resp, err := lab.ScrapeClient(l.Plan.ControlPlane.NetNS, token, 5*time.Second).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func metricsNeedReader(t *testing.T, l *lab.Lab) {
	ctx := context.Background()
	// Authenticated, but not bound to the reader role.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: lab.ScraperNamespace, Name: "not-a-reader"}}
	if _, err := l.Clientset.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := l.Clientset.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	speakerURL, err := l.SpeakerMetricsURL(l.Plan.Nodes[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	controllerURL, err := l.ControllerMetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, want string }{{speakerURL, "ironlb_memberlist_members"}, {controllerURL, "# HELP"}} {
		for _, who := range []struct {
			name, token string
			status      int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"a ServiceAccount without the reader role", tr.Status.Token, http.StatusForbidden},
			{"the scraper bound to the chart's reader role", l.MetricsToken(), http.StatusOK},
		} {
			status, body, err := scrape(l, tc.url, who.token)
			if err != nil || status != who.status {
				t.Errorf("%s with %s: %d %v, want %d\n%s", tc.url, who.name, status, err, who.status, body)
			} else if status == http.StatusOK && !strings.Contains(body, tc.want) {
				t.Errorf("%s with %s: no %s in\n%s", tc.url, who.name, tc.want, body)
			}
		}
	}
}

func healthOnNode(t *testing.T, l *lab.Lab) {
	n := l.Plan.Nodes[0]
	if err := l.SpeakerReady(n.Name); err != nil {
		t.Errorf("the speaker of %s, probed from the node as the kubelet does: %v", n.Name, err)
	}
	port, err := l.SpeakerPort("health")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s/readyz", netip.AddrPortFrom(n.Addr.Addr(), port))
	for _, from := range []string{l.Plan.ControlPlane.NetNS, n.NetNS} {
		if body, err := lab.HTTPGetFrom(from, url, 2*time.Second); err == nil {
			t.Errorf("%s answered from namespace %s (%q): the speaker's probes must answer on the node's loopback only", url, from, body)
		}
	}
}
