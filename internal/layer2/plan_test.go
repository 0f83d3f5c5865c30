package layer2

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// testLinks is a node with the kinds of interfaces plan has to tell apart.
func testLinks() []link {
	return []link{
		{Name: "lo", Index: 1, Up: true, Loopback: true, MAC: make(net.HardwareAddr, 6)},
		{Name: "eth0", Index: 2, Up: true, Kind: "device", MAC: mac("02:00:00:00:00:02")},
		{Name: "eth1", Index: 3, Up: false, Kind: "device", MAC: mac("02:00:00:00:00:03")},
		{Name: "br0", Index: 4, Up: true, Kind: "bridge", MAC: mac("02:00:00:00:00:04")},
		{Name: "veth0", Index: 5, Up: true, Kind: "veth", Port: true, MAC: mac("02:00:00:00:00:05")},
		{Name: "wg0", Index: 6, Up: true, Kind: "wireguard"},
		{Name: "noarp0", Index: 7, Up: true, Kind: "device", NoARP: true, MAC: mac("02:00:00:00:00:07")},
		// What a Kubernetes node adds: pods' veths, tunnels, dummies and
		// the bridges of CNIs and container engines.
		{Name: "cali1a2b3c4d5e6", Index: 8, Up: true, Kind: "veth", MAC: mac("ee:ee:ee:ee:ee:ee")},
		{Name: "vxlan.calico", Index: 9, Up: true, Kind: "vxlan", MAC: mac("66:00:00:00:00:09")},
		{Name: "kube-ipvs0", Index: 10, Up: true, Kind: "dummy", MAC: mac("02:00:00:00:00:0a")},
		{Name: "cni0", Index: 11, Up: true, Kind: "bridge", MAC: mac("02:00:00:00:00:0b")},
	}
}

func TestPlan(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.65")
	v4b := netip.MustParseAddr("203.0.113.66")
	v6 := netip.MustParseAddr("2001:db8:ff00::10")
	v6b := netip.MustParseAddr("2001:db8:ff00::11")
	tests := []struct {
		name    string
		desired map[netip.Addr][]string
		want    map[string][]string // "name/family" -> addresses
		wantErr []string            // substrings, one error each
		is      error
	}{
		{
			name:    "every interface skips down, loopback, non-Ethernet, bridge ports, NOARP, pod veths, tunnels, dummies and CNI bridges",
			desired: map[netip.Addr][]string{v4: nil, v6: {}},
			want: map[string][]string{
				"eth0/ipv4": {"203.0.113.65"}, "br0/ipv4": {"203.0.113.65"},
				"eth0/ipv6": {"2001:db8:ff00::10"}, "br0/ipv6": {"2001:db8:ff00::10"},
			},
		},
		{
			name:    "named interfaces, both families on one interface",
			desired: map[netip.Addr][]string{v4: {"eth0"}, v4b: {"eth0"}, v6: {"eth0"}},
			want: map[string][]string{
				"eth0/ipv4": {"203.0.113.65", "203.0.113.66"},
				"eth0/ipv6": {"2001:db8:ff00::10"},
			},
		},
		{
			name:    "a named bridge port or NOARP interface is used as asked",
			desired: map[netip.Addr][]string{v4: {"veth0", "noarp0"}, v6: {"veth0"}},
			want: map[string][]string{
				"veth0/ipv4": {"203.0.113.65"}, "noarp0/ipv4": {"203.0.113.65"},
				"veth0/ipv6": {"2001:db8:ff00::10"},
			},
		},
		{
			name:    "named interfaces win over the default exclusions: a pod veth, a vxlan, a dummy, a CNI bridge",
			desired: map[netip.Addr][]string{v4: {"cali1a2b3c4d5e6", "vxlan.calico"}, v6: {"kube-ipvs0", "cni0"}, v4b: nil},
			want: map[string][]string{
				"cali1a2b3c4d5e6/ipv4": {"203.0.113.65"}, "vxlan.calico/ipv4": {"203.0.113.65"},
				"kube-ipvs0/ipv6": {"2001:db8:ff00::10"}, "cni0/ipv6": {"2001:db8:ff00::10"},
				// the same interfaces are still skipped for an address
				// wanted on every interface
				"eth0/ipv4": {"203.0.113.66"}, "br0/ipv4": {"203.0.113.66"},
			},
		},
		{
			name:    "a named interface that is down waits, without an error",
			desired: map[netip.Addr][]string{v4: {"eth1"}, v6: {"eth1", "eth0"}},
			want:    map[string][]string{"eth0/ipv6": {"2001:db8:ff00::10"}},
		},
		{
			name:    "a missing interface is an error naming it and the address; the rest is planned",
			desired: map[netip.Addr][]string{v4: {"eth9"}, v4b: {"eth0"}, v6: {"eth9", "eth0"}, v6b: nil},
			want: map[string][]string{
				"eth0/ipv4": {"203.0.113.66"},
				"eth0/ipv6": {"2001:db8:ff00::10", "2001:db8:ff00::11"},
				"br0/ipv6":  {"2001:db8:ff00::11"},
			},
			wantErr: []string{`"eth9" for 203.0.113.65`, `"eth9" for 2001:db8:ff00::10`},
			is:      ErrNoSuchInterface,
		},
		{
			name:    "loopback and interfaces without an Ethernet address cannot answer",
			desired: map[netip.Addr][]string{v4: {"lo"}, v6: {"wg0"}},
			want:    map[string][]string{},
			wantErr: []string{`"lo" for 203.0.113.65`, `"wg0" for 2001:db8:ff00::10`},
			is:      ErrNotEthernet,
		},
		{
			name:    "nothing desired, nothing planned",
			desired: map[netip.Addr][]string{},
			want:    map[string][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan(tt.desired, testLinks())
			gotS := map[string][]string{}
			for k, set := range got {
				for _, a := range set.sorted() {
					gotS[k.String()] = append(gotS[k.String()], a.String())
				}
			}
			if diff := cmp.Diff(tt.want, gotS); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			checkJoined(t, err, tt.is, tt.wantErr)
		})
	}
}

