package migrate

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// warn is an expected warning: its object and field exactly, and a part of
// its message.
type warn struct{ object, field, contains string }

// convertCase converts in and compares the YAML written, the warnings and
// the Secrets. in is MetalLB YAML; want is ironlb YAML as WriteYAML writes
// it ("" for no objects).
type convertCase struct {
	name     string
	in       string
	want     string
	warnings []warn
	secrets  []SecretRef
}

func (tc convertCase) run(t *testing.T) {
	t.Helper()
	r, err := Convert([]byte(tc.in))
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	var buf bytes.Buffer
	if err := r.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.TrimLeft(tc.want, "\n"), buf.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	checkWarnings(t, r.Warnings, tc.warnings)
	if diff := cmp.Diff(tc.secrets, r.Secrets); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
}

func checkWarnings(t *testing.T, got []Warning, want []warn) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Object == want[i].object && got[i].Field == want[i].field && strings.Contains(got[i].Message, want[i].contains)
	}
	if !ok {
		var g, w []string
		for _, x := range got {
			g = append(g, x.String())
		}
		for _, x := range want {
			w = append(w, x.object+": "+x.field+": …"+x.contains+"…")
		}
		t.Errorf("warnings (-want +got):\n%s", cmp.Diff(w, g))
	}
}

const poolHeader = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: gold
  namespace: metallb-system
