package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// TestLoadKey: the memberlist key comes from a file or a Secret; a bad one
// is refused with an error naming where it came from and what is allowed,
// and no key at all is an explicit nil (unencrypted, which Run logs).
func TestLoadKey(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n" // 32 bytes, base64
	create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keys"}})
	for name, data := range map[string]map[string][]byte{
		"good":  {"key": []byte(good)},
		"two":   {"key": []byte(good), "secondaryKeys": []byte(good + " " + good)},
		"bad2":  {"key": []byte(good), "secondaryKeys": []byte("c2hvcnQ=")},
		"short": {"key": []byte("c2hvcnQ=")},
		"other": {"password": []byte(good)},
	} {
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keys", Name: name}, Data: data})
	}
	tests := []struct {
		name, file, secret string
		secondaryFile      string
		wantLen            int
		wantSecondary      int
		wantErr            []string
	}{
		{name: "secondary keys in a file", file: write("good", good), secondaryFile: write("keys", good+","+good+"\n"), wantLen: 32, wantSecondary: 2},
		{name: "bad secondary keys file", file: write("good", good), secondaryFile: write("keys2", "nope"), wantErr: []string{"--memberlist-secondary-keys-file", "keys2", "key 1 of the list"}},
		{name: "secondary keys file alone", secondaryFile: write("keys3", good), wantErr: []string{"--memberlist-secondary-keys-file needs --memberlist-key-file"}},
		{name: "secondary keys in the secret", secret: "keys/two", wantLen: 32, wantSecondary: 2},
		{name: "bad secondary keys in the secret", secret: "keys/bad2", wantErr: []string{"Secret keys/bad2", "data.secondaryKeys", "5 bytes"}},
		{name: "file", file: write("good", good), wantLen: 32},
		{name: "malformed file", file: write("bad", "not a key at all!\n"), wantErr: []string{"--memberlist-key-file", "bad", "16, 24 or 32"}},
		{name: "missing file", file: filepath.Join(dir, "absent"), wantErr: []string{"--memberlist-key-file", "absent"}},
		{name: "secret", secret: "keys/good", wantLen: 32},
		{name: "short key in secret", secret: "keys/short", wantErr: []string{"Secret keys/short", "data.key", "16, 24 or 32"}},
		{name: "secret without data.key", secret: "keys/other", wantErr: []string{"Secret keys/other", "data.key is missing"}},
		{name: "secret not found", secret: "keys/absent", wantErr: []string{"Secret keys/absent", "not found"}},
		{name: "secret not namespace/name", secret: "absent", wantErr: []string{`--memberlist-secret "absent"`, "namespace/name"}},
		{name: "neither: unencrypted", wantLen: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, secondary, err := loadKey(ctx, env.Client, tt.file, tt.secondaryFile, tt.secret)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted a key of %d bytes", len(key))
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || len(key) != tt.wantLen || len(secondary) != tt.wantSecondary {
				t.Fatalf("key of %d bytes and %d secondary keys, %v; want %d bytes and %d", len(key), len(secondary), err, tt.wantLen, tt.wantSecondary)
			}
		})
	}
}

// TestMembershipRetries: when memberlist cannot start (here its port is
// taken, as by another program on the node), the speaker says so and
// starts it again, instead of staying out of the cluster until restarted.
func TestMembershipRetries(t *testing.T) {
	defer func(d time.Duration) { keyRetry = d }(keyRetry)
	keyRetry = 50 * time.Millisecond
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	logs := &testutil.SyncBuffer{}
	o := RunOptions{
		Options:    Options{Node: "node1", Log: slog.New(slog.NewTextHandler(logs, nil))},
		Membership: membership.Options{Name: "node1", BindAddr: netip.MustParseAddr("127.0.0.1"), Port: port},
		Join:       []string{fmt.Sprintf("127.0.0.1:%d", port)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ref clusterRef
	ran := make(chan bool, 1)
	go func() { ran <- runMembership(ctx, o, nil, nil, &ref, New(o.Options)) }()
	testutil.Eventually(t, "the speaker to report that memberlist cannot start", func() (bool, string) {
		return strings.Contains(logs.String(), "cannot run memberlist"), logs.String()
	})
	if ref.Members() != nil {
		t.Fatalf("members %v without memberlist running", ref.Members())
	}
	taken.Close()
	testutil.Eventually(t, "memberlist running once its port is free", func() (bool, string) {
		m := ref.Members()
		return len(m) == 1 && m[0].Name == "node1", fmt.Sprint(m)
	})
	cancel()
	if !<-ran {
		t.Error("runMembership says memberlist never ran")
	}
}

// TestSpecChanged: the controller's status writes on ironlb's objects
// do not make the speaker read the configuration again; spec, label and
// annotation changes do.
func TestSpecChanged(t *testing.T) {
	pool := func(gen int64, labels map[string]string, allocated int32) *v1alpha1.IPPool {
		p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen, Labels: labels, ResourceVersion: fmt.Sprint(allocated)}}
		p.Status.IPv4 = &v1alpha1.AddressCounts{}
		p.Status.Conditions = []metav1.Condition{{Type: "Valid", Message: fmt.Sprint(allocated)}}
		return p
	}
	for _, c := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"status only", pool(1, nil, 1), pool(1, nil, 2), false},
		{"spec", pool(1, nil, 1), pool(2, nil, 1), true},
		{"labels", pool(1, nil, 1), pool(1, map[string]string{"a": "b"}, 1), true},
		{"not an object", "x", pool(1, nil, 1), true},
	} {
		if got := specChanged(c.old, c.new); got != c.want {
			t.Errorf("%s: specChanged %v, want %v", c.name, got, c.want)
		}
	}
}
