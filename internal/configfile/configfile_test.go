package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
)

func newLoader(tb testing.TB) *Loader {
	tb.Helper()
	l, err := New()
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func ptr[T any](v T) *T { return &v }

// Document builders. Every address is from the documentation ranges.

func poolDoc(name, addr string) string {
	return fmt.Sprintf("apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: %s\nspec:\n  addresses: [%q]\n", name, addr)
}

func l2Doc(name string) string {
	return fmt.Sprintf("apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata:\n  name: %s\nspec:\n  interfaces: [eth0]\n", name)
}

func peerDoc(name string, peerASN int) string {
	return fmt.Sprintf("apiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata:\n  name: %s\nspec:\n  peerAddress: 198.51.100.1\n  peerASN: %d\n  myASN: 64512\n", name, peerASN)
}

func bgpAdvDoc(name string, aggregationLength int) string {
	return fmt.Sprintf("apiVersion: ironlb.io/v1alpha1\nkind: BGPAdvertisement\nmetadata:\n  name: %s\nspec:\n  aggregationLength: %d\n", name, aggregationLength)
}

// stream joins documents with "---" lines.
func stream(docs ...string) []byte {
	return []byte(strings.Join(docs, "---\n"))
}

// docErrors unjoins Load's error, requiring every part to be a
// *DocumentError.
func docErrors(tb testing.TB, err error) []*DocumentError {
	tb.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]*DocumentError, len(errs))
	for i, e := range errs {
		de, ok := e.(*DocumentError)
		if !ok {
			tb.Fatalf("error %d is a %T, not a *DocumentError: %v", i, e, e)
		}
		out[i] = de
	}
	return out
}

// names lists the names of a snapshot's objects, per kind, in order.
type names struct {
	IPPools, L2Advertisements, BGPPeers, BGPAdvertisements []string
}

func namesOf(s config.Snapshot) names {
	var n names
	for _, o := range s.IPPools {
		n.IPPools = append(n.IPPools, o.Name)
	}
	for _, o := range s.L2Advertisements {
		n.L2Advertisements = append(n.L2Advertisements, o.Name)
	}
	for _, o := range s.BGPPeers {
		n.BGPPeers = append(n.BGPPeers, o.Name)
	}
	for _, o := range s.BGPAdvertisements {
		n.BGPAdvertisements = append(n.BGPAdvertisements, o.Name)
	}
	return n
}

