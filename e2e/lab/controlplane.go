package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Binaries are the programs the lab runs.
type Binaries struct {
	Etcd, APIServer, ControllerManager string
	// Controller and Speaker are ironlb's (make build).
	Controller, Speaker string
	// Helm (make tools) renders Chart, ironlb's chart, which the lab
	// installs.
	Helm, Chart string
	// Images holds the image archives of make images (controller.tar,
	// speaker.tar), which the lab runs with RuntimeImage.
	Images string
}

// BinariesIn finds the lab's programs in a folder (the repository's bin/,
// filled by make tools and make build), and the chart and the images'
// folder beside it (whose archives Binaries.ImageArchives checks), or the
// images' folder ImagesEnv names.
func BinariesIn(bin string) (Binaries, error) {
	b := Binaries{Etcd: filepath.Join(bin, "etcd"), APIServer: filepath.Join(bin, "kube-apiserver"), ControllerManager: filepath.Join(bin, "kube-controller-manager"),
		Controller: filepath.Join(bin, "controller"), Speaker: filepath.Join(bin, "speaker"),
		Helm: filepath.Join(bin, "helm"), Chart: filepath.Join(bin, "..", "charts", "ironlb"), Images: filepath.Join(bin, "..", "_output", "images")}
	if dir := os.Getenv(ImagesEnv); dir != "" {
		b.Images = dir
	}
	for _, p := range []string{b.Etcd, b.APIServer, b.ControllerManager, b.Controller, b.Speaker, b.Helm, b.Chart} {
		if _, err := os.Stat(p); err != nil {
			return b, err
		}
	}
	return b, nil
}

// ControlPlane is the lab's etcd, kube-apiserver and
// kube-controller-manager, running in the control plane's namespace.
type ControlPlane struct {
	// URL is the API server's address on the LAN.
	URL string
	// Kubeconfig is a file that reaches the API server as an administrator
	// from the host and from every namespace of the lab.
	Kubeconfig string
	CAFile     string
	Token      string
	procs      []*Process
}

// clusterNet6 is the lab's IPv6 ClusterIP range, so Services may be IPv6
// or dual-stack.
var clusterNet6 = netip.MustParsePrefix("2001:db8:ffff::/112")

// StartControlPlane starts the control plane in p's control plane
// namespace, with its files in dir, and waits until the API server is ready.
func StartControlPlane(ctx context.Context, p Plan, dir string, bin Binaries) (cp *ControlPlane, err error) {
	cp = &ControlPlane{URL: fmt.Sprintf("https://%s:6443", p.ControlPlane.Addr.Addr())}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	files, err := writeSecrets(dir, p)
	if err != nil {
		return nil, err
	}
	cp.CAFile, cp.Token, cp.Kubeconfig = files.ca, files.token, filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(cp.Kubeconfig, cp.URL, files.ca, files.token); err != nil {
		return nil, err
	}
	ns := p.ControlPlane.NetNS
	// Every lab starts from an empty cluster, also in a folder reused
	// from an earlier lab.
	if err := os.RemoveAll(filepath.Join(dir, "etcd")); err != nil {
		return nil, err
	}
	etcd, err := startIn(dir, "etcd", ns, nil, bin.Etcd,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "default=http://127.0.0.1:2380", "--name", "default")
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, etcd)
	api, err := startIn(dir, "kube-apiserver", ns, nil, bin.APIServer,
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0", "--secure-port", "6443", "--advertise-address", p.ControlPlane.Addr.Addr().String(),
		"--tls-cert-file", files.serverCert, "--tls-private-key-file", files.serverKey,
		"--client-ca-file", files.ca,
		"--token-auth-file", files.tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", files.saPub, "--service-account-signing-key-file", files.saKey,
		"--service-cluster-ip-range", ClusterNet.String()+","+clusterNet6.String())
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, api)
	if err := cp.waitReady(ctx, api); err != nil {
		return nil, err
	}
	kcm, err := startIn(dir, "kube-controller-manager", ns, nil, bin.ControllerManager,
		"--kubeconfig", cp.Kubeconfig, "--leader-elect=false",
		"--controllers", "endpointslice,endpointslicemirroring,serviceaccount,serviceaccount-token,namespace,garbagecollector,deployment,replicaset",
		"--service-account-private-key-file", files.saKey, "--root-ca-file", files.ca,
		"--bind-address", "127.0.0.1", "--secure-port", "10257")
	if err != nil {
		return nil, err
	}
	cp.procs = append(cp.procs, kcm)
	return cp, nil
}

// Stop stops the control plane's processes, newest first.
func (cp *ControlPlane) Stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].Stop()
	}
	cp.procs = nil
}

// waitReady polls the API server's /readyz until it answers 200, the API
// server exits, or ctx ends.
func (cp *ControlPlane) waitReady(ctx context.Context, api *Process) error {
	pem, err := os.ReadFile(cp.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cp.Token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz answered %s", resp.Status)
		}
		last = err
		if exited, werr := api.Exited(); exited {
			return fmt.Errorf("kube-apiserver exited (%v); see its log", werr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready: %w", errors.Join(ctx.Err(), last))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type secretFiles struct {
	ca, serverCert, serverKey, saKey, saPub, tokens string
	token                                           string
}

// writeSecrets makes the control plane's CA, serving certificate, service
// account key pair and admin token.
func writeSecrets(dir string, p Plan) (secretFiles, error) {
	f := secretFiles{
		ca: filepath.Join(dir, "ca.crt"), serverCert: filepath.Join(dir, "apiserver.crt"), serverKey: filepath.Join(dir, "apiserver.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"), tokens: filepath.Join(dir, "tokens.csv"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ironlb-lab-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{p.ControlPlane.Addr.Addr().AsSlice(), net.IPv4(127, 0, 0, 1), ClusterNet.Addr().Next().AsSlice()},
		DNSNames:    []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return f, err
	}
	f.token = hex.EncodeToString(tok)
	return f, errors.Join(
		writePEM(f.ca, "CERTIFICATE", caDER),
		writePEM(f.serverCert, "CERTIFICATE", srvDER),
		writeKey(f.serverKey, srvKey),
		writeKey(f.saKey, saKey),
		writePub(f.saPub, &saKey.PublicKey),
		os.WriteFile(f.tokens, []byte(f.token+",admin,admin,system:masters\n"), 0o600),
	)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

func writePub(path string, k *ecdsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "PUBLIC KEY", der)
}

func writeKubeconfig(path, url, caFile, token string) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: lab
  context: {cluster: lab, user: admin}
current-context: lab
`, url, caFile, token)
	return os.WriteFile(path, []byte(kc), 0o600)
}
