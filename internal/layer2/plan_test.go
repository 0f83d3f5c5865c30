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
		{Name: "eth0", Index: 2, Up: true, MAC: mac("02:00:00:00:00:02")},
		{Name: "eth1", Index: 3, Up: false, MAC: mac("02:00:00:00:00:03")},
		{Name: "br0", Index: 4, Up: true, MAC: mac("02:00:00:00:00:04")},
		{Name: "veth0", Index: 5, Up: true, Port: true, MAC: mac("02:00:00:00:00:05")},
		{Name: "wg0", Index: 6, Up: true},
		{Name: "noarp0", Index: 7, Up: true, NoARP: true, MAC: mac("02:00:00:00:00:07")},
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
			name:    "every interface skips down, loopback, non-Ethernet, bridge ports and NOARP",
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
