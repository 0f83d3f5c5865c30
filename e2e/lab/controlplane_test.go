package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ironlb/ironlb/internal/testutil"
)

// repoBinaries are the programs `make tools` and `make build` put in bin/.
func repoBinaries(t *testing.T) Binaries {
	t.Helper()
	b, err := BinariesIn(repoBin())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (make tools and make build make it)", err)
		}
		t.Skipf("%v (run make tools build)", err)
	}
	return b
}

func repoBin() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "bin")
}

func TestControlPlane(t *testing.T) {
	bin := repoBinaries(t)
	p := upLab(t, 2)
	dir := t.TempDir()
	ctx := context.Background()
	cp, err := StartControlPlane(ctx, p, dir, bin)
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(cp.Stop)

	// From a node, with the kubeconfig's CA and token.
	if body, err := readyzFrom(p.Nodes[0].NetNS, cp); err != nil || body != "ok" {
		t.Errorf("/readyz from %s: %q, %v", p.Nodes[0].NetNS, body, err)
	}

	// From the host: kube-controller-manager makes the default
	// ServiceAccount, and turns a ready Pod into an EndpointSlice entry.
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	testutil.Eventually(t, "the default ServiceAccount", func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, ""
	})
	// The EndpointSlice controller leaves out Pods of Nodes it does not know.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: p.Nodes[0].Name}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	no := false
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
		NodeName: p.Nodes[0].Name, AutomountServiceAccountToken: &no,
		Containers: []corev1.Container{{Name: "web", Image: "none"}}}}
	if pod, err = cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setReady := func(ready bool) {
		t.Helper()
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "203.0.113.2", PodIPs: []corev1.PodIP{{IP: "203.0.113.2"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}, {Type: corev1.ContainersReady, Status: st}}}
		var err error
		if pod, err = cs.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	endpointReady := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			list, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
			if err != nil {
				return false, err.Error()
			}
			for _, s := range list.Items {
				for _, e := range s.Endpoints {
					if e.Addresses[0] == "203.0.113.2" && e.Conditions.Ready != nil && *e.Conditions.Ready == want {
						return true, ""
					}
				}
			}
			return false, "not yet"
		}
	}
	setReady(true)
	testutil.Eventually(t, "the ready pod in the EndpointSlice", endpointReady(true))
	setReady(false)
	testutil.Eventually(t, "the pod marked unready in the EndpointSlice", endpointReady(false))
}

// readyzFrom asks the API server's /readyz from inside a namespace.
func readyzFrom(ns string, cp *ControlPlane) (string, error) {
	pemCA, err := os.ReadFile(cp.CAFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return DialFrom(ctx, ns, network, addr)
		},
	}}
	req, _ := http.NewRequest(http.MethodGet, cp.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+cp.Token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
