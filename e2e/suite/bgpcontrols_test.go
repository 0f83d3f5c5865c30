package suite

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/internal/testutil"
)

// patchPeer merge-patches a BGPPeer's spec.
func patchPeer(t *testing.T, c client.Client, name, spec string) {
	t.Helper()
	p := &v1alpha1.BGPPeer{}
	p.Name = name
	if err := c.Patch(context.Background(), p, client.RawPatch(types.MergePatchType, []byte(`{"spec":`+spec+`}`))); err != nil {
		t.Fatalf("BGPPeer %s: %v", name, err)
	}
}

// peerSessions waits until every node's session with peer satisfies ok,
// as its NodeAnnouncement reports it.
func peerSessions(t *testing.T, c client.Client, nodes int, peer, what string, ok func(v1alpha1.BGPSession) bool) {
	t.Helper()
	testutil.Eventually(t, what, func() (bool, string) {
		var list v1alpha1.NodeAnnouncementList
		if err := c.List(context.Background(), &list); err != nil {
			return false, err.Error()
		}
		good := 0
		var seen []string
		for _, na := range list.Items {
			for _, s := range na.Status.BGPSessions {
				if s.Peer == peer {
					seen = append(seen, fmt.Sprintf("%s: %s %q", na.Name, s.State, s.Message))
					if ok(s) {
						good++
					}
				}
			}
		}
		return good == nodes, strings.Join(seen, "; ")
	})
}

// routerSessions waits until the router's IPv4 session with every node
// satisfies ok.
func routerSessions(t *testing.T, l *lab.Lab, what string, ok func(lab.RouterSession) bool) {
	t.Helper()
	testutil.Eventually(t, what, func() (bool, string) {
		ss, err := lab.RouterSessions(l.Plan)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range l.Plan.Nodes {
			if !ok(ss[n.Addr.Addr()]) {
				return false, fmt.Sprintf("%s: %+v", n.Addr.Addr(), ss[n.Addr.Addr()])
			}
		}
		return true, ""
	})
}

// TestBGPControls: a router that sends more prefixes than a BGPPeer's
// maxReceivedPrefixes gets a NOTIFICATION (Cease, maximum number of
// prefixes) and the session is reported with the reason until the router
// sends fewer; a BGPPeer with dynamicASN external peers with FRR's eBGP
// neighbour and one with dynamicASN internal with FRR configured
// `remote-as internal`; dynamicASN external against a router in the
// speakers' own AS is refused and reported.
func TestBGPControls(t *testing.T) {
	l, c := startLab(t, 3)
	applyExample(t, l)
	nodes := len(l.Plan.Nodes)
	const peer = "lab-router" // the IPv4 sessions
	established := func(s v1alpha1.BGPSession) bool { return s.State == "Established" && s.Message == "" }
	peerSessions(t, c, nodes, peer, "every node's IPv4 session established", established)

	// The router sends its two connected IPv4 networks; the limit is one.
	patchPeer(t, c, peer, `{"maxReceivedPrefixes":1,"connectTime":"2s"}`)
	if err := lab.RouterConfigure(l.Plan, "sending the speakers the router's networks",
		"address-family ipv4 unicast", "redistribute connected", "exit-address-family", "exit", "route-map TO-SPEAKERS permit 5"); err != nil {
		t.Fatal(err)
	}
	peerSessions(t, c, nodes, peer, "every node's IPv4 session closed for too many prefixes, and reported", func(s v1alpha1.BGPSession) bool {
		return s.State != "Established" && strings.Contains(s.Message, "maxReceivedPrefixes")
	})
	routerSessions(t, l, "the router told why by NOTIFICATION", func(s lab.RouterSession) bool {
		return s.Dropped > 0 && strings.Contains(s.LastNotification, "Maximum Number of Prefixes")
	})
	if err := lab.RouterConfigure(l.Plan, "sending the speakers nothing again",
		"address-family ipv4 unicast", "no redistribute connected", "exit-address-family", "exit", "no route-map TO-SPEAKERS permit 5"); err != nil {
		t.Fatal(err)
	}
	peerSessions(t, c, nodes, peer, "every node's IPv4 session established again, the report gone", established)

	// dynamicASN external: the router is AS 64500, the speakers 64512.
	patchPeer(t, c, peer, `{"peerASN":null,"dynamicASN":"external"}`)
	peerSessions(t, c, nodes, peer, "dynamicASN external: established", established)
	routerSessions(t, l, "the router's eBGP sessions established", func(s lab.RouterSession) bool { return s.State == "Established" })

	// dynamicASN internal: the speakers join the router's AS, which
	// takes them as internal neighbours.
	var internal []string
	for _, n := range l.Plan.Nodes {
		internal = append(internal, fmt.Sprintf("neighbor %s remote-as internal", n.Addr.Addr()))
	}
	if err := lab.RouterConfigure(l.Plan, "taking the nodes as internal neighbours", internal...); err != nil {
		t.Fatal(err)
	}
	patchPeer(t, c, peer, fmt.Sprintf(`{"myASN":%d,"dynamicASN":"internal"}`, lab.RouterASN))
	peerSessions(t, c, nodes, peer, "dynamicASN internal: established", established)
	routerSessions(t, l, "the router's iBGP sessions established", func(s lab.RouterSession) bool { return s.State == "Established" })

	// dynamicASN external, but the router answers from the speakers' AS.
	patchPeer(t, c, peer, `{"dynamicASN":"external"}`)
	peerSessions(t, c, nodes, peer, "dynamicASN external against a router in the speakers' AS: refused and reported", func(s v1alpha1.BGPSession) bool {
		return s.State != "Established" && strings.Contains(s.Message, "dynamicASN external")
	})
}