`

var poolCases = []convertCase{
	{
		name: "addresses: CIDRs and ranges carry over, IPv6 in canonical form; namespace dropped",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28, 203.0.113.20-203.0.113.30, "2001:db8:0:00ab::/120", 203.0.113.64-203.0.113.127]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  - 203.0.113.20-203.0.113.30
  - 2001:db8:0:ab::/120
  - 203.0.113.64/26
`,
	},
	{
		name: "addresses: spaces around a range's dash are removed",
		in: poolHeader + `spec:
  addresses: ["203.0.113.20 - 203.0.113.30"]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.20-203.0.113.30
`,
	},
	{
		name: "addresses: a CIDR with host bits becomes its network, with a warning",
		in: poolHeader + `spec:
  addresses: [203.0.113.5/28]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
`,
		warnings: []warn{{"IPAddressPool/gold", "spec.addresses[0]", "written as 203.0.113.0/28"}},
	},
	{
		name: "labels are kept, kubectl's and Helm's annotations are not",
		in: `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: gold
  namespace: metallb-system
  labels: {tier: gold}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    meta.helm.sh/release-name: metallb
    team: web
  uid: 0b9e4a54-5d3c-4c39-9a41-4a1b8a3c4b61
  resourceVersion: "1234"
  creationTimestamp: "2024-01-02T03:04:05Z"
spec:
  addresses: [203.0.113.0/28]
status:
  assignedIPv4: 1
`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  annotations:
    team: web
  labels:
    tier: gold
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
`,
	},
	{
		name: "autoAssign and avoidBuggyIPs",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  autoAssign: false
  avoidBuggyIPs: true`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  autoAssign: false
  avoidBuggyIPs: true
`,
	},
	{
		name: "serviceAllocation: priority, namespaces and one selector each",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  serviceAllocation:
    priority: 10
    namespaces: [web, web, api]
    namespaceSelectors: [{matchLabels: {team: web}}]
    serviceSelectors: [{matchExpressions: [{key: app, operator: NotIn, values: [db]}]}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  allocateTo:
    namespaceSelector:
      matchLabels:
        team: web
    namespaces:
    - web
    - api
    priority: 10
    serviceSelector:
      matchExpressions:
      - key: app
        operator: NotIn
        values:
        - db
`,
	},
	{
		name: "serviceAllocation: priority 0 is MetalLB's no priority",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  serviceAllocation: {priority: 0}`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
`,
	},
	{
		name: "serviceAllocation: selectors on one key merge into In",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  serviceAllocation:
    namespaceSelectors:
    - matchLabels: {team: web}
    - matchExpressions: [{key: team, operator: In, values: [api, web]}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  allocateTo:
    namespaceSelector:
      matchExpressions:
      - key: team
        operator: In
        values:
        - web
        - api
`,
	},
	{
		name: "serviceAllocation: a list holding an empty selector selects everything",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  serviceAllocation:
    serviceSelectors: [{matchLabels: {app: a}}, {}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  allocateTo:
    serviceSelector: {}
`,
	},
	{
		name: "serviceAllocation: selectors that do not merge keep the first, with a warning",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  serviceAllocation:
    serviceSelectors: [{matchLabels: {app: a}}, {matchLabels: {tier: b}}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  allocateTo:
    serviceSelector:
      matchLabels:
        app: a
`,
		warnings: []warn{{"IPAddressPool/gold", "spec.serviceAllocation.serviceSelectors", "only the first is converted, so fewer Services"}},
	},
}

func TestIPAddressPool(t *testing.T) {
	for _, tc := range poolCases {
		t.Run(tc.name, tc.run)
	}
}

const l2Header = `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
  namespace: metallb-system
`

var l2Cases = []convertCase{
	{
		name: "no spec: every pool from every node",
		in:   l2Header,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2
spec: {}
`,
	},
	{
		name: "ipAddressPools, ipAddressPoolSelectors, nodeSelectors and interfaces",
		in: l2Header + `spec:
  ipAddressPools: [gold]
  ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]
  nodeSelectors: [{matchLabels: {rack: r1}}, {matchLabels: {rack: r2}}]
  interfaces: [eth0, eth1]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2
spec:
  interfaces:
  - eth0
  - eth1
  ipPoolSelector:
    matchLabels:
      tier: gold
  ipPools:
  - gold
  nodeSelector:
    matchExpressions:
    - key: rack
      operator: In
      values:
      - r1
      - r2
`,
		warnings: []warn{{"L2Advertisement/l2", "spec.ipPools[0]", `IPPool "gold" does not exist`}},
	},
	{
		name: "nodeSelectors that do not merge: one advertisement per selector",
		in: l2Header + `spec:
  nodeSelectors: [{matchLabels: {rack: r1}}, {matchLabels: {zone: z2}}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2-1
spec:
  nodeSelector:
    matchLabels:
      rack: r1
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2-2
spec:
  nodeSelector:
    matchLabels:
      zone: z2
`,
		warnings: []warn{{"L2Advertisement/l2", "spec.nodeSelectors", "written as 2 L2Advertisements (l2-1, l2-2)"}},
	},
	{
		name: "serviceSelectors: one selector carried over",
		in: l2Header + `spec:
  serviceSelectors: [{matchLabels: {app: a}}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2
spec:
  serviceSelector:
    matchLabels:
      app: a
`,
	},
	{
		name: "serviceSelectors that merge into one In requirement",
		in: l2Header + `spec:
  serviceSelectors: [{matchLabels: {app: a}}, {matchExpressions: [{key: app, operator: In, values: [b]}]}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2
spec:
  serviceSelector:
    matchExpressions:
    - key: app
      operator: In
      values:
      - a
      - b
`,
	},
	{
		name: "serviceSelectors that do not merge: one advertisement per selector",
		in: l2Header + `spec:
  serviceSelectors: [{matchLabels: {app: a}}, {matchLabels: {tier: b}}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2-1
spec:
  serviceSelector:
    matchLabels:
      app: a
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2-2
spec:
  serviceSelector:
    matchLabels:
      tier: b
`,
		warnings: []warn{{"L2Advertisement/l2", "spec.serviceSelectors", "written as 2 L2Advertisements (l2-1, l2-2)"}},
	},
	{
		name: "preferredNodeSelectors: dropped with a warning",
		in: l2Header + `spec:
  preferredNodeSelectors: [{weight: 10, preference: {matchLabels: {rack: r1}}}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2
spec: {}
`,
		warnings: []warn{{"L2Advertisement/l2", "spec.preferredNodeSelectors", "hash ranking"}},
	},
}

func TestL2Advertisement(t *testing.T) {
	for _, tc := range l2Cases {
		t.Run(tc.name, tc.run)
	}
}

const bgpAdvHeader = `
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: adv
  namespace: metallb-system
`

var bgpAdvCases = []convertCase{
	{
		name: "aggregation lengths, localPref, peers",
		in: bgpAdvHeader + `spec:
  aggregationLength: 28
  aggregationLengthV6: 124
  localPref: 150
  peers: [tor-a]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv
spec:
  aggregationLength: 28
  aggregationLengthV6: 124
  localPref: 150
  peers:
  - tor-a
`,
		warnings: []warn{{"BGPAdvertisement/adv", "spec.peers[0]", `BGPPeer "tor-a" does not exist`}},
	},
	{
		name: "communities: values carry over in ironlb's spelling, aliases are resolved wherever the Community is",
		in: bgpAdvHeader + `spec:
  communities: [064512:0100, "large:1:02:3", NO_ADVERTISE, also-no-advertise]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: aliases
  namespace: metallb-system
spec:
  communities:
  - {name: NO_ADVERTISE, value: "65535:65282"}
  - {name: also-no-advertise, value: "65535:65282"}
`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv
spec:
  communities:
  - 64512:100
  - large:1:2:3
  - 65535:65282
`,
	},
	{
		name: "ipAddressPoolSelectors and nodeSelectors that do not merge: one advertisement per pair",
		in: bgpAdvHeader + `spec:
  ipAddressPools: [gold]
  ipAddressPoolSelectors: [{matchLabels: {tier: a}}, {matchLabels: {env: b}}]
  nodeSelectors: [{matchLabels: {rack: r1}}, {matchExpressions: [{key: zone, operator: Exists}]}]
  localPref: 100
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: gold, namespace: metallb-system}
spec: {addresses: [203.0.113.0/28]}
`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv-1
spec:
  ipPoolSelector:
    matchLabels:
      tier: a
  ipPools:
  - gold
  localPref: 100
  nodeSelector:
    matchLabels:
      rack: r1
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv-2
spec:
  ipPoolSelector:
    matchLabels:
      tier: a
  ipPools:
  - gold
  localPref: 100
  nodeSelector:
    matchExpressions:
    - key: zone
      operator: Exists
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv-3
spec:
  ipPoolSelector:
    matchLabels:
      env: b
  ipPools:
  - gold
  localPref: 100
  nodeSelector:
    matchLabels:
      rack: r1
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv-4
spec:
  ipPoolSelector:
    matchLabels:
      env: b
  ipPools:
  - gold
  localPref: 100
  nodeSelector:
    matchExpressions:
    - key: zone
      operator: Exists
`,
		warnings: []warn{
			{"BGPAdvertisement/adv", "spec.ipAddressPoolSelectors", "written as 4 BGPAdvertisements (adv-1, adv-2, adv-3, adv-4)"},
			{"BGPAdvertisement/adv", "spec.nodeSelectors", "written as 4 BGPAdvertisements"},
		},
	},
	{
		name: "asPathPrepend: dropped with a warning",
		in: bgpAdvHeader + `spec:
  asPathPrepend: 3`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv
spec: {}
`,
		warnings: []warn{{"BGPAdvertisement/adv", "spec.asPathPrepend", "does not prepend"}},
	},
	{
		name: "serviceSelectors: carried over",
		in: bgpAdvHeader + `spec:
  serviceSelectors: [{matchExpressions: [{key: app, operator: NotIn, values: [db]}]}]`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv
spec:
  serviceSelector:
    matchExpressions:
    - key: app
      operator: NotIn
      values:
      - db
`,
	},
}

