package inspect

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

func TestStatus(t *testing.T) {
	s := cluster()
	s.IPPools[0].Status.IPv4 = &v1alpha1.AddressCounts{Total: 32, Assigned: 1, Available: 31}
	s.IPPools = append(s.IPPools, pool("huge", "2001:db8:1::/64"))
	s.IPPools[2].Status.IPv6 = &v1alpha1.AddressCounts{Total: math.MaxInt64, Assigned: 2, Available: math.MaxInt64}
	s.IPPools[2].Status.Conditions[0] = metav1.Condition{Type: ConditionValid, Status: metav1.ConditionFalse, Reason: "Invalid", Message: "spec.addresses[0]: overlaps IPPool x"}
	s.Nodes = append(s.Nodes, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n4"}})
	s.NodeAnnouncements[1].Status.BGPSessions = sessions("Connect")
	s.NodeAnnouncements[2].Status.Fenced = "sees 1 of 3"
	announceL2(s, "n1", "203.0.113.70", "default/web")
	announceBGP(s, "n2", "203.0.113.100/32", "default/web")

	r := Status(s)
	var pools []string
	for _, p := range r.Pools {
		pools = append(pools, p.Name+" "+validText(p.Valid)+" "+usageText(p.IPv4)+" "+usageText(p.IPv6))
	}
	if diff := cmp.Diff([]string{"bgp True - -", "huge False (Invalid) - 2/2^64-2/2^64", "l2 True 1/31/32 -"}, pools); diff != "" {
		t.Errorf("pools (-want +got)\n%s", diff)
	}
	var speakers []string
	for _, sp := range r.Speakers {
		speakers = append(speakers, sp.Node+" "+list(sp.Layer2)+" "+list(sp.BGP)+" "+sp.Fenced)
	}
	if diff := cmp.Diff([]string{"n1 203.0.113.70 - ", "n2 - 203.0.113.100/32 ", "n3 - - sees 1 of 3", "n4 - - "}, speakers); diff != "" {
		t.Errorf("speakers (-want +got)\n%s", diff)
	}
	var sess []string
	for _, ss := range r.Sessions {
		sess = append(sess, ss.Node+" "+ss.Peer+" "+ss.Address+" "+ss.State)
	}
	if diff := cmp.Diff([]string{"n1 router 198.51.100.1 Established", "n2 router 198.51.100.1 Connect", "n3 router 198.51.100.1 Established"}, sess); diff != "" {
		t.Errorf("sessions (-want +got)\n%s", diff)
	}
	notes := strings.Join(r.Notes, "\n")
	for _, want := range []string{"IPPool huge is not valid", "node n4 has no NodeAnnouncement", "node n3 is fenced", "node n2 with BGPPeer router (198.51.100.1) is Connect"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the notes lack %q:\n%s", want, notes)
		}
	}

	var text strings.Builder
	if err := WriteStatus(&text, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2/2^64-2/2^64", "n4", "(no speaker reporting)", "198.51.100.1", "Connect", "TO CHECK"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the text lacks %q:\n%s", want, text.String())
		}
	}
	// JSON carries the same facts.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back StatusReport
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("JSON round trip (-want +got)\n%s", diff)
	}
}

func TestStatusEmpty(t *testing.T) {
	r := Status(&Snapshot{})
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "no IPPool") {
		t.Errorf("notes %q, want one saying there is no IPPool", r.Notes)
	}
	b, _ := json.Marshal(r)
	if want := `{"pools":[],"speakers":[],"bgpSessions":[],`; !strings.HasPrefix(string(b), want) {
		t.Errorf("JSON %s, want empty lists, not null", b)
	}
}
