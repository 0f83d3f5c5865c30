// Package metricstest checks, against a real API server, who may read a
// binary's /metrics: callers without a token, callers whose
// ServiceAccount lacks the chart's metrics reader role, and callers that
// have it. The role comes from the chart itself (rendered with the Helm
// that make tools builds), so a chart that grants too little fails too.
package metricstest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// ReaderRole renders the chart and returns its metrics reader
// ClusterRole. Without bin/helm the test fails in CI and skips elsewhere.
func ReaderRole(t testing.TB) *rbacv1.ClusterRole {
	t.Helper()
	helm := filepath.Join(testenv.RepoRoot(), "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (make tools)", err)
		}
		t.Skipf("%v (run make tools)", err)
	}
	out, err := exec.Command(helm, "template", "ironlb", filepath.Join(testenv.RepoRoot(), "charts", "ironlb"),
		"--namespace", "ironlb-system", "--show-only", "templates/rbac-metrics.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var role rbacv1.ClusterRole
		if err := dec.Decode(&role); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding the chart's metrics RBAC: %v", err)
		}
		if role.Kind == "ClusterRole" && strings.HasSuffix(role.Name, "-metrics-reader") {
			return &role
		}
	}
	t.Fatalf("the chart renders no ClusterRole …-metrics-reader:\n%s", out)
	return nil
}

var seq atomic.Int64

// Tokens makes two ServiceAccounts in a namespace of their own, binds the
// first to the chart's reader role (ReaderRole) and returns a token of
// each: reader may scrape, other is authenticated but not authorized.
func Tokens(t testing.TB, cfg *rest.Config) (reader, other string) {
	t.Helper()
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cfg)
	role := ReaderRole(t)
	role.ResourceVersion = ""
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the chart's ClusterRole %s: %v", role.Name, err)
	}
	ns := fmt.Sprintf("scrapers-%d-%d", os.Getpid(), seq.Add(1))
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(name string) string {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("a token for ServiceAccount %s/%s: %v", ns, name, err)
		}
		return tr.Status.Token
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reader"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	return token("reader"), token("other")
}

// Kubeconfig writes a kubeconfig for cfg (as the binaries read one with
// --kubeconfig) and returns its path.
func Kubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a server the test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Get asks url with a bearer token ("": none) over HTTPS without
// verifying the server, as a scraper does with a self-signed certificate.
func Get(url, token string) (status int, body string, err error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Check waits until url answers, then checks that a caller without a
// token is refused (401), one whose ServiceAccount lacks the reader role
// too (403), and the reader gets metrics holding want; and that plain
// HTTP gets no metrics.
func Check(t testing.TB, url, reader, other, want string) {
	t.Helper()
	testutil.Eventually(t, "the metrics server to answer at "+url, func() (bool, string) {
		_, _, err := Get(url, "")
		return err == nil, fmt.Sprint(err)
	})
	for _, tc := range []struct {
		who, token string
		status     int
	}{
		{"a caller without a token", "", http.StatusUnauthorized},
		{"a ServiceAccount without the reader role", other, http.StatusForbidden},
		{"a ServiceAccount with the reader role", reader, http.StatusOK},
	} {
		status, body, err := Get(url, tc.token)
		if err != nil || status != tc.status {
			t.Errorf("%s: %d %v, want %d\n%s", tc.who, status, err, tc.status, body)
			continue
		}
		if status == http.StatusOK && !strings.Contains(body, want) {
			t.Errorf("%s: the answer holds no %s:\n%s", tc.who, want, body)
		}
		if status != http.StatusOK && strings.Contains(body, "# HELP") {
			t.Errorf("%s was refused (%d) but given metrics:\n%s", tc.who, status, body)
		}
	}
	plain := "http://" + strings.TrimPrefix(url, "https://")
	c := &http.Client{Timeout: 10 * time.Second}
	if resp, err := c.Get(plain); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "# HELP") {
			t.Errorf("plain HTTP %s answered with metrics:\n%s", plain, b)
		}
	}
}

// Run runs a binary's run function until the test ends, then stops it
// and reports the error it returned.
func Run(t testing.TB, name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

// familyLabel finds the family label of a sample line.
var familyLabel = regexp.MustCompile(`[{,]family="([^"]*)"`)

// buildInfo matches the one sample of ironlb_build_info.
var buildInfo = regexp.MustCompile(`(?m)^ironlb_build_info\{[^}]*goversion="go[^"]+"[^}]*revision="[^"]+"[^}]*version="[^"]+"[^}]*\} 1$`)

// CheckConventions checks what every ironlb binary's metrics have in
// common, in the text a scrape returned: the family label of every
// sample is ipv4 or ipv6, ironlb_build_info is served as 1 with its
// labels set, and ironlb_pool_addresses has no state that is the sum of
// the others. It returns the problems found, none when all is well.
func CheckConventions(body string) []string {
	var problems []string
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, m := range familyLabel.FindAllStringSubmatch(line, -1) {
			if m[1] != "ipv4" && m[1] != "ipv6" {
				problems = append(problems, fmt.Sprintf("family %q is neither ipv4 nor ipv6: %s", m[1], line))
			}
		}
		if strings.HasPrefix(line, "ironlb_pool_addresses{") && strings.Contains(line, `state="total"`) {
			problems = append(problems, "ironlb_pool_addresses has a total beside its parts: "+line)
		}
	}
	if !buildInfo.MatchString(body) {
		problems = append(problems, "no ironlb_build_info 1 with goversion, revision and version")
	}
	return problems
}
