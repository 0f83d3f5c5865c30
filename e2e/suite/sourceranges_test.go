package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/e2e/lab"
	"github.com/ironlb/ironlb/e2e/measure"
	"github.com/ironlb/ironlb/internal/testutil"
)

// The source ranges scenario: Services that restrict their clients
// (spec.loadBalancerSourceRanges, the older annotation) are reachable
// from the clients they allow and not from the others, over layer 2 and
// BGP addresses of both families, with real packets from the lab's
// client on the LAN and its remote client behind the router.

// Written as users read them, not taken from ironlb's packages.
const (
	conditionSourceRanges = "ironlb.io/SourceRangesValid"
	reasonInvalidRanges   = "InvalidSourceRanges"
)

// dropWait is how long a request that ironlb must drop is given; it is
// never answered, so the wait only bounds the test's length.
const dropWait = 2 * time.Second

// source is a client address in a lab namespace.
type source struct {
	what string
	ns   string
	// addr is its address of the target's family.
	addr func(target netip.Addr) netip.Addr
}

// askFrom makes one HTTP request from src to target on a new connection
// and returns the lab pod's answer.
func askFrom(src source, target netip.AddrPort, timeout time.Duration) (lab.Answer, error) {
	from := src.addr(target.Addr())
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := testutil.InNetNS(src.ns, func() (err error) {
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
	resp, err := hc.Get("http://" + target.String() + "/")
	if err != nil {
		return lab.Answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return lab.Answer{}, err
	}
	return lab.ParseAnswer(string(body))
}

// expectAnswered waits until n requests in a row from src to target are
// answered by a pod that saw src's own address or a node's (Cluster
// policy masquerades towards pods on other nodes).
func expectAnswered(t *testing.T, src source, target netip.AddrPort, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d requests in a row from %s (%s) to %s answered", n, src.what, src.addr(target.Addr()), target), func() (bool, string) {
		for i := range n {
			if _, err := askFrom(src, target, askTimeout); err != nil {
				return false, fmt.Sprintf("request %d: %v", i+1, err)
			}
		}
		return true, ""
	})
}

// expectDropped waits until n requests in a row from src to target go
// unanswered, each timing out: neither answered nor refused, since a
// reset would tell the client that something is there.
func expectDropped(t *testing.T, src source, target netip.AddrPort, n int) {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d requests in a row from %s (%s) to %s dropped", n, src.what, src.addr(target.Addr()), target), func() (bool, string) {
		for i := range n {
			a, err := askFrom(src, target, dropWait)
			var ne net.Error
			switch {
			case err == nil:
				return false, fmt.Sprintf("request %d answered by %s", i+1, a.Pod)
			case errors.Is(err, syscall.ECONNREFUSED):
				t.Fatalf("request %d from %s to %s refused, want it dropped without an answer: %v", i+1, src.what, target, err)
			case !errors.As(err, &ne) || !ne.Timeout():
				return false, fmt.Sprintf("request %d: %v, want a timeout", i+1, err)
			}
		}
		return true, ""
	})
}

