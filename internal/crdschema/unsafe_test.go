package crdschema

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/iprange"
)

// unsafeSuffix ends every message about unsafe addresses, in the CRD's
// rules and in the resolver alike.
const unsafeSuffix = "which a pool must not hold"

// schemaUnsafe returns the unsafe-address messages the CRD's CEL rules give
// for a pool holding the one entry.
func schemaUnsafe(t *testing.T, v *Validator, entry string) []string {
	t.Helper()
	obj := map[string]any{
		"apiVersion": "ironlb.io/v1alpha1", "kind": "IPPool",
		"metadata": map[string]any{"name": "p"},
		"spec":     map[string]any{"addresses": []any{entry}},
	}
	var out []string
	for _, e := range v.Validate(context.Background(), schema.GroupVersionKind{Group: "ironlb.io", Version: "v1alpha1", Kind: "IPPool"}, obj) {
		if strings.Contains(e.Detail, "evaluation error") || strings.Contains(e.Detail, "cost") {
			t.Fatalf("%s: a rule failed to run: %v", entry, e)
		}
		if strings.HasSuffix(e.Detail, unsafeSuffix) {
			if e.Field != "spec.addresses[0]" {
				t.Errorf("%s: message on field %s: %v", entry, e.Field, e)
			}
			out = append(out, e.Detail)
		}
	}
	return out
}

// resolverUnsafe returns the resolver's unsafe-address messages for the
// same pool.
func resolverUnsafe(entry string) []string {
	_, problems := config.Resolve(config.Snapshot{IPPools: []v1alpha1.IPPool{{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(entry)}},
	}}})
	var out []string
	for _, p := range problems {
		msg := p.Err.Error()
		if i := strings.Index(msg, entry+" contains "); i >= 0 && strings.HasSuffix(msg, unsafeSuffix) && p.Field == "spec.addresses[0]" {
			out = append(out, msg[i:])
		}
	}
	return out
}

// TestUnsafeRulesMatchResolver compares, entry by entry, what the CRD's
// CEL rules and the resolver say about unsafe addresses: the same
// messages, in the same order. The entries are the edges of every unsafe
// block in each form (address, CIDR, range) and random ranges around them.
func TestUnsafeRulesMatchResolver(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	entries := []string{
		"203.0.113.0/24", "2001:db8::/64", "198.51.100.7", "198.51.100.1-198.51.100.9",
		"0.0.0.0", "0.0.0.0/8", "0.0.0.0-0.0.0.4", "0.0.0.1-126.255.255.255", "0.0.0.0/0", "::/0", "::", "::1", "::/127", "::-::5", "::2-::5",
		"127.0.0.1", "127.0.0.0/8", "126.0.0.0/7", "127.255.255.255-128.0.0.0", "126.255.255.255-128.0.0.0", "100.0.0.0-200.0.0.0",
		"224.0.0.1", "224.0.0.0/4", "239.255.255.255", "223.255.255.255-240.0.0.0", "192.0.0.0/2", "240.0.0.0/4", "240.0.0.0-255.255.255.254",
		"ff02::1", "ff00::/8", "fe00::/7", "feff::-ff00::", "fec0::/10", "fe00::-fec0::", "fe7f::-fec0::", "fe00::-ff00::1",
		"169.254.1.1", "169.254.0.0/16", "169.253.255.255-169.255.0.0", "169.0.0.0/8", "169.255.0.0-223.255.255.255", "168.0.0.0-170.0.0.0",
		"fe80::1", "fe80::/10", "fe80::/64", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff-fec0::",
		"255.255.255.255", "255.255.255.0/24", "255.255.255.254-255.255.255.255", "255.255.255.0-255.255.255.254",
	}
	rng := rand.New(rand.NewPCG(17, 4))
	bases := []string{"0.0.0.0", "127.0.0.0", "128.0.0.0", "169.254.0.0", "169.255.0.0", "224.0.0.0", "240.0.0.0", "255.255.255.255",
		"::", "fe80::", "fec0::", "ff00::", "2001:db8::"}
	for range 400 {
		a, b := jitter(rng, bases[rng.IntN(len(bases))]), jitter(rng, bases[rng.IntN(len(bases))])
		if a.Is4() != b.Is4() {
			continue
		}
		if b.Less(a) {
			a, b = b, a
		}
		entries = append(entries, a.String()+"-"+b.String(), netip.PrefixFrom(a, rng.IntN(a.BitLen()+1)).Masked().String())
	}
	for _, entry := range entries {
		if _, err := iprange.Parse(entry); err != nil {
			t.Fatalf("%s: %v", entry, err)
		}
		fromSchema, fromResolver := schemaUnsafe(t, v, entry), resolverUnsafe(entry)
		if !slices.Equal(fromSchema, fromResolver) {
			t.Errorf("%s:\n  schema:   %q\n  resolver: %q", entry, fromSchema, fromResolver)
		}
	}
	// The check is not vacuous: most kinds are found somewhere above.
	if got := fmt.Sprint(schemaUnsafe(t, v, "0.0.0.0/0")); strings.Count(got, unsafeSuffix) != 5 {
		t.Errorf("0.0.0.0/0 should hold every IPv4 kind: %s", got)
	}
}

// jitter moves an address a little up or down.
func jitter(rng *rand.Rand, base string) netip.Addr {
	a := netip.MustParseAddr(base)
	for range rng.IntN(3) {
		if n := a.Next(); rng.IntN(2) == 0 && n.IsValid() {
			a = n
		} else if p := a.Prev(); p.IsValid() {
			a = p
		}
	}
	return a
}
