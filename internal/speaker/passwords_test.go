package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// faultyReader passes reads to the API server, or, while a fault is set,
// fails them (as when the API server is down) or holds them until the
// caller gives up (as when it hangs).
type faultyReader struct {
	client.Reader
	mu     sync.Mutex
	fault  string // "", "fail" or "hang"
	faulty int    // reads met by the fault
}

func (f *faultyReader) set(fault string) {
	f.mu.Lock()
	f.fault, f.faulty = fault, 0
	f.mu.Unlock()
}

func (f *faultyReader) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faulty
}

func (f *faultyReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	f.mu.Lock()
	fault := f.fault
	if fault != "" {
		f.faulty++
	}
	f.mu.Unlock()
	switch fault {
	case "fail":
		return errors.New("dial tcp 192.0.2.1:6443: connect: connection refused")
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	}
	return f.Reader.Get(ctx, key, obj, opts...)
}

// TestPasswordsSurviveAPIOutages: a peer keeps the password last read
// while its Secret cannot be read, failing or hanging, and the BGP side
// keeps being given its routes meanwhile (the reads are off the sync
// path); only a definite answer, the Secret gone, disables the peer.
func TestPasswordsSurviveAPIOutages(t *testing.T) {
	// Restored after the speaker has stopped: cleanups run last first.
	p, d := passwordRefreshPeriod, passwordReadTimeout
	t.Cleanup(func() { passwordRefreshPeriod, passwordReadTimeout = p, d })
	passwordRefreshPeriod, passwordReadTimeout = 20*time.Millisecond, 200*time.Millisecond
	c := testenv.Get(t).Client
	ctx := context.Background()
	createNodeWithIP(t, "pw-a", "198.51.100.21")
	ns := namespace(t, "pw")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5"}, Data: map[string][]byte{"password": []byte("first")}}
	create(t,
		secret,
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pw"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.160/28"}}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "pw-peer"}, Spec: v1alpha1.BGPPeerSpec{
			PeerAddress: "198.51.100.3", PeerASN: 64512, MyASN: 64512,
			PasswordSecretRef: &v1alpha1.SecretKeyRef{Namespace: ns, Name: "md5", Key: "password"},
		}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "pw"}, Spec: v1alpha1.BGPAdvertisementSpec{IPPools: v1alpha1.ObjectNames{"pw"}}},
	)
	fr := &faultyReader{}
	m := &members{bgp: true, secrets: func(r client.Reader) client.Reader { fr.Reader = r; return fr }}
	f := cluster(t, m, nil, "pw-a")["pw-a"].bgp
	expectPassword := func(what, want, disabled string) {
		t.Helper()
		testutil.Eventually(t, what, func() (bool, string) {
			p, _ := f.peer("pw-peer")
			ok := p.Password == want && (disabled == "" && p.Disabled == "" || disabled != "" && strings.Contains(p.Disabled, disabled))
			return ok, fmt.Sprintf("password %q disabled %q", p.Password, p.Disabled)
		})
	}
	expectPassword("the password read", "first", "")

	// The API server refuses connections for many refreshes: the password
	// stays, the peer stays enabled.
	fr.set("fail")
	testutil.Eventually(t, "several failed reads", func() (bool, string) { return fr.count() >= 5, fmt.Sprint(fr.count()) })
	if p, _ := f.peer("pw-peer"); p.Password != "first" || p.Disabled != "" {
		t.Fatalf("after failed reads: password %q disabled %q, want the last one read kept", p.Password, p.Disabled)
	}

	// The API server hangs: reads give up after their timeout, and the
	// sync goes on meanwhile: a new endpoint is advertised.
	fr.set("hang")
	testutil.Eventually(t, "a read given up", func() (bool, string) { return fr.count() >= 2, fmt.Sprint(fr.count()) })
	svc := lbService(t, ns, "web", false, "203.0.113.161")
	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.2"}, NodeName: new("elsewhere")}},
	})
	testutil.Eventually(t, "the route advertised while Secret reads hang", func() (bool, string) {
		p, _ := f.peer("pw-peer")
		_, ok := p.Routes[netip.MustParsePrefix("203.0.113.161/32")]
		return ok && p.Password == "first" && p.Disabled == "", fmt.Sprintf("%+v", p)
	})

	// The API server is back and the password changed: the new one is
	// taken at the next refresh.
	fr.set("")
	secret.Data["password"] = []byte("second")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	expectPassword("the new password", "second", "")

	// A definite answer: the Secret is gone. The peer is disabled and the
	// message names the Secret.
	if err := c.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	expectPassword("the peer disabled", "", "Secret "+ns+"/md5 not found")
}