// TestSkipReason: which interfaces "every interface" leaves out, and why.
// The kernel's type decides where it tells enough; names catch the
// bridges and devices of CNIs and container engines.
func TestSkipReason(t *testing.T) {
	m := mac("02:00:00:00:00:01")
	tests := []struct {
		link link
		want string // "" : used
	}{
		// Used: NICs, bonds, VLANs, macvlans, the node's own bridge, and a
		// veth holding the node's address (kind, the lab).
		{link{Name: "eth0", Kind: "device"}, ""},
		{link{Name: "enp3s0f1", Kind: "device"}, ""},
		{link{Name: "bond0", Kind: "bond"}, ""},
		{link{Name: "bond0.100", Kind: "vlan"}, ""},
		{link{Name: "mv0", Kind: "macvlan"}, ""},
		{link{Name: "br0", Kind: "bridge"}, ""},
		{link{Name: "br-ex", Kind: "openvswitch"}, ""},
		{link{Name: "eth0", Kind: "veth", Addressed: true}, ""},
		{link{Name: "tap0", Kind: "tuntap"}, ""},
		// Not a Docker network's bridge: not twelve hex digits.
		{link{Name: "br-lan", Kind: "bridge"}, ""},
		{link{Name: "br-0123456789ab0", Kind: "bridge"}, ""},
		// By flags and place.
		{link{Name: "eth1", Kind: "device", Port: true}, "bridge or bond port"},
		{link{Name: "vethabc", Kind: "veth", Port: true, Addressed: true}, "bridge or bond port"},
		{link{Name: "eth2", Kind: "device", NoARP: true}, "NOARP"},
		// By type, whatever the name.
		{link{Name: "eth9", Kind: "veth"}, "veth without a global address"},
		{link{Name: "vethd8a1b2c", Kind: "veth"}, "veth without a global address"},
		{link{Name: "uplink", Kind: "vxlan"}, "type vxlan"},
		{link{Name: "flannel.1", Kind: "vxlan"}, "type vxlan"},
		{link{Name: "genev_sys_6081", Kind: "geneve"}, "type geneve"},
		{link{Name: "nodelocaldns", Kind: "dummy"}, "type dummy"},
		{link{Name: "kube-ipvs0", Kind: "dummy"}, "type dummy"},
		{link{Name: "gt0", Kind: "gretap"}, "type gretap"},
		{link{Name: "red", Kind: "vrf"}, "type vrf"},
		{link{Name: "nk0", Kind: "netkit"}, "type netkit"},
		// By name, whatever the type.
		{link{Name: "cni0", Kind: "bridge"}, "name cni*"},
		{link{Name: "cni-podman0", Kind: "bridge"}, "name cni*"},
		{link{Name: "docker0", Kind: "bridge"}, "name docker*"},
		{link{Name: "br-3f2a9c81d0e4", Kind: "bridge"}, "name br-<12 hex digits>"},
		{link{Name: "cbr0", Kind: "bridge"}, "name cbr*"},
		{link{Name: "kube-bridge", Kind: "bridge"}, "name kube-bridge"},
		{link{Name: "weave", Kind: "bridge"}, "name weave"},
		{link{Name: "virbr0", Kind: "bridge"}, "name virbr*"},
		{link{Name: "lxcbr0", Kind: "bridge"}, "name lxc*"},
		{link{Name: "lxc_health", Kind: "veth", Addressed: true}, "name lxc*"},
		{link{Name: "cilium_host", Kind: "veth", Addressed: true}, "name cilium*"},
		{link{Name: "cali0f1e2d3c4b5", Kind: "veth", Addressed: true}, "name cali*"},
		{link{Name: "antrea-gw0", Kind: "openvswitch"}, "name antrea-*"},
		{link{Name: "ovn-k8s-mp0", Kind: "openvswitch"}, "name ovn-k8s-*"},
		{link{Name: "tunl0", Kind: "device"}, "name tunl*"},
		{link{Name: "vxlan.calico", Kind: "device"}, "name vxlan*"},
	}
	for _, tt := range tests {
		l := tt.link
		l.Up, l.MAC = true, m
		if got := l.skipReason(); got != tt.want {
			t.Errorf("%s (%s): skipReason = %q, want %q", l.Name, l.Kind, got, tt.want)
		}
		if got := l.byDefault(); got != (tt.want == "") {
			t.Errorf("%s (%s): byDefault = %v, want %v", l.Name, l.Kind, got, tt.want == "")
		}
	}
}