func TestPositions(t *testing.T) {
	l := newLoader(t)
	lines := []string{
		/*  1 */ "# ironlb lab configuration",
		/*  2 */ "",
		/*  3 */ "# a valid pool",
		/*  4 */ "apiVersion: ironlb.io/v1alpha1", // document 1
		/*  5 */ "kind: IPPool",
		/*  6 */ "metadata: {name: first}",
		/*  7 */ "spec: {addresses: [198.51.100.0/25]}",
		/*  8 */ "---", // document 2: comments only
		/*  9 */ "# nothing here yet",
		/* 10 */ "",
		/* 11 */ "---", // document 3
		/* 12 */ "# a pool with a malformed address",
		/* 13 */ "  ",
		/* 14 */ "apiVersion: ironlb.io/v1alpha1",
		/* 15 */ "kind: IPPool",
		/* 16 */ "metadata: {name: malformed}",
		/* 17 */ "spec: {addresses: [198.51.100.300/24]}",
		/* 18 */ "--- # document 4, its marker followed by a comment",
		/* 19 */ "",
		/* 20 */ "# from another load balancer",
		/* 21 */ "apiVersion: metallb.io/v1beta1",
		/* 22 */ "kind: IPAddressPool",
		/* 23 */ "metadata: {name: metallb}",
		/* 24 */ "---", // document 5
		/* 25 */ "- not",
		/* 26 */ "- a mapping",
		/* 27 */ "--- [content, on, the, marker, line]", // document 6
		/* 28 */ "---", // document 7
		/* 29 */ "apiVersion: ironlb.io/v1alpha1",
		/* 30 */ "kind: L2Advertisement",
		/* 31 */ "metadata: {name: second}",
		/* 32 */ "---", // document 8
		/* 33 */ "#",
		/* 34 */ "key: [not closed",
		/* 35 */ "--- ", // document 9: comments only, at the end
		/* 36 */ "# the end",
	}
	type pos struct {
		Index, Line int
		Name        string
	}
	want := []pos{
		{Index: 3, Line: 14, Name: "malformed"},
		{Index: 4, Line: 21, Name: "metallb"},
		{Index: 5, Line: 25},
		{Index: 6, Line: 27},
		{Index: 8, Line: 34},
	}
	wantNames := names{IPPools: []string{"first"}, L2Advertisements: []string{"second"}}

	for _, tt := range []struct {
		name string
		data string
	}{
		{"LF", strings.Join(lines, "\n") + "\n"},
		{"CRLF", strings.Join(lines, "\r\n") + "\r\n"},
		{"no final newline", strings.Join(lines, "\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := l.Load(t.Context(), "lab.yaml", []byte(tt.data))
			if diff := cmp.Diff(wantNames, namesOf(snap)); diff != "" {
				t.Errorf("loaded objects (-want +got):\n%s", diff)
			}
			var got []pos
			for _, e := range docErrors(t, err) {
				got = append(got, pos{Index: e.Index, Line: e.Line, Name: e.Name})
				prefix := fmt.Sprintf("lab.yaml:%d: document %d", e.Line, e.Index)
				if msg := e.Error(); !strings.HasPrefix(msg, prefix) {
					t.Errorf("error %q does not start with %q", msg, prefix)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("refused documents (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	l := newLoader(t)
	for _, tt := range []struct {
		name string
		doc  string
		// mention is a part of the message naming what was found.
		mention string
	}{
		{
			name:    "MetalLB pool",
			doc:     "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: legacy}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `"IPAddressPool" of apiVersion "metallb.io/v1beta1"`,
		},
		{
			name:    "IPPool of another version",
			doc:     "apiVersion: ironlb.io/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `"IPPool" of apiVersion "ironlb.io/v1"`,
		},
		{
			name:    "IPPool of the core group",
			doc:     "apiVersion: v1\nkind: IPPool\nmetadata: {name: p}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `"IPPool" of apiVersion "v1"`,
		},
		{
			name:    "IPPool without apiVersion",
			doc:     "kind: IPPool\nmetadata: {name: p}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `"IPPool" of apiVersion ""`,
		},
		{
			name:    "kind in the wrong case",
			doc:     "apiVersion: ironlb.io/v1alpha1\nkind: ippool\nmetadata: {name: p}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `"ippool"`,
		},
		{
			name:    "malformed apiVersion",
			doc:     "apiVersion: ironlb.io/v1alpha1/v2\nkind: IPPool\nmetadata: {name: p}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `"ironlb.io/v1alpha1/v2"`,
		},
		{
			name:    "kind not a string",
			doc:     "apiVersion: ironlb.io/v1alpha1\nkind: [IPPool]\nmetadata: {name: p}\nspec: {addresses: [198.51.100.0/24]}\n",
			mention: `of apiVersion "ironlb.io/v1alpha1"`,
		},
		{
			name:    "no kind at all",
			doc:     "apiVersion: ironlb.io/v1alpha1\nmetadata: {name: p}\n",
			mention: `""`,
		},
		{
			name:    "a speaker's report is not configuration",
			doc:     "apiVersion: ironlb.io/v1alpha1\nkind: NodeAnnouncement\nmetadata: {name: node1}\n",
			mention: `"NodeAnnouncement"`,
		},
		{
			name:    "empty mapping",
			doc:     "{}\n",
			mention: `""`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := l.Load(t.Context(), "kinds.yaml", []byte(tt.doc))
			if diff := cmp.Diff(names{}, namesOf(snap)); diff != "" {
				t.Errorf("loaded objects (-want +got):\n%s", diff)
			}
			if !errors.Is(err, ErrUnknownKind) {
				t.Fatalf("error %v is not ErrUnknownKind", err)
			}
			if n := len(docErrors(t, err)); n != 1 {
				t.Errorf("%d document errors, want 1", n)
			}
			msg := err.Error()
			for _, want := range []string{tt.mention, "IPPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement", "ironlb.io/v1alpha1"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
		})
	}
}

func TestUnknownFieldAndDuplicateKey(t *testing.T) {
	l := newLoader(t)
	for _, tt := range []struct {
		name string
		doc  string
		// want are regular expressions the message must match.
		want []string
	}{
		{
			name: "misspelt spec field",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: typo}\nspec:\n  addresses: [198.51.100.0/28]\n  adresses: [198.51.100.16/28]\n",
			want: []string{`spec\.adresses`, `unknown field`},
		},
		{
			name: "unknown nested field",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: typo}\nspec:\n  addresses: [198.51.100.0/28]\n  allocateTo: {prority: 1}\n",
			want: []string{`spec\.allocateTo\.prority`, `unknown field`},
		},
		{
			name: "unknown top-level field",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: typo}\nspecs: {aggregationLength: 24}\n",
			want: []string{`specs`, `unknown field`},
		},
		{
			// The API server's strict field validation refuses unknown
			// metadata fields too.
			name: "unknown metadata field",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: typo, lables: {a: b}}\nspec: {addresses: [198.51.100.0/28]}\n",
			want: []string{`metadata\.lables`, `unknown field`},
		},
		{
			name: "duplicate spec key",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: twice}\nspec:\n  addresses: [198.51.100.0/28]\n  addresses: [203.0.113.0/28]\n",
			want: []string{`"addresses"`, `(?i)duplicate|already (set|defined)`},
		},
		{
			name: "duplicate top-level key",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: twice}\nmetadata: {name: thrice}\nspec: {addresses: [198.51.100.0/28]}\n",
			want: []string{`"metadata"`, `(?i)duplicate|already (set|defined)`},
		},
		{
			name: "duplicate label",
			doc:  "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: twice\n  labels: {tier: a, tier: b}\nspec: {addresses: [198.51.100.0/28]}\n",
			want: []string{`"tier"`, `(?i)duplicate|already (set|defined)`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := l.Load(t.Context(), "fields.yaml", []byte(tt.doc))
			if diff := cmp.Diff(names{}, namesOf(snap)); diff != "" {
				t.Errorf("a refused document is in the snapshot (-want +got):\n%s", diff)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if errs := docErrors(t, err); len(errs) != 1 || errs[0].Index != 1 || errs[0].Line != 1 {
				t.Errorf("want one error for document 1 on line 1, got %v", err)
			}
			if errors.Is(err, ErrUnknownKind) {
				t.Errorf("error %v is ErrUnknownKind", err)
			}
			msg := err.Error()
			for _, re := range tt.want {
				if !regexp.MustCompile(re).MatchString(msg) {
					t.Errorf("error %q does not match %q", msg, re)
				}
			}
			if strings.Contains(msg, "internal error") {
				t.Errorf("user error reported as an internal error: %q", msg)
			}
		})
	}
}

func TestGoodAndBadMixed(t *testing.T) {
	l := newLoader(t)
	metallb := "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: metallb-leftover}\n"
	data := stream(
		poolDoc("pool-good", "198.51.100.0/25"),                 // 1
		poolDoc("pool-bad", "198.51.100.300/24"),                // 2
		l2Doc("l2-good"),                                        // 3
		strings.Replace(l2Doc("l2-bad"), "eth0", "'eth0/1'", 1), // 4
		peerDoc("peer-good", 64500),                             // 5
		peerDoc("peer-bad", 0),                                  // 6
		bgpAdvDoc("adv-good", 28),                               // 7
		bgpAdvDoc("adv-bad", 33),                                // 8
		metallb,                                                 // 9
		"just a scalar\n",                                       // 10
		poolDoc("pool-good-v6", "2001:db8::/64"),                // 11
	)
	snap, err := l.Load(t.Context(), "mixed.yaml", data)
	want := names{
		IPPools:           []string{"pool-good", "pool-good-v6"},
		L2Advertisements:  []string{"l2-good"},
		BGPPeers:          []string{"peer-good"},
		BGPAdvertisements: []string{"adv-good"},
	}
	if diff := cmp.Diff(want, namesOf(snap)); diff != "" {
		t.Errorf("loaded objects (-want +got):\n%s", diff)
	}
	var gotIdx []int
	for _, e := range docErrors(t, err) {
		gotIdx = append(gotIdx, e.Index)
	}
	if diff := cmp.Diff([]int{2, 4, 6, 8, 9, 10}, gotIdx); diff != "" {
		t.Errorf("refused documents (-want +got):\n%s", diff)
	}
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, bad := range []string{`IPPool "pool-bad"`, `L2Advertisement "l2-bad"`, `BGPPeer "peer-bad"`, `BGPAdvertisement "adv-bad"`, `"IPAddressPool"`, "document 10"} {
		if !strings.Contains(msg, bad) {
			t.Errorf("error lacks %s:\n%s", bad, msg)
		}
	}
	for _, good := range []string{"pool-good", "l2-good", "peer-good", "adv-good"} {
		if strings.Contains(msg, good) {
			t.Errorf("error mentions valid object %s:\n%s", good, msg)
		}
	}
}

func TestDuplicateNames(t *testing.T) {
	l := newLoader(t)
	data := stream(
		poolDoc("dup", "198.51.100.0/25"),   // 1
		poolDoc("dup", "198.51.100.128/25"), // 2: refused
		l2Doc("dup"),                        // 3: other kinds may reuse the name
		peerDoc("dup", 64500),               // 4
		bgpAdvDoc("dup", 32),                // 5
		poolDoc("other", "203.0.113.0/24"),  // 6
		poolDoc("retry", "all"),             // 7: refused, so it does not take the name
		poolDoc("retry", "2001:db8::/64"),   // 8
		l2Doc("dup"),                        // 9: refused
	)
	snap, err := l.Load(t.Context(), "dup.yaml", data)
	want := names{
		IPPools:           []string{"dup", "other", "retry"},
		L2Advertisements:  []string{"dup"},
		BGPPeers:          []string{"dup"},
		BGPAdvertisements: []string{"dup"},
	}
	if diff := cmp.Diff(want, namesOf(snap)); diff != "" {
		t.Errorf("loaded objects (-want +got):\n%s", diff)
	}
	if len(snap.IPPools) > 0 {
		if diff := cmp.Diff([]v1alpha1.AddressRange{"198.51.100.0/25"}, snap.IPPools[0].Spec.Addresses); diff != "" {
			t.Errorf("the first IPPool dup was not kept (-want +got):\n%s", diff)
		}
	}
	errs := docErrors(t, err)
	var gotIdx []int
	for _, e := range errs {
		gotIdx = append(gotIdx, e.Index)
	}
	if diff := cmp.Diff([]int{2, 7, 9}, gotIdx); diff != "" {
		t.Fatalf("refused documents (-want +got):\n%s", diff)
	}
	for _, i := range []int{0, 2} {
		if msg := errs[i].Error(); !strings.Contains(msg, `"dup" appears earlier`) {
			t.Errorf("duplicate refused with %q", msg)
		}
	}
}

func TestDefaults(t *testing.T) {
	l := newLoader(t)
	data := stream(
		"apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: defaulted}\nspec: {addresses: [198.51.100.0/24]}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: explicit}\nspec: {addresses: [203.0.113.0/24], autoAssign: false}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: null-auto-assign}\nspec: {addresses: [2001:db8::/64], autoAssign: null}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata: {name: defaulted}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: defaulted}\nspec: {peerAddress: 198.51.100.1, peerASN: 64500, myASN: 64512, passwordSecretRef: {name: md5, namespace: ironlb-system}}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: explicit}\nspec: {peerAddress: 2001:db8::1, peerASN: 64512, myASN: 64512, peerPort: 1179, holdTime: 1m, keepaliveTime: 20s}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: defaulted}\nspec: {}\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: explicit}\nspec: {aggregationLength: 0, aggregationLengthV6: 64}\n",
	)
	snap, err := l.Load(t.Context(), "defaults.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	type specs struct {
		IPPools           map[string]v1alpha1.IPPoolSpec
		L2Advertisements  map[string]v1alpha1.L2AdvertisementSpec
		BGPPeers          map[string]v1alpha1.BGPPeerSpec
		BGPAdvertisements map[string]v1alpha1.BGPAdvertisementSpec
	}
	got := specs{map[string]v1alpha1.IPPoolSpec{}, map[string]v1alpha1.L2AdvertisementSpec{}, map[string]v1alpha1.BGPPeerSpec{}, map[string]v1alpha1.BGPAdvertisementSpec{}}
	for _, o := range snap.IPPools {
		got.IPPools[o.Name] = o.Spec
	}
	for _, o := range snap.L2Advertisements {
		got.L2Advertisements[o.Name] = o.Spec
	}
	for _, o := range snap.BGPPeers {
		got.BGPPeers[o.Name] = o.Spec
	}
	for _, o := range snap.BGPAdvertisements {
		got.BGPAdvertisements[o.Name] = o.Spec
	}
	want := specs{
		IPPools: map[string]v1alpha1.IPPoolSpec{
			"defaulted":        {Addresses: []v1alpha1.AddressRange{"198.51.100.0/24"}, AutoAssign: ptr(true)},
			"explicit":         {Addresses: []v1alpha1.AddressRange{"203.0.113.0/24"}, AutoAssign: ptr(false)},
			"null-auto-assign": {Addresses: []v1alpha1.AddressRange{"2001:db8::/64"}, AutoAssign: ptr(true)},
		},
		L2Advertisements: map[string]v1alpha1.L2AdvertisementSpec{"defaulted": {}},
		BGPPeers: map[string]v1alpha1.BGPPeerSpec{
			"defaulted": {
				PeerAddress: "198.51.100.1", PeerASN: 64500, MyASN: 64512,
				PeerPort:            179,
				HoldTime:            &metav1.Duration{Duration: 90 * time.Second},
				MaxReceivedPrefixes: ptr[int64](1000),
				PasswordSecretRef:   &v1alpha1.SecretKeyRef{Name: "md5", Namespace: "ironlb-system", Key: "password"},
			},
			"explicit": {
				PeerAddress: "2001:db8::1", PeerASN: 64512, MyASN: 64512,
				PeerPort:            1179,
				HoldTime:            &metav1.Duration{Duration: time.Minute},
				KeepaliveTime:       &metav1.Duration{Duration: 20 * time.Second},
				MaxReceivedPrefixes: ptr[int64](1000),
			},
		},
		BGPAdvertisements: map[string]v1alpha1.BGPAdvertisementSpec{
			"defaulted": {AggregationLength: ptr[int32](32), AggregationLengthV6: ptr[int32](128)},
			"explicit":  {AggregationLength: ptr[int32](0), AggregationLengthV6: ptr[int32](64)},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loaded specs (-want +got):\n%s", diff)
	}
	for _, p := range snap.IPPools {
		if p.APIVersion != "ironlb.io/v1alpha1" || p.Kind != v1alpha1.KindIPPool {
			t.Errorf("IPPool %s has type meta %+v", p.Name, p.TypeMeta)
		}
	}
}

func TestNotAMappingOrNotYAML(t *testing.T) {
	l := newLoader(t)
	after := poolDoc("after", "198.51.100.0/24")
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"block list", "- a\n- b\n", "must be a mapping"},
		{"flow list", "[1, 2]\n", "must be a mapping"},
		{"list of objects", "- " + strings.ReplaceAll(strings.TrimSuffix(poolDoc("in-a-list", "198.51.100.0/24"), "\n"), "\n", "\n  ") + "\n", "must be a mapping"},
		{"string", "hello\n", "must be a mapping"},
		{"number", "42\n", "must be a mapping"},
		{"boolean", "true\n", "must be a mapping"},
		{"null", "null\n", "must be a mapping"},
		{"tilde", "~\n", "must be a mapping"},
		{"block scalar", "|\n  text\n", "must be a mapping"},
		{"unclosed flow list", "a: [1, 2\n", "not valid YAML"},
		{"unclosed quote", "a: \"open\n", "not valid YAML"},
		{"tab indentation", "a:\n\tb: 1\n", "not valid YAML"},
		{"mapping on a mapping value", "a: b: c\n", "not valid YAML"},
		{"undefined alias", "a: *nowhere\n", "not valid YAML"},
		{"recursive alias", "a: &x [*x]\n", "not valid YAML"},
		{"control characters", "a: \x00\x01\n", "not valid YAML"},
		{"invalid UTF-8", "a: \xff\xfe\n", "not valid YAML"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := l.Load(t.Context(), "odd.yaml", stream(tt.doc, after))
			if diff := cmp.Diff(names{IPPools: []string{"after"}}, namesOf(snap)); diff != "" {
				t.Errorf("loaded objects (-want +got):\n%s", diff)
			}
			errs := docErrors(t, err)
			if len(errs) != 1 || errs[0].Index != 1 {
				t.Fatalf("want one error for document 1, got %v", err)
			}
			if msg := errs[0].Error(); !strings.HasPrefix(msg, "odd.yaml:1: document 1: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q lacks %q", msg, tt.want)
			}
		})
	}
}