func TestBGPAdvertisement(t *testing.T) {
	for _, tc := range bgpAdvCases {
		t.Run(tc.name, tc.run)
	}
}

const peerHeader = `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: tor
  namespace: metallb-system
`

const peerOut = `
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata:
  name: tor
spec:
`

const (
	minimal    = "spec:\n  myASN: 64512\n  peerASN: 64513\n  peerAddress: 198.51.100.1\n"
	minimalOut = "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 198.51.100.1\n"
)

func peerCases() []convertCase {
	return []convertCase{
		{
			name: "fields that carry over",
			in: peerHeader + `spec:
  myASN: 64512
  peerASN: 4200000000
  peerAddress: 2001:db8::1
  sourceAddress: 2001:db8::2
  peerPort: 1179
  routerID: 198.51.100.10
  ebgpMultiHop: true
  enableGracefulRestart: true
  nodeSelectors: [{matchLabels: {bgp: "yes"}}]`,
			want: peerOut + `  ebgpMultiHop: true
  gracefulRestart: true
  myASN: 64512
  nodeSelector:
    matchLabels:
      bgp: "yes"
  peerASN: 4200000000
  peerAddress: 2001:db8::1
  peerPort: 1179
  routerID: 198.51.100.10
  sourceAddress: 2001:db8::2
`,
		},
		{
			name: "the v1beta1 BGPPeer",
			in:   strings.Replace(peerHeader, "v1beta2", "v1beta1", 1) + minimal,
			want: peerOut + minimalOut,
		},
		{
			name: "holdTime and keepaliveTime",
			in:   peerHeader + minimal + "  holdTime: 9s\n  keepaliveTime: 3s\n",
			want: peerOut + "  holdTime: 9s\n  keepaliveTime: 3s\n" + minimalOut,
		},
		{
			name: "keepaliveTime alone: the hold time MetalLB derived is written out",
			in:   peerHeader + minimal + "  keepaliveTime: 1m\n",
			want: peerOut + "  holdTime: 3m0s\n  keepaliveTime: 1m0s\n" + minimalOut,
		},
		{
			name:     "keepaliveTime 0s with a hold time: dropped with a warning",
			in:       peerHeader + minimal + "  holdTime: 9m0s\n  keepaliveTime: 0s\n",
			want:     peerOut + "  holdTime: 9m0s\n" + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.keepaliveTime", "every third of holdTime (180s)"}},
		},
		{
			name:     "fractions of a second are rounded down with a warning",
			in:       peerHeader + minimal + "  holdTime: 4500ms\n",
			want:     peerOut + "  holdTime: 4s\n" + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.holdTime", "4500ms rounded down to 4s"}},
		},
		{
			name:    "passwordSecret: the converted peer refers to ironlb's namespace, the Secret is listed",
			in:      peerHeader + minimal + "  passwordSecret: {name: tor-password}\n",
			want:    peerOut + minimalOut[:len("  myASN: 64512\n")] + "  passwordSecretRef:\n    key: password\n    name: tor-password\n    namespace: ironlb-system\n" + minimalOut[len("  myASN: 64512\n"):],
			secrets: []SecretRef{{Namespace: "metallb-system", Name: "tor-password", UsedBy: "BGPPeer/tor"}},
		},
		{
			name: "passwordSecret: peers sharing a Secret are listed together",
			in: peerHeader + minimal + "  passwordSecret: {name: pw, namespace: net}\n---\n" +
				strings.Replace(peerHeader, "tor", "tor2", 1) + strings.Replace(minimal, "198.51.100.1", "198.51.100.2", 1) + "  passwordSecret: {name: pw, namespace: net}\n",
			want: strings.TrimSuffix(peerOut+minimalOut[:len("  myASN: 64512\n")]+"  passwordSecretRef:\n    key: password\n    name: pw\n    namespace: ironlb-system\n"+minimalOut[len("  myASN: 64512\n"):], "\n") +
				"\n---" + strings.Replace(peerOut, "tor", "tor2", 1) + "  myASN: 64512\n  passwordSecretRef:\n    key: password\n    name: pw\n    namespace: ironlb-system\n  peerASN: 64513\n  peerAddress: 198.51.100.2\n",
			secrets: []SecretRef{{Namespace: "net", Name: "pw", UsedBy: "BGPPeer/tor, BGPPeer/tor2"}},
		},
		{
			name:     "password: dropped with a warning that does not repeat it",
			in:       peerHeader + minimal + "  password: s3cret-word\n",
			want:     peerOut + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.password", "only from Secrets"}},
		},
		{
			name: "bfdProfile: its settings become the peer's bfd block; the profile needs no warning of its own",
			in: peerHeader + minimal + "  bfdProfile: fast\n---\n" + `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 100, transmitInterval: 150, detectMultiplier: 5}
`,
			want: peerOut + "  bfd:\n    detectMultiplier: 5\n    receiveInterval: 100ms\n    transmitInterval: 150ms\n" + minimalOut,
		},
		{
			name: "bfdProfile: echo and passive mode are warned of",
			in: peerHeader + minimal + "  bfdProfile: echo\n---\n" + `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: echo, namespace: metallb-system}
spec: {echoMode: true, passiveMode: true}
`,
			want: peerOut + "  bfd: {}\n" + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.bfd", `"echo" asks for echo mode`},
				{"BGPPeer/tor", "spec.bfd", `"echo" is passive`}},
		},
		{
			name:     "bfdProfile not in the input: defaults, with a warning",
			in:       peerHeader + minimal + "  bfdProfile: elsewhere\n",
			want:     peerOut + "  bfd: {}\n" + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.bfdProfile", `BFDProfile "elsewhere" is not in the input`}},
		},
		{
			name: "a BFDProfile no peer uses",
			in: `
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
`,
			warnings: []warn{{"BFDProfile/fast", "", "no BGPPeer of the input uses this profile"}},
		},
		{
			name:     "vrf: dropped with a warning",
			in:       peerHeader + minimal + "  vrf: red\n",
			want:     peerOut + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.vrf", `not in VRF "red"`}},
		},
		{
			name: "connectTime: carried over",
			in:   peerHeader + minimal + "  connectTime: 10s\n",
			want: peerOut + "  connectTime: 10s\n" + minimalOut,
		},
		{
			name:     "disableMP: dropped with a warning",
			in:       peerHeader + minimal + "  disableMP: true\n",
			want:     peerOut + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.disableMP", "IPv4 routes only over IPv4 sessions"}},
		},
		{
			name:     "dualStackAddressFamily: dropped with a warning",
			in:       peerHeader + minimal + "  dualStackAddressFamily: true\n",
			want:     peerOut + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.dualStackAddressFamily", "(here IPv4)"}},
		},
		{
			name: "defaults as kubectl prints them produce no warnings",
			in:   peerHeader + minimal + "  disableMP: false\n  dualStackAddressFamily: false\n  ebgpMultiHop: false\n  enableGracefulRestart: false\n  peerPort: 179\n",
			want: peerOut + minimalOut + "  peerPort: 179\n",
		},
		{
			name:     "interface beside peerAddress: dropped with a warning",
			in:       peerHeader + minimal + "  interface: eth1\n",
			want:     peerOut + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.interface", "peers with peerAddress 198.51.100.1"}},
		},
		{
			name:     "interface alone (unnumbered BGP): the peer is not converted",
			in:       peerHeader + "spec: {myASN: 64512, peerASN: 64513, interface: eth1}\n",
			warnings: []warn{{"BGPPeer/tor", "", "unnumbered BGP"}},
		},
		{
			name:     "localASN: becomes myASN, with a warning",
			in:       peerHeader + minimal + "  localASN: 65001\n",
			want:     peerOut + "  myASN: 65001\n  peerASN: 64513\n  peerAddress: 198.51.100.1\n",
			warnings: []warn{{"BGPPeer/tor", "spec.localASN", "myASN is set to localASN (65001) instead of 64512"}},
		},
		{
			name: "dynamicASN internal: carried over",
			in:   peerHeader + "spec: {myASN: 64512, dynamicASN: internal, peerAddress: 198.51.100.1}\n",
			want: peerOut + "  dynamicASN: internal\n  myASN: 64512\n  peerAddress: 198.51.100.1\n",
		},
		{
			name: "dynamicASN external: carried over",
			in:   peerHeader + "spec: {myASN: 64512, dynamicASN: external, peerAddress: 198.51.100.1}\n",
			want: peerOut + "  dynamicASN: external\n  myASN: 64512\n  peerAddress: 198.51.100.1\n",
		},
		{
			name:     "dynamicASN beside peerASN: peerASN wins, with a warning",
			in:       peerHeader + minimal + "  dynamicASN: external\n",
			want:     peerOut + minimalOut,
			warnings: []warn{{"BGPPeer/tor", "spec.dynamicASN", "peerASN 64513 is used"}},
		},
		{
			name:     "nodeSelectors that do not merge keep the first, with a warning",
			in:       peerHeader + minimal + "  nodeSelectors: [{matchLabels: {a: x}}, {matchLabels: {b: z}}]\n",
			want:     peerOut + "  myASN: 64512\n  nodeSelector:\n    matchLabels:\n      a: x\n" + minimalOut[len("  myASN: 64512\n"):],
			warnings: []warn{{"BGPPeer/tor", "spec.nodeSelectors", "fewer nodes"}},
		},
	}
}

