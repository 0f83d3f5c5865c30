package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/election"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestClaimMeta(t *testing.T) {
	for _, tt := range []struct {
		meta []byte
		want election.ClaimVersion
	}{
		{nil, election.ClaimV1}, // a release before versions
		{ClaimMeta(election.ClaimV1), election.ClaimV1},
		{ClaimMeta(election.ClaimV2), election.ClaimV2},
		{ClaimMeta(0), election.LatestClaim},
		{[]byte(`{"claim":7,"more":"x"}`), 7}, // newer than us: Agreed caps it
		{[]byte(`{"claim":0}`), election.ClaimV1},
		{[]byte(`not json`), election.ClaimV1},
	} {
		if got := claimOf(tt.meta); got != tt.want {
			t.Errorf("claimOf(%q) = %d, want %d", tt.meta, got, tt.want)
		}
	}
	if ClaimMeta(election.ClaimV1) != nil {
		t.Error("a version 1 speaker advertises metadata; releases before versions advertise none")
	}
}

// TestMixedClaimVersions: speakers of different releases rank with the
// oldest version any of them speaks, so that they agree on one owner per
// address; a speaker joining sets the version at once; a change of the
// agreed version while joined is a switch during which only the addresses
// whose owner both versions agree on are answered, never two owners.
func TestMixedClaimVersions(t *testing.T) {
	nodes := []string{"cv-a", "cv-b", "cv-c"}
	for _, n := range nodes {
		create(t, node(n, nil))
	}
	l2Config(t, "cv", "203.0.113.128/28", v1alpha1.L2AdvertisementSpec{})
	ns := namespace(t, "cv")
	var addrs []netip.Addr
	for i := range 12 {
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(129 + i)})
		lbService(t, ns, fmt.Sprintf("web-%d", i), false, a.String())
		addrs = append(addrs, a)
	}
	clock := &testClock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	m := &members{claim: map[string]election.ClaimVersion{"cv-a": election.ClaimV1}, switchDelay: time.Minute, now: clock.Now}
	sps := cluster(t, m, nil, nodes...)

	// expect waits until every address is announced by exactly the node
	// want names ("" for none).
	expect := func(step string, want func(netip.Addr) string) {
		t.Helper()
		for _, a := range addrs {
			var w []string
			if n := want(a); n != "" {
				w = []string{n}
			}
			expectOwner(t, sps, a, w...)
		}
		t.Logf("%s: as expected", step)
	}
	// during is the owner while switching between two versions: the one
	// both agree on, or none.
	during := func(alive []string) func(netip.Addr) string {
		return func(a netip.Addr) string {
			if w := election.Winner(election.ClaimV1, a, alive); w == election.Winner(election.ClaimV2, a, alive) {
				return w
			}
			return ""
		}
	}
	moved := func(alive []string) int {
		n := 0
		for _, a := range addrs {
			if during(alive)(a) == "" {
				n++
			}
		}
		return n
	}
	winner := func(v election.ClaimVersion, alive []string) func(netip.Addr) string {
		return func(a netip.Addr) string { return election.Winner(v, a, alive) }
	}

	// seen waits until every speaker has synced with n members (its
	// NodeAnnouncement says so): the owners alone can look right before a
	// speaker that owns nothing has seen the change.
	seen := func(n int) {
		t.Helper()
		c := testenv.Get(t).Client
		for _, name := range nodes {
			testutil.Eventually(t, fmt.Sprintf("%s to have synced with %d members", name, n), func() (bool, string) {
				var na v1alpha1.NodeAnnouncement
				if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &na); err != nil {
					return false, err.Error()
				}
				return na.Status.Members == int32(n), fmt.Sprintf("members %d", na.Status.Members)
			})
		}
	}

	// All join, one of them an old speaker: version 1 at once, no switch.
	m.set(nodes...)
	expect("joined with an old speaker", winner(election.ClaimV1, nodes))
	seen(len(nodes))

	// The old speaker goes: the others switch to version 2.
	rest := nodes[1:]
	if moved(rest) == 0 {
		t.Fatal("versions 1 and 2 agree on every owner; the test proves nothing")
	}
	m.set(rest...)
	expect("switching to version 2", during(rest))
	clock.Add(2 * time.Minute)
	m.set(rest...) // a sync after the switch delay
	expect("switched to version 2", winner(election.ClaimV2, rest))

	// The old speaker comes back: the others switch back to version 1.
	// The old one ranks with version 1 throughout and announces what it
	// wins at once; the switching ones announce none of that.
	m.set(nodes...)
	expect("switching back to version 1", func(a netip.Addr) string {
		if w := election.Winner(election.ClaimV1, a, nodes); w == "cv-a" {
			return w
		}
		return during(nodes)(a)
	})
	clock.Add(2 * time.Minute)
	m.set(nodes...)
	expect("switched back to version 1", winner(election.ClaimV1, nodes))
}
