package traffic_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ironlb/ironlb/e2e/lab"
)

// upLab brings up the network of a lab of n nodes for one test (root
// needed: it fails in CI without, skips elsewhere), and when the test
// ends removes it and checks nothing is left.
func upLab(t *testing.T, nodes int) lab.Plan {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root to make network namespaces")
	}
	p, err := lab.NewPlan(fmt.Sprintf("t%04d", time.Now().UnixNano()%10000), nodes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Down(p.Name); err != nil {
			t.Errorf("Down: %v", err)
		}
		if left := lab.Leftovers(p.Name); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	if err := lab.Up(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// handle is a netlink handle inside the namespace ns.
func handle(ns string) (*netlink.Handle, error) {
	n, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer n.Close()
	return netlink.NewHandleAt(n)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