func TestBGPPeer(t *testing.T) {
	for _, tc := range peerCases() {
		t.Run(tc.name, tc.run)
	}
}

var otherCases = []convertCase{
	{
		name: "other kinds are skipped with a warning naming them; comment-only documents are ignored",
		in: `
# saved from the cluster
---
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: metallb-system}
---
apiVersion: v1
kind: Secret
metadata: {name: tor-password, namespace: metallb-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
data: {config: "hello: world"}
`,
		warnings: []warn{
			{"Namespace/metallb-system", "", "v1 Namespace is not MetalLB configuration"},
			{"Deployment/controller", "", "apps/v1 Deployment is not MetalLB configuration"},
			{"Secret/tor-password", "", "v1 Secret is not MetalLB configuration"},
			{"ConfigMap/other", "", "v1 ConfigMap is not MetalLB configuration"},
		},
	},
	{
		name: "MetalLB kinds without counterpart and ironlb objects are skipped with a warning",
		in: `
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {name: old, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: st, namespace: metallb-system}
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata: {name: mine}
`,
		warnings: []warn{
			{"AddressPool/old", "", "deprecated pool kind"},
			{"ServiceL2Status/st", "", "not one of MetalLB's configuration kinds"},
			{"IPPool/mine", "", "already an ironlb object"},
		},
	},
	{
		name: "a v1 List, and a typed list whose items leave out apiVersion and kind",
		in: `
apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: b, namespace: metallb-system}
  spec: {addresses: [203.0.113.16/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPoolList
metadata: {resourceVersion: "1"}
items:
- metadata: {name: a, namespace: metallb-system}
  spec: {addresses: [203.0.113.0/28]}
`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: a
spec:
  addresses:
  - 203.0.113.0/28
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: b
spec:
  addresses:
  - 203.0.113.16/28
`,
	},
	{
		name: "fields the converter does not know, or spelled with other capitals, are warned about and dropped",
		in: poolHeader + `spec:
  addresses: [203.0.113.0/28]
  AutoAssign: false
  serviceAllocation: {priority: 5, colour: blue}
`,
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
  allocateTo:
    priority: 5
`,
		warnings: []warn{
			{"IPAddressPool/gold", "spec.AutoAssign", "not a field of MetalLB's IPAddressPool that this converter knows"},
			{"IPAddressPool/gold", "spec.serviceAllocation.colour", "dropped"},
		},
	},
	{
		name: "objects come out ordered by kind, then name",
		in: peerHeader + "spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1}\n---" + bgpAdvHeader + "---" + l2Header + "---" +
			strings.Replace(poolHeader, "gold", "silver", 1) + "spec: {addresses: [203.0.113.16/28]}\n---" + poolHeader + "spec: {addresses: [203.0.113.0/28]}\n",
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: silver
spec:
  addresses:
  - 203.0.113.16/28
---
apiVersion: ironlb.io/v1alpha1
kind: L2Advertisement
metadata:
  name: l2
spec: {}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPAdvertisement
metadata:
  name: adv
spec: {}
---
apiVersion: ironlb.io/v1alpha1
kind: BGPPeer
metadata:
  name: tor
spec:
  myASN: 1
  peerASN: 2
  peerAddress: 198.51.100.1
`,
	},
	{
		name: "the resolver's findings about the objects together are warnings",
		in:   poolHeader + "spec: {addresses: [203.0.113.0/28]}\n---" + strings.Replace(poolHeader, "gold", "silver", 1) + "spec: {addresses: [203.0.113.8/29]}\n",
		want: `
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: gold
spec:
  addresses:
  - 203.0.113.0/28
---
apiVersion: ironlb.io/v1alpha1
kind: IPPool
metadata:
  name: silver
spec:
  addresses:
  - 203.0.113.8/29
`,
		warnings: []warn{{"IPPool/silver", "spec.addresses[0]", "ironlb will not use this object"}},
	},
	{
		name: "an empty input",
		in:   "",
	},
}

func TestOtherDocuments(t *testing.T) {
	for _, tc := range otherCases {
		t.Run(tc.name, tc.run)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"unparseable YAML", "apiVersion: metallb.io/v1beta1\nkind: [", []string{"document 1", "not valid YAML"}},
		{"duplicate key", poolHeader + "spec: {addresses: [203.0.113.0/28]}\nspec: {}\n", []string{"document 1", "not valid YAML"}},
		{"not an object", "- a\n- b\n", []string{"document 1", "not a list"}},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", []string{"document 1", "apiVersion and kind"}},
		{"no name", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nspec: {addresses: [203.0.113.0/28]}\n", []string{"metadata.name", "required"}},
		{"a version the converter does not read", strings.Replace(poolHeader, "v1beta1", "v1beta3", 1), []string{"apiVersion", "metallb.io/v1beta3 of IPAddressPool"}},
		{"wrong type", poolHeader + "spec: {addresses: 203.0.113.0/28}\n", []string{`IPAddressPool "metallb-system/gold"`, "spec.addresses", "got string, want a list"}},
		{"number too large", peerHeader + "spec: {myASN: 4294967296, peerASN: 1, peerAddress: 198.51.100.1}\n", []string{"spec.myASN", "want a whole number from 0 to 4294967295"}},
		{"the third document is at fault", poolHeader + "spec: {addresses: [203.0.113.0/28]}\n---\n# nothing\n---" + l2Header + "---" + strings.Replace(poolHeader, "gold", "bad", 1) + "spec: {addresses: [203.0.113.0/33]}\n",
			[]string{"document 4", `IPAddressPool "metallb-system/bad"`, "spec.addresses[0]"}},
		{"invalid CIDR", poolHeader + "spec: {addresses: [203.0.113.0/33]}\n", []string{"spec.addresses[0]", "203.0.113.0/33"}},
		{"range upside down", poolHeader + "spec: {addresses: [203.0.113.9-203.0.113.1]}\n", []string{"spec.addresses[0]", "first address of a range must not be above the last"}},
		{"range of two families", poolHeader + "spec: {addresses: [203.0.113.1-2001:db8::1]}\n", []string{"spec.addresses[0]", "mix IPv4 and IPv6"}},
		{"no addresses", poolHeader + "spec: {}\n", []string{"spec.addresses", "required"}},
		{"negative priority", poolHeader + "spec: {addresses: [203.0.113.0/28], serviceAllocation: {priority: -1}}\n", []string{"spec.serviceAllocation.priority", "negative"}},
		{"an address ironlb's schema refuses", poolHeader + "spec: {addresses: [127.0.0.0/8]}\n", []string{`IPAddressPool "metallb-system/gold"`, "which ironlb's schema refuses", "loopback"}},
		{"an interface name ironlb's schema refuses", l2Header + "spec: {interfaces: [a-very-long-interface-name]}\n", []string{`L2Advertisement "metallb-system/l2"`, "spec.interfaces[0]"}},
		{"same name in two namespaces", poolHeader + "spec: {addresses: [203.0.113.0/28]}\n---" + strings.Replace(poolHeader, "metallb-system", "other", 1) + "spec: {addresses: [203.0.113.16/28]}\n",
			[]string{`document 2, IPAddressPool "other/gold"`, `becomes IPPool "gold"`, `document 1, IPAddressPool "metallb-system/gold"`}},
		{"a split advertisement's name taken", l2Header + "spec: {nodeSelectors: [{matchLabels: {a: x}}, {matchLabels: {b: z}}]}\n---" + strings.Replace(l2Header, "name: l2", "name: l2-2", 1),
			[]string{`document 2, L2Advertisement "metallb-system/l2-2"`, `becomes L2Advertisement "l2-2"`, `document 1, L2Advertisement "metallb-system/l2"`}},
		{"legacy ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: default\n      protocol: layer2\n      addresses: [203.0.113.0/28]\n",
			[]string{"data.config", "legacy ConfigMap", "configmaptocrs"}},
		{"community neither value nor alias", bgpAdvHeader + "spec: {communities: [NO_SUCH_ALIAS]}\n", []string{"spec.communities[0]", "NO_SUCH_ALIAS"}},
		{"community value out of range", bgpAdvHeader + "spec: {communities: [\"65536:1\"]}\n", []string{"spec.communities[0]"}},
		{"alias defined twice differently", "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: a, namespace: m}\nspec: {communities: [{name: X, value: \"1:1\"}]}\n---\napiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: b, namespace: m}\nspec: {communities: [{name: X, value: \"1:2\"}]}\n",
			[]string{`document 2, Community "m/b"`, "spec.communities[0].name", `document 1, Community "m/a"`}},
		{"alias with a bad value", "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: a, namespace: m}\nspec: {communities: [{name: X, value: \"no-export\"}]}\n", []string{"spec.communities[0].value"}},
		{"hold time too short", peerHeader + "spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 2s}\n", []string{"spec.holdTime", "from 3s to 65535s"}},
		{"keepalive longer than hold", peerHeader + "spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 9s, keepaliveTime: 10s}\n", []string{"spec.keepaliveTime", "not be longer than holdTime"}},
		{"keepalive making a hold time too long", peerHeader + "spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, keepaliveTime: 10h}\n", []string{"spec.keepaliveTime", "above the largest"}},
		{"not a duration", peerHeader + "spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: soon}\n", []string{"spec.holdTime", `"soon" is not a duration`}},
		{"no myASN", peerHeader + "spec: {peerASN: 2, peerAddress: 198.51.100.1}\n", []string{"spec.myASN", "required"}},
		{"no peerASN", peerHeader + "spec: {myASN: 2, peerAddress: 198.51.100.1}\n", []string{"spec.peerASN", "required"}},
		{"no peerAddress", peerHeader + "spec: {myASN: 2, peerASN: 1}\n", []string{"spec.peerAddress", "required"}},
		{"connect time out of range", peerHeader + "spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, connectTime: 0s}\n", []string{"spec.connectTime", "from 1s to 65535s"}},
		{"bad dynamicASN", peerHeader + "spec: {myASN: 2, dynamicASN: sometimes, peerAddress: 198.51.100.1}\n", []string{"spec.dynamicASN", "internal or external"}},
		{"a peer address ironlb's schema refuses", peerHeader + "spec: {myASN: 2, peerASN: 1, peerAddress: router.example}\n", []string{`BGPPeer "metallb-system/tor"`, "spec.peerAddress"}},
		{"a List item at fault", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata: {name: p}\n  spec: {addresses: [nope]}\n",
			[]string{"document 1, item 1", `IPAddressPool "p"`, "spec.addresses[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Convert([]byte(tc.in))
			if err == nil {
				var buf bytes.Buffer
				_ = r.WriteYAML(&buf)
				t.Fatalf("no error; output:\n%s", buf.String())
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not contain %q:\n%v", s, err)
				}
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("error is not an *InputError: %T", err)
			}
		})
	}
}

func TestLegacyConfigMapSentinel(t *testing.T) {
	_, err := Convert([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    peers: []\n"))
	if !errors.Is(err, ErrLegacyConfigMap) {
		t.Fatalf("got %v, want ErrLegacyConfigMap", err)
	}
}