// TestSkipped: the announcer's log lists only interfaces that would
// otherwise have been used (up, Ethernet) with their reasons.
func TestSkipped(t *testing.T) {
	got := skipped(testLinks())
	want := map[string]string{
		"veth0":           "bridge or bond port",
		"noarp0":          "NOARP",
		"cali1a2b3c4d5e6": "veth without a global address",
		"vxlan.calico":    "type vxlan",
		"kube-ipvs0":      "type dummy",
		"cni0":            "name cni*",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if wantsEvery(map[netip.Addr][]string{netip.MustParseAddr("203.0.113.65"): {"eth0"}}) {
		t.Error("wantsEvery with only named interfaces")
	}
	if !wantsEvery(map[netip.Addr][]string{netip.MustParseAddr("203.0.113.65"): {"eth0"}, netip.MustParseAddr("203.0.113.66"): nil}) {
		t.Error("wantsEvery with an address on every interface is false")
	}
}

// checkJoined checks that err joins one error per substring, each wrapping
// is.
func checkJoined(t *testing.T, err, is error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("error: %v, want none", err)
		}
		return
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %v is not a join of %d errors", err, len(want))
	}
	errs := j.Unwrap()
	if len(errs) != len(want) {
		t.Fatalf("%d errors (%v), want %d", len(errs), err, len(want))
	}
	for i, e := range errs {
		if !errors.Is(e, is) || !strings.Contains(e.Error(), want[i]) {
			t.Errorf("error %d = %q, want one wrapping %q and containing %q", i, e, is, want[i])
		}
	}
}

func TestNormalize(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.65")
	mapped := netip.MustParseAddr("::ffff:203.0.113.65")
	v6 := netip.MustParseAddr("2001:db8:ff00::10")
	got, err := normalize(map[netip.Addr][]string{
		v4:                                 {"eth1", "eth0"},
		mapped:                             {"eth0", "eth2"},
		v6:                                 {"eth0", "eth0"},
		netip.MustParseAddr("2001:db8::1"): {"eth0"},
		netip.MustParseAddr("2001:db8::2"): nil,
		{}:                                 nil,
		netip.MustParseAddr("ff02::1"):     nil,
	})
	want := map[netip.Addr][]string{
		v4:                                 {"eth0", "eth1", "eth2"},
		v6:                                 {"eth0"},
		netip.MustParseAddr("2001:db8::1"): {"eth0"},
		netip.MustParseAddr("2001:db8::2"): nil,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("normalize (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), "ff02::1") || !strings.Contains(err.Error(), `"invalid IP"`) {
		t.Errorf("error = %v, want one for the invalid and the multicast address", err)
	}

	// An empty list (every interface) wins over names given for the same
	// address in its 4in6 form.
	got, _ = normalize(map[netip.Addr][]string{v4: {}, mapped: {"eth0"}})
	if names, ok := got[v4]; !ok || names != nil || len(got) != 1 {
		t.Errorf("normalize = %v, want only %s with every interface", got, v4)
	}
}