func TestNothingToLoad(t *testing.T) {
	l := newLoader(t)
	for _, in := range []string{"", "\n\n", "\r\n", "# only\n# comments\n", "---", "---\n---\n", "--- # comment\n---\n# more\n"} {
		snap, err := l.Load(t.Context(), "empty.yaml", []byte(in))
		if err != nil {
			t.Errorf("Load(%q): %v", in, err)
		}
		if diff := cmp.Diff(names{}, namesOf(snap)); diff != "" {
			t.Errorf("Load(%q) (-want +got):\n%s", in, diff)
		}
	}
}

// load is Load turning a panic into a test failure, so that the other cases
// still run.
func load(t *testing.T, l *Loader, name string, data []byte) (snap config.Snapshot, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Load(%q) panicked: %v", data, r)
		}
	}()
	return l.Load(t.Context(), name, data)
}

func TestMetadataMissingOrMalformed(t *testing.T) {
	l := newLoader(t)
	for _, tt := range []struct {
		name, metadata, want string
	}{
		{"no metadata", "", "metadata.name"},
		{"null metadata", "metadata: null\n", "metadata"},
		{"empty metadata", "metadata: {}\n", "metadata.name"},
		{"metadata a string", "metadata: pool\n", "metadata"},
		{"metadata a list", "metadata: [name, pool]\n", "metadata"},
		{"name not a string", "metadata: {name: [pool]}\n", "metadata"},
		{"generateName only", "metadata: {generateName: pool-}\n", "metadata.name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\n" + tt.metadata + "spec: {addresses: [198.51.100.0/24]}\n"
			snap, err := load(t, l, "meta.yaml", []byte(doc))
			if diff := cmp.Diff(names{}, namesOf(snap)); diff != "" {
				t.Errorf("loaded objects (-want +got):\n%s", diff)
			}
			if errs := docErrors(t, err); len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Errorf("want one error naming %s, got %v", tt.want, err)
			}
		})
	}
}

