package inspect

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestWhoHas(t *testing.T) {
	s := cluster()
	s.Services = []corev1.Service{
		service("web", allocated(""), "203.0.113.70", "2001:db8:64::7"),
		service("api", allocated(""), "203.0.113.100"),
		service("quiet", allocated(""), "203.0.113.71"),
	}
	s.Services[1].Namespace = "shop"
	announceL2(s, "n2", "203.0.113.70", "default/web")
	announceL2(s, "n3", "2001:db8:64::7", "default/web")
	announceBGP(s, "n1", "203.0.113.100/32", "shop/api")
	announceBGP(s, "n3", "203.0.113.100/32", "shop/api")
	s.NodeAnnouncements[2].Status.BGPSessions = sessions("Active")

	for _, tc := range []struct {
		addr     string
		pool     string
		services []string
		nodes    []string
		note     string
	}{
		{addr: "203.0.113.70", pool: "l2", services: []string{"default/web"}, nodes: []string{"n2"}},
		{addr: "2001:db8:64::7", pool: "l2", services: []string{"default/web"}, nodes: []string{"n3"}},
		{addr: "203.0.113.100", pool: "bgp", services: []string{"shop/api"}, nodes: []string{"n1", "n3"}},
		{addr: "203.0.113.71", pool: "l2", services: []string{"default/quiet"}, note: "kubectl ironlb explain svc/quiet -n default"},
		{addr: "203.0.113.72", pool: "l2", services: []string{}, note: "203.0.113.72 is not assigned to any Service"},
		{addr: "198.51.100.7", services: []string{}, note: "198.51.100.7 is in no IPPool"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			r := WhoHas(s, netip.MustParseAddr(tc.addr))
			if r.Pool != tc.pool {
				t.Errorf("pool %q, want %q", r.Pool, tc.pool)
			}
			if diff := cmp.Diff(tc.services, r.Services); diff != "" {
				t.Errorf("services (-want +got)\n%s", diff)
			}
			if diff := cmp.Diff(tc.nodes, r.Nodes()); diff != "" {
				t.Errorf("nodes (-want +got)\n%s", diff)
			}
			if notes := strings.Join(r.Notes, "\n"); !strings.Contains(notes, tc.note) || (tc.note == "" && notes != "") {
				t.Errorf("notes %q, want %q", notes, tc.note)
			}
		})
	}

	// The BGP answer carries each node's session with the peer.
	r := WhoHas(s, netip.MustParseAddr("203.0.113.100"))
	var b strings.Builder
	if err := WriteWhoHas(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"IPPool bgp", "shop/api", "node n1 advertises 203.0.113.100/32 to router 198.51.100.1 Established", "node n3 advertises 203.0.113.100/32 to router 198.51.100.1 Active"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the text lacks %q:\n%s", want, b.String())
		}
	}
}