// TestSourceRanges: four Services, on layer 2 and BGP addresses of both
// families, allow the client's second address and the remote network but
// not the client's own address: the allowed are answered, the client is
// dropped. The ranges then change to the client's own address alone: it
// is answered, and the others are dropped. Last, the ranges turn
// unreadable (an annotation that the API server did not check, being
// set beside the field, becomes what counts when the field goes): every
// Service gets the condition False and a Warning event, and nobody gets
// in, while the addresses stay announced.
func TestSourceRanges(t *testing.T) {
	l, c := startLab(t, 3)
	ctx := context.Background()
	applyExample(t, l)
	pods := podsOn(t, c, "web", nodeNames(l.Plan)...)
	all := slices.Sorted(maps.Keys(pods))
	lan, remote := l.Plan.Client, l.Plan.Remote

	// A second address of the client on the LAN, inside its namespace.
	second := map[bool]netip.Addr{true: lab.PoolAddr(lab.LANNet, 101), false: lab.PoolAddr(lab.LANNet6, 0x101)}
	for _, args := range [][]string{
		{"198.51.100.101/25", "dev", "eth0"},
		{"2001:db8:5100::101/64", "dev", "eth0", "nodad"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", lan.NetNS, "addr", "add"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("adding the client's second address %s: %v: %s", args[0], err, out)
		}
	}
	own := source{"the client's own address", lan.NetNS, func(a netip.Addr) netip.Addr { return addrOf(lan, a) }}
	sec := source{"the client's second address", lan.NetNS, func(a netip.Addr) netip.Addr { return second[a.Is4()] }}
	rem := source{"the remote client", remote.NetNS, func(a netip.Addr) netip.Addr { return addrOf(remote, a) }}
	host := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

	targets := []struct {
		name string
		addr netip.Addr
		bgp  bool
	}{
		{"l2-v4", lab.PoolAddr(lab.L2PoolNet, 72), false},
		{"l2-v6", lab.PoolAddr(lab.L2PoolNet6, 0x72), false},
		{"bgp-v4", lab.PoolAddr(lab.BGPPoolNet, 102), true},
		{"bgp-v6", lab.PoolAddr(lab.BGPPoolNet6, 0x102), true},
	}
	// tries: on a BGP address the router spreads connections over the
	// nodes, so a few requests reach more than one node.
	tries := func(bgp bool) int {
		if bgp {
			return 3
		}
		return 1
	}
	first := []string{host(second[true]), host(second[false]), lab.RemoteNet.String(), lab.RemoteNet6.String()}
	for _, tg := range targets {
		lbService(t, c, tg.name, tg.addr, func(s *corev1.Service) {
			s.Spec.Selector = map[string]string{"app": "web"}
			s.Spec.LoadBalancerSourceRanges = first
		})
	}
	var nodeAddrs4, nodeAddrs6 []netip.Addr
	for _, n := range l.Plan.Nodes {
		nodeAddrs4, nodeAddrs6 = append(nodeAddrs4, n.Addr.Addr()), append(nodeAddrs6, n.Addr6.Addr())
	}
	for _, tg := range targets {
		t.Run("allowed/"+tg.name, func(t *testing.T) {
			expectReady(t, c, tg.name, tg.addr, all...)
			if tg.bgp {
				hops := nodeAddrs4
				if tg.addr.Is6() {
					hops = nodeAddrs6
				}
				expectPaths(t, l, c, netip.PrefixFrom(tg.addr, tg.addr.BitLen()), slices.Clone(hops)...)
			}
			target := netip.AddrPortFrom(tg.addr, 80)
			expectAnswered(t, sec, target, 10)
			expectAnswered(t, rem, target, 10)
			expectDropped(t, own, target, tries(tg.bgp))
		})
	}
	if t.Failed() {
		return
	}

	update := func(name string, mutate func(*corev1.Service)) {
		t.Helper()
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &svc); err != nil {
			t.Fatal(err)
		}
		mutate(&svc)
		if err := c.Update(ctx, &svc); err != nil {
			t.Fatalf("updating Service %s: %v", name, err)
		}
	}

	// The client's own address alone. Once it is answered (the speakers
	// have the new ranges), the others' next connections are dropped.
	for _, tg := range targets {
		update(tg.name, func(s *corev1.Service) {
			s.Spec.LoadBalancerSourceRanges = []string{host(lan.Addr.Addr()), host(lan.Addr6.Addr())}
		})
	}
	for _, tg := range targets {
		t.Run("changed/"+tg.name, func(t *testing.T) {
			target := netip.AddrPortFrom(tg.addr, 80)
			expectAnswered(t, own, target, 10)
			expectDropped(t, sec, target, tries(tg.bgp))
			expectDropped(t, rem, target, tries(tg.bgp))
		})
	}
	if t.Failed() {
		return
	}

	// Unreadable ranges. The API server refuses a malformed annotation
	// when it checks it, which it does not while the field is set, nor
	// later while the annotation stays as it was.
	for _, tg := range targets {
		update(tg.name, func(s *corev1.Service) {
			s.Annotations[corev1.AnnotationLoadBalancerSourceRangesKey] = "198.51.100.0/24, the-lan"
		})
		update(tg.name, func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = nil })
	}
	for _, tg := range targets {
		t.Run("unreadable/"+tg.name, func(t *testing.T) {
			testutil.Eventually(t, fmt.Sprintf("Service %s's condition %s False", tg.name, conditionSourceRanges), func() (bool, string) {
				var svc corev1.Service
				if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: tg.name}, &svc); err != nil {
					return false, err.Error()
				}
				cond := meta.FindStatusCondition(svc.Status.Conditions, conditionSourceRanges)
				return cond != nil && cond.Status == "False" && cond.Reason == reasonInvalidRanges &&
						strings.Contains(cond.Message, `"the-lan"`) && strings.Contains(cond.Message, corev1.AnnotationLoadBalancerSourceRangesKey),
					fmt.Sprintf("%+v", cond)
			})
			testutil.Eventually(t, fmt.Sprintf("a Warning event %s on Service %s", reasonInvalidRanges, tg.name), func() (bool, string) {
				var list corev1.EventList
				if err := c.List(ctx, &list, client.InNamespace("default")); err != nil {
					return false, err.Error()
				}
				var seen []string
				for _, e := range list.Items {
					if e.InvolvedObject.Name == tg.name {
						seen = append(seen, e.Type+" "+e.Reason)
						if e.Type == corev1.EventTypeWarning && e.Reason == reasonInvalidRanges && strings.Contains(e.Message, `"the-lan"`) {
							return true, ""
						}
					}
				}
				return false, fmt.Sprintf("events of %s: %v", tg.name, seen)
			})
			target := netip.AddrPortFrom(tg.addr, 80)
			for _, src := range []source{own, sec, rem} {
				expectDropped(t, src, target, tries(tg.bgp))
			}
			// Closed, not withdrawn: the address is still announced.
			if tg.bgp {
				if got := advertisedBy(c, netip.PrefixFrom(tg.addr, tg.addr.BitLen())); len(got) != len(l.Plan.Nodes) {
					t.Errorf("%s advertised by %v, want every node", tg.addr, got)
				}
			} else if owner, err := measure.Owner(ctx, l, tg.addr); err != nil || owner == "" {
				t.Errorf("%s: no node answers for it (%q, %v)", tg.addr, owner, err)
			}
		})
	}
}
