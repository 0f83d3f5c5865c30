package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/testenv"
)

// TestStatusLayer2Capped: a node answering for more layer 2 addresses
// than a NodeAnnouncement lists writes a bounded object to the API
// server: the lowest maxLayer2Status addresses and the count of all.
// Fewer addresses later shrink both; none removes the count.
func TestStatusLayer2Capped(t *testing.T) {
	c := testenv.Get(t).Client
	ctx := context.Background()
	const name = "status-cap"
	create(t, node(name, nil))
	t.Cleanup(func() {
		_ = c.Delete(ctx, &v1alpha1.NodeAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	w := newStatusWriter(c, name, slog.New(slog.DiscardHandler))

	since := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	status := func(n int) v1alpha1.NodeAnnouncementStatus {
		st := v1alpha1.NodeAnnouncementStatus{Members: 1}
		a := netip.MustParseAddr("2001:db8:ff00::")
		for i := range n {
			a = a.Next()
			st.Layer2 = append(st.Layer2, v1alpha1.L2Announcement{
				Address:    a.String(),
				Services:   []string{fmt.Sprintf("tenant-%d/service-%d", i, i)},
				Interfaces: []string{"eth0", "eth1"},
				Since:      since,
			})
		}
		return st
	}
	read := func() v1alpha1.NodeAnnouncement {
		t.Helper()
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &na); err != nil {
			t.Fatal(err)
		}
		return na
	}

	const many = 5000
	if err := w.write(ctx, status(many)); err != nil {
		t.Fatalf("writing the status of a node with %d addresses: %v", many, err)
	}
	na := read()
	if got := len(na.Status.Layer2); got != maxLayer2Status {
		t.Errorf("%d layer 2 entries written, want %d", got, maxLayer2Status)
	}
	if na.Status.Layer2Addresses != many {
		t.Errorf("layer2Addresses = %d, want %d", na.Status.Layer2Addresses, many)
	}
	if len(na.Status.Layer2) > 0 {
		if first, last := na.Status.Layer2[0].Address, na.Status.Layer2[len(na.Status.Layer2)-1].Address; first != "2001:db8:ff00::1" || last != "2001:db8:ff00::64" {
			t.Errorf("entries %s to %s, want the lowest: 2001:db8:ff00::1 to 2001:db8:ff00::64", first, last)
		}
	}
	// Bounded whatever the count: well below etcd's 1.5 MiB.
	if b, _ := json.Marshal(na); len(b) > 64<<10 {
		t.Errorf("the object is %d bytes with %d addresses", len(b), many)
	}

	if err := w.write(ctx, status(3)); err != nil {
		t.Fatal(err)
	}
	if na := read(); len(na.Status.Layer2) != 3 || na.Status.Layer2Addresses != 3 {
		t.Errorf("after shrinking to 3: %d entries, layer2Addresses %d", len(na.Status.Layer2), na.Status.Layer2Addresses)
	}
	if err := w.write(ctx, status(0)); err != nil {
		t.Fatal(err)
	}
	if na := read(); len(na.Status.Layer2) != 0 || na.Status.Layer2Addresses != 0 {
		t.Errorf("with no addresses: %d entries, layer2Addresses %d", len(na.Status.Layer2), na.Status.Layer2Addresses)
	}
}

func TestSessionSummary(t *testing.T) {
	for _, tt := range []struct {
		sessions []v1alpha1.BGPSession
		want     string
	}{
		{nil, ""},
		{[]v1alpha1.BGPSession{{Peer: "rtr-a", State: "Established"}}, "rtr-a=Established"},
		{[]v1alpha1.BGPSession{{Peer: "rtr-a", State: "Established"}, {Peer: "rtr-b", State: "Disabled", Message: "no Secret"}}, "rtr-a=Established,rtr-b=Disabled"},
	} {
		if got := sessionSummary(tt.sessions); got != tt.want {
			t.Errorf("sessionSummary(%+v) = %q, want %q", tt.sessions, got, tt.want)
		}
	}
}

// TestNextStatusInterval: the wait between writes doubles while changes
// keep coming, up to statusIntervalBusy, and falls back at once when one
// wait passes with nothing new.
func TestNextStatusInterval(t *testing.T) {
	d := statusInterval
	var got []time.Duration
	for range 6 {
		d = nextStatusInterval(d, true)
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("busy intervals %v, want %v", got, want)
	}
	if d := nextStatusInterval(statusIntervalBusy, false); d != statusInterval {
		t.Errorf("after a quiet wait: %v, want %v", d, statusInterval)
	}
}
