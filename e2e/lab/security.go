package lab

// This file is how the lab reaches ironlb the way the chart protects it
// in a cluster: each speaker runs with a token bound to its own Pod, as
// the kubelet mounts one, so that the chart's admission policy knows its
// node; the lab reads metrics over HTTPS with the token of a scraper
// bound to the chart's metrics reader role, as Prometheus would; and it
// probes the speakers' health from the node itself, at the address the
// chart's probe names, as the kubelet would.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The ServiceAccount the lab scrapes metrics as, bound to the chart's
// metrics reader ClusterRole as an operator binds Prometheus'.
const (
	ScraperNamespace = "lab-monitoring"
	ScraperAccount   = "prometheus"
)

// tokenLifetime is longer than any lab runs.
const tokenLifetime = 48 * time.Hour

// podKubeconfig writes a kubeconfig with a token of the pod's
// ServiceAccount bound to the pod: the API server adds the name of the
// pod's node to it, as to the token the kubelet mounts.
func (l *Lab) podKubeconfig(ctx context.Context, pod *corev1.Pod) (string, error) {
	expiry := int64(tokenLifetime / time.Second)
	tr, err := l.Clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &expiry,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token of ServiceAccount %s/%s bound to Pod %s: %w", pod.Namespace, pod.Spec.ServiceAccountName, pod.Name, err)
	}
	path := filepath.Join(l.Dir, pod.Name+".kubeconfig")
	return path, writeKubeconfig(path, l.CP.URL, l.CP.CAFile, tr.Status.Token)
}

// SpeakerKubeconfig is the kubeconfig a node's speaker runs with: a
// token bound to that node's speaker Pod.
func (l *Lab) SpeakerKubeconfig(node string) string { return l.speakerKubeconfigs[node] }

// MetricsReaderRole returns the name of the ClusterRole among the chart's
// objects that lets a scraper get /metrics.
func MetricsReaderRole(objs []*unstructured.Unstructured) (string, error) {
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && strings.HasSuffix(o.GetName(), "-metrics-reader") {
			return o.GetName(), nil
		}
	}
	return "", errors.New("the chart renders no ClusterRole named …-metrics-reader for scrapers")
}

// setupScraper makes the scraper's ServiceAccount, binds it to the
// chart's reader role and returns a token of it.
func (l *Lab) setupScraper(ctx context.Context, readerRole string) (string, error) {
	cs := l.Clientset
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ScraperNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ScraperNamespace, Name: ScraperAccount}}
	if _, err := cs.CoreV1().ServiceAccounts(ScraperNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "lab-" + readerRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: readerRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ScraperNamespace, Name: ScraperAccount}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	expiry := int64(tokenLifetime / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(ScraperNamespace).CreateToken(ctx, ScraperAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token for the scraper %s/%s: %w", ScraperNamespace, ScraperAccount, err)
	}
	return tr.Status.Token, nil
}

// MetricsToken is the scraper's token: its ServiceAccount may get
// /metrics through the chart's reader role.
func (l *Lab) MetricsToken() string { return l.metricsToken }

// ScrapeClient is an HTTPS client in namespace ns that sends token ("":
// none) with every request and makes a new connection each time. It does
// not verify the server: with the chart's defaults each component makes
// its certificate at start, as a ServiceMonitor's insecureSkipVerify
// accepts.
func ScrapeClient(ns, token string, timeout time.Duration) *http.Client {
	base := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return DialFrom(ctx, ns, network, addr)
		},
	}
	return &http.Client{Timeout: timeout, Transport: bearer{token: token, base: base}}
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.base.RoundTrip(r)
}

// SpeakerMetricsURL is a node's speaker's /metrics, at the port the
// chart gives it.
func (l *Lab) SpeakerMetricsURL(node string) (string, error) {
	n, err := l.node(node)
	if err != nil {
		return "", err
	}
	port, err := containerPort(l.speaker.container(), "metrics")
	if err != nil {
		return "", fmt.Errorf("%s: %w", l.speaker.name, err)
	}
	return fmt.Sprintf("https://%s/metrics", netip.AddrPortFrom(n.Addr.Addr(), port)), nil
}

// SpeakerProbe returns where the kubelet would probe a node's speaker at
// path: from the node's namespace (the kubelet runs on the node, and the
// speaker shares its network), at the host and port of the chart's
// readiness probe; a probe without a host goes to the pod's address,
// which is the node's.
func (l *Lab) SpeakerProbe(node, path string) (ns, url string, err error) {
	n, err := l.node(node)
	if err != nil {
		return "", "", err
	}
	c := l.speaker.container()
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return "", "", fmt.Errorf("%s: the chart's speaker has no HTTP readiness probe", l.speaker.name)
	}
	get := c.ReadinessProbe.HTTPGet
	host := n.Addr.Addr()
	if get.Host != "" {
		if host, err = netip.ParseAddr(get.Host); err != nil {
			return "", "", fmt.Errorf("%s: readiness probe host %q: the lab probes addresses only", l.speaker.name, get.Host)
		}
	}
	port := uint16(get.Port.IntValue())
	if get.Port.StrVal != "" {
		if port, err = containerPort(c, get.Port.StrVal); err != nil {
			return "", "", fmt.Errorf("%s: readiness probe: %w", l.speaker.name, err)
		}
	}
	return n.NetNS, fmt.Sprintf("http://%s%s", netip.AddrPortFrom(host, port), path), nil
}

// containerPort resolves a container's port by name.
func containerPort(c corev1.Container, name string) (uint16, error) {
	for _, p := range c.Ports {
		if p.Name == name {
			return uint16(p.ContainerPort), nil
		}
	}
	if n, err := strconv.ParseUint(name, 10, 16); err == nil {
		return uint16(n), nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, name)
}

// ControllerMetricsURL is the controller's /metrics at the control
// plane's LAN address (the lab runs the controller in that namespace),
// at the port the chart gives it.
func (l *Lab) ControllerMetricsURL() (string, error) {
	port, err := containerPort(l.controller.container(), "metrics")
	if err != nil {
		return "", fmt.Errorf("%s: %w", l.controller.name, err)
	}
	return fmt.Sprintf("https://%s/metrics", netip.AddrPortFrom(l.Plan.ControlPlane.Addr.Addr(), port)), nil
}

// SpeakerPort is the port of the chart's speaker container named name.
func (l *Lab) SpeakerPort(name string) (uint16, error) {
	return containerPort(l.speaker.container(), name)
}
