package configfile

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestUnsafePoolsRefused creates each unsafe pool in the real API server,
// loads it from a file, and resolves it as the controller would (as if it
// had bypassed the schema): all three refuse it, naming the same field
// with the same message.
func TestUnsafePoolsRefused(t *testing.T) {
	env := testenv.Get(t)
	loader := newLoader(t)
	const suffix = ", which a pool must not hold"
	for _, tc := range []struct {
		name, field, msg string
		addrs            []string
	}{
		{"unspecified-v4", "spec.addresses[0]", "0.0.0.0 contains the unspecified address (0.0.0.0, ::)", []string{"0.0.0.0"}},
		{"unspecified-v6", "spec.addresses[1]", ":: contains the unspecified address (0.0.0.0, ::)", []string{"2001:db8::/120", "::"}},
		{"loopback-cidr", "spec.addresses[0]", "127.0.0.0/8 contains loopback addresses (127.0.0.0/8, ::1)", []string{"127.0.0.0/8"}},
		{"loopback-spanned", "spec.addresses[1]", "126.255.255.250-128.0.0.5 contains loopback addresses (127.0.0.0/8, ::1)", []string{"203.0.113.0/28", "126.255.255.250-128.0.0.5"}},
		{"loopback-v6", "spec.addresses[0]", "::1 contains loopback addresses (127.0.0.0/8, ::1)", []string{"::1"}},
		{"multicast-v4", "spec.addresses[0]", "239.255.255.0/24 contains multicast addresses (224.0.0.0/4, ff00::/8)", []string{"239.255.255.0/24"}},
		{"multicast-spanned", "spec.addresses[0]", "223.255.255.255-240.0.0.0 contains multicast addresses (224.0.0.0/4, ff00::/8)", []string{"223.255.255.255-240.0.0.0"}},
		{"multicast-v6", "spec.addresses[0]", "ff02::1 contains multicast addresses (224.0.0.0/4, ff00::/8)", []string{"ff02::1"}},
		{"link-local-v4", "spec.addresses[0]", "169.254.10.0-169.254.10.20 contains link-local addresses (169.254.0.0/16, fe80::/10)", []string{"169.254.10.0-169.254.10.20"}},
		{"link-local-spanned", "spec.addresses[0]", "169.253.255.255-169.255.0.0 contains link-local addresses (169.254.0.0/16, fe80::/10)", []string{"169.253.255.255-169.255.0.0"}},
		{"link-local-v6", "spec.addresses[0]", "fe80::/64 contains link-local addresses (169.254.0.0/16, fe80::/10)", []string{"fe80::/64"}},
		{"link-local-v6-wide", "spec.addresses[0]", "fe00::/7 contains link-local addresses (169.254.0.0/16, fe80::/10)", []string{"fe00::/7"}},
		{"broadcast", "spec.addresses[0]", "255.255.255.255 contains the limited-broadcast address (255.255.255.255)", []string{"255.255.255.255"}},
		{"broadcast-range", "spec.addresses[0]", "255.255.255.250-255.255.255.255 contains the limited-broadcast address (255.255.255.255)", []string{"255.255.255.250-255.255.255.255"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			want := tc.msg + suffix
			pool := &v1alpha1.IPPool{
				TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindIPPool},
				ObjectMeta: metav1.ObjectMeta{Name: "unsafe-" + tc.name},
			}
			for _, a := range tc.addrs {
				pool.Spec.Addresses = append(pool.Spec.Addresses, v1alpha1.AddressRange(a))
			}

			err := env.Client.Create(ctx, pool.DeepCopy(), client.FieldValidation("Strict"))
			if err == nil {
				_ = env.Client.Delete(ctx, pool)
				t.Fatal("the API server accepted it")
			}
			if msg := err.Error(); !strings.Contains(msg, `"`+pool.Name+`"`) || !strings.Contains(msg, tc.field+": Invalid value") || !strings.Contains(msg, want) {
				t.Errorf("the API server's error does not name the pool, %s and %q:\n%s", tc.field, want, msg)
			}

			data, _ := yaml.Marshal(pool)
			if _, err := loader.Load(ctx, "unsafe.yaml", data); err == nil {
				t.Error("the file loader accepted it")
			} else if msg := err.Error(); !strings.Contains(msg, `IPPool "`+pool.Name+`"`) || !strings.Contains(msg, tc.field+": Invalid value") || !strings.Contains(msg, want) {
				t.Errorf("the file loader's error does not name the pool, %s and %q:\n%s", tc.field, want, msg)
			}

			cfg, problems := config.Resolve(config.Snapshot{IPPools: []v1alpha1.IPPool{*pool}})
			found := false
			for _, p := range problems {
				found = found || (p.Name == pool.Name && p.Field == tc.field && strings.HasSuffix(p.Err.Error(), ": "+want))
			}
			if !found || cfg.Pool(pool.Name) != nil {
				t.Errorf("the resolver does not refuse it with %s: %q: %v", tc.field, want, problems.Err())
			}
		})
	}
}