// TestNoDocumentVanishes checks that a document is never dropped without an
// error: the loader may refuse what it cannot split, but not ignore it.
func TestNoDocumentVanishes(t *testing.T) {
	l := newLoader(t)
	a, b := poolDoc("a", "198.51.100.0/25"), poolDoc("b", "198.51.100.128/25")
	for _, tt := range []struct {
		name, data string
		// mayRefuse allows an error instead of loading both documents.
		mayRefuse bool
	}{
		{name: "marker followed by a comment", data: a + "--- # b follows\n" + b},
		{name: "marker followed by a tab", data: a + "---\t# b follows\n" + b, mayRefuse: true},
		{name: "document end marker, then a bare document", data: a + "...\n" + b, mayRefuse: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := l.Load(t.Context(), "all.yaml", []byte(tt.data))
			if err != nil && tt.mayRefuse {
				return
			}
			if err != nil {
				t.Errorf("refused: %v", err)
			}
			if diff := cmp.Diff([]string{"a", "b"}, namesOf(snap).IPPools); diff != "" {
				t.Errorf("loaded pools, without an error (-want +got):\n%s", diff)
			}
		})
	}
}

// fuzzSeeds are the samples, the invalid objects and a few odd inputs.
func fuzzSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../../config/samples/*.yaml")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no samples: %v", err)
	}
	files = append(files, "../../config/testdata/invalid.yaml")
	var seeds, samples [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, data)
		if strings.Contains(f, "samples") {
			samples = append(samples, data)
		}
	}
	seeds = append(seeds, bytes.Join(samples, []byte("---\n")))
	for _, s := range []string{
		"", "---", "---\n---", "--- # c\n", "\r\n---\r\n", "...\n",
		"hello", "42", "- a\n- b\n", "{}", "a: &x [*x]\n",
		strings.Repeat("[", 500) + strings.Repeat("]", 500),
		strings.Repeat("- ", 300) + "x\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: L2Advertisement\nmetadata: {name: deep}\nspec: {nodeSelector: " + strings.Repeat("{a: ", 200) + "1" + strings.Repeat("}", 200) + "}\n",
		poolDoc("dup", "198.51.100.0/24") + "---\n" + poolDoc("dup", "2001:db8::/64"),
		"apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata:\n  name: full\n  namespace: default\n  labels: {tier: gold}\n  annotations: {note: x}\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n" +
			"spec: {addresses: [198.51.100.0/24, 2001:db8::/64]}\nstatus:\n  ipv4: {total: 256, assigned: 1, available: 255}\n" +
			"  conditions: [{type: Valid, status: \"True\", reason: Valid, message: ok, lastTransitionTime: \"2026-01-01T00:00:00Z\"}]\n",
		"apiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: timers}\nspec: {peerAddress: 198.51.100.1, peerASN: 4294967295, myASN: 1, holdTime: \"0\", keepaliveTime: 0s}\n---\n" +
			"apiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: long}\nspec: {peerAddress: 2001:db8::1, peerASN: 1, myASN: 1, holdTime: 65535s, keepaliveTime: 1h}\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzLoad checks that Load never panics, that its errors are positioned
// document errors, and that the objects it returns load again as they are.
func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	l := newLoader(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := l.Load(t.Context(), "fuzz.yaml", data)
		lines := bytes.Count(data, []byte("\n")) + 1
		prev := 0
		for _, e := range docErrors(t, err) {
			if e.Index <= prev || e.Line < 1 || e.Line > lines {
				t.Fatalf("document error at index %d (previous %d), line %d of %d: %v", e.Index, prev, e.Line, lines, e)
			}
			prev = e.Index
			if prefix := fmt.Sprintf("fuzz.yaml:%d: document %d", e.Line, e.Index); !strings.HasPrefix(e.Error(), prefix) {
				t.Fatalf("error %q does not start with %q", e.Error(), prefix)
			}
		}

		var docs [][]byte
		add := func(obj any) {
			b, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatalf("marshalling %+v: %v", obj, err)
			}
			docs = append(docs, b)
		}
		for _, o := range snap.IPPools {
			add(o)
		}
		for _, o := range snap.L2Advertisements {
			add(o)
		}
		for _, o := range snap.BGPPeers {
			add(o)
		}
		for _, o := range snap.BGPAdvertisements {
			add(o)
		}
		again := bytes.Join(docs, []byte("---\n"))
		snap2, err := l.Load(t.Context(), "again.yaml", again)
		if err != nil {
			t.Fatalf("the loaded objects do not load again: %v\n%s", err, again)
		}
		if diff := cmp.Diff(namesOf(snap), namesOf(snap2)); diff != "" {
			t.Fatalf("loading the loaded objects again (-first +again):\n%s", diff)
		}
	})
}

// TestLeadingMarker: a file in kubectl style, starting with "---" (perhaps
// after comments), numbers its first document 1.
func TestLeadingMarker(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	bad := "apiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: p}\nspec: {addresses: [203.0.113.1/24]}\n"
	for _, tt := range []struct{ in, want string }{
		{"---\n" + bad, "f.yaml:2: document 1,"},
		{"# pools\n\n---\n" + bad, "f.yaml:4: document 1,"},
		{"---\n# only a comment\n---\n" + bad, "f.yaml:4: document 2,"},
		{bad + "...\n---\n" + bad, "f.yaml:7: document 2,"},
	} {
		_, err := l.Load(t.Context(), "f.yaml", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}
