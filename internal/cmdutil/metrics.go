package cmdutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// MetricsServing says how a binary protects its /metrics endpoint. The
// zero value is the safe one: HTTPS, and only callers whose bearer token
// the API server accepts (TokenReview) and who may get the non-resource
// URL /metrics (SubjectAccessReview) are answered.
type MetricsServing struct {
	// Insecure serves plain HTTP to whoever connects, for an
	// authenticating proxy of the operator's own in front.
	Insecure bool
	// CertDir holds the serving certificate (tls.crt, tls.key), read
	// again whenever it changes; empty makes a self-signed one in memory
	// at start, which scrapers cannot verify.
	CertDir string
}

// Names of the files in MetricsServing.CertDir: those of a Secret of
// type kubernetes.io/tls, so one can be mounted as it is.
const (
	MetricsCertFile = "tls.crt"
	MetricsKeyFile  = "tls.key"
)

// AddFlags registers the metrics protection flags.
func (m *MetricsServing) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&m.Insecure, "metrics-insecure", false, "serve /metrics over plain HTTP to anyone who connects: no TLS, no authentication, no authorization. Only for a proxy of your own in front that does those; bind --metrics-bind-address to 127.0.0.1 then")
	fs.StringVar(&m.CertDir, "metrics-cert-dir", "", "folder holding the metrics serving certificate as "+MetricsCertFile+" and "+MetricsKeyFile+" (a mounted kubernetes.io/tls Secret), read again when it changes; empty: a self-signed certificate made at start, which scrapers cannot verify")
}

// Validate checks the flags against each other, without touching files.
func (m MetricsServing) Validate() error {
	if m.Insecure && m.CertDir != "" {
		return fmt.Errorf("--metrics-cert-dir %s: plain HTTP (--metrics-insecure) uses no certificate; drop one of the two", m.CertDir)
	}
	return nil
}

// ServerOptions are controller-runtime's metrics server options for addr
// ("0": no metrics server). With a CertDir both files must be there:
// controller-runtime would otherwise serve a self-signed certificate in
// their place without a word, and scrapers that verify would fail with
// no hint why.
func (m MetricsServing) ServerOptions(addr string) (metricsserver.Options, error) {
	o := metricsserver.Options{BindAddress: addr}
	if err := m.Validate(); err != nil {
		return o, err
	}
	if m.Insecure || addr == "0" {
		return o, nil
	}
	o.SecureServing = true
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	// HTTP/2 stays off: its stream reset floods (CVE-2023-44487) hit
	// servers before any authentication, and a scrape gains nothing
	// from it.
	o.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.NextProtos = []string{"http/1.1"}
		c.MinVersion = tls.VersionTLS12
	}}
	if m.CertDir != "" {
		var errs []error
		for _, f := range []string{MetricsCertFile, MetricsKeyFile} {
			if _, err := os.Stat(filepath.Join(m.CertDir, f)); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return o, fmt.Errorf("--metrics-cert-dir %s must hold %s and %s: %w", m.CertDir, MetricsCertFile, MetricsKeyFile, err)
		}
		o.CertDir, o.CertName, o.KeyName = m.CertDir, MetricsCertFile, MetricsKeyFile
		return o, nil
	}
	// Made here rather than left to controller-runtime, which would first
	// look for files in a folder under $TMPDIR that anyone on the host
	// might have filled.
	cert, err := selfSignedCert(time.Now())
	if err != nil {
		return o, fmt.Errorf("making the self-signed metrics certificate: %w", err)
	}
	o.TLSOpts = append(o.TLSOpts, func(c *tls.Config) {
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	})
	return o, nil
}

// selfSignedCert makes a certificate for the metrics endpoint that only
// encrypts: no scraper can verify it. It lasts ten years, since its
// expiry would protect nothing and only break the scrapes of a process
// that runs long.
func selfSignedCert(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ironlb-metrics"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// WarnInsecure logs, once at start, that /metrics is open to anyone who
// reaches addr, so the choice shows in the logs as well as the flags.
func (m MetricsServing) WarnInsecure(log *slog.Logger, addr string) {
	if m.Insecure && addr != "0" {
		log.Warn("metrics are served over plain HTTP without authentication (--metrics-insecure); anyone who reaches this address can read them", "address", addr)
	}
}
