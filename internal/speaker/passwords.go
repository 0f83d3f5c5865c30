package speaker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/config"
)

// Password Secrets are read, not watched, again every
// passwordRefreshPeriod and on every configuration change; each read gives
// up after passwordReadTimeout. Variables for tests.
var (
	passwordRefreshPeriod = time.Minute
	passwordReadTimeout   = 5 * time.Second
)

// secretRef names one key of one Secret.
type secretRef struct{ namespace, name, key string }

func (r secretRef) String() string { return r.namespace + "/" + r.name }

// password is a peer's TCP MD5 password, or why it cannot be had.
type password struct {
	value, problem string
}

// passwords reads the BGP peers' password Secrets in a goroutine of its
// own, so that the sync goroutine never waits for the API server: it only
// takes what was last read. A Secret that cannot be read (the API server
// down, slow or refusing) leaves the last password read in use; only a
// definite answer takes it away: the Secret is not found, or its key is
// missing or not a valid password. Dropping a password would close the BGP
// session and withdraw every route of the node for as long as the API
// server is out.
type passwords struct {
	reader  client.Reader
	log     *slog.Logger
	changed func() // called after a read changed a password or a problem
	kick    chan struct{}

	mu     sync.Mutex
	wanted map[secretRef]bool     // guarded by mu
	got    map[secretRef]password // guarded by mu; the last result of each
}

func newPasswords(r client.Reader, log *slog.Logger, changed func()) *passwords {
	return &passwords{reader: r, log: log, changed: changed, kick: make(chan struct{}, 1),
		wanted: map[secretRef]bool{}, got: map[secretRef]password{}}
}

// want sets the Secrets to read, those the peers of cfg name, and asks
// for them all to be read again now (a change of configuration is the way
// to make the speaker read a Secret at once).
func (p *passwords) want(cfg *config.Config) {
	wanted := map[secretRef]bool{}
	if cfg != nil {
		for _, peer := range cfg.BGPPeers {
			if r := peer.Password; r != nil {
				wanted[secretRef{r.Namespace, r.Name, r.Key}] = true
			}
		}
	}
	p.mu.Lock()
	p.wanted = wanted
	maps.DeleteFunc(p.got, func(r secretRef, _ password) bool { return !wanted[r] })
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// get returns the password of a Secret key, and false until it was read
// once.
func (p *passwords) get(r secretRef) (password, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pw, ok := p.got[r]
	return pw, ok
}

// run reads the wanted Secrets when asked and every passwordRefreshPeriod
// until ctx ends.
func (p *passwords) run(ctx context.Context) {
	t := time.NewTicker(passwordRefreshPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
		}
		p.readAll(ctx)
	}
}

func (p *passwords) readAll(ctx context.Context) {
	p.mu.Lock()
	refs := slices.SortedFunc(maps.Keys(p.wanted), func(a, b secretRef) int {
		return cmp.Or(strings.Compare(a.namespace, b.namespace), strings.Compare(a.name, b.name), strings.Compare(a.key, b.key))
	})
	p.mu.Unlock()
	changed := false
	for _, r := range refs {
		pw, definite := p.read(ctx, r)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		old, had := p.got[r]
		switch {
		case !p.wanted[r]:
			// No longer wanted since the read began.
		case definite || !had:
			p.got[r] = pw
			changed = changed || old != pw
		default:
			// The API server did not answer: keep what was read last.
			if old.value != "" {
				p.log.Warn("cannot read a BGP password Secret; keeping the password read last", "secret", r.String(), "key", r.key, "error", pw.problem)
			}
		}
		p.mu.Unlock()
	}
	if changed {
		p.changed()
	}
}

// read reads one Secret key, within passwordReadTimeout; definite is false
// when the API server gave no answer about the Secret itself (a timeout,
// a refused connection, a server error, a refused permission).
func (p *passwords) read(ctx context.Context, r secretRef) (pw password, definite bool) {
	ctx, cancel := context.WithTimeout(ctx, passwordReadTimeout)
	defer cancel()
	var sec corev1.Secret
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: r.name}, &sec)
	data := sec.Data[r.key]
	switch {
	case apierrors.IsNotFound(err):
		return password{problem: fmt.Sprintf("spec.passwordSecretRef: Secret %s not found; it must hold the TCP MD5 password (1 to 80 bytes) in key %q", r, r.key)}, true
	case err != nil:
		return password{problem: fmt.Sprintf("spec.passwordSecretRef: cannot read Secret %s: %v", r, err)}, false
	case len(data) == 0:
		return password{problem: fmt.Sprintf("spec.passwordSecretRef: Secret %s has no data key %q; it must hold the TCP MD5 password (1 to 80 bytes)", r, r.key)}, true
	case len(data) > 80:
		return password{problem: fmt.Sprintf("spec.passwordSecretRef: Secret %s key %q is %d bytes; a TCP MD5 password is at most 80", r, r.key, len(data))}, true
	}
	return password{value: string(data)}, true
}
