package config

import (
	"fmt"
	"net/netip"

	"github.com/ironlb/ironlb/internal/iprange"
)

// unsafeKind is a kind of address that no pool may hold: giving one to a
// Service would make the speakers answer for, announce or reject traffic
// to an address that means something else on every host (loopback,
// unspecified), to a group (multicast, broadcast) or to a single link
// (link-local).
type unsafeKind struct {
	// what names the kind, blocks lists its addresses as users read them;
	// together they make the message, which the CRD's CEL rules repeat
	// word for word (config/v1alpha1/ippool_types.go).
	what, blocks string
	prefixes     []netip.Prefix
}

// unsafeKinds are in the order of the CEL rules, so that the resolver and
// the API server list an entry's problems in the same order.
var unsafeKinds = []unsafeKind{
	{"the unspecified address", "0.0.0.0, ::", prefixes("0.0.0.0/32", "::/128")},
	{"loopback addresses", "127.0.0.0/8, ::1", prefixes("127.0.0.0/8", "::1/128")},
	{"multicast addresses", "224.0.0.0/4, ff00::/8", prefixes("224.0.0.0/4", "ff00::/8")},
	{"link-local addresses", "169.254.0.0/16, fe80::/10", prefixes("169.254.0.0/16", "fe80::/10")},
	{"the limited-broadcast address", "255.255.255.255", prefixes("255.255.255.255/32")},
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// unsafeMessage is the message of an entry holding addresses of a kind.
func unsafeMessage(entry string, k unsafeKind) string {
	return fmt.Sprintf("%s contains %s (%s), which a pool must not hold", entry, k.what, k.blocks)
}

// unsafeProblems returns, in the order of unsafeKinds, one message for each
// kind of unsafe address the range holds even one address of. entry is the
// range as the user wrote it.
func unsafeProblems(entry string, r iprange.Range) []string {
	var out []string
	for _, k := range unsafeKinds {
		for _, p := range k.prefixes {
			if r.Overlaps(iprange.FromPrefix(p)) {
				out = append(out, unsafeMessage(entry, k))
				break
			}
		}
	}
	return out
}
