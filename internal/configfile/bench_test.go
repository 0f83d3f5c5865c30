package configfile

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkLoad200Documents loads a file of 100 pools and 100 BGP peers;
// most of the cost is the CRD schema and CEL validation of each document.
func BenchmarkLoad200Documents(b *testing.B) {
	var sb strings.Builder
	for i := range 100 {
		fmt.Fprintf(&sb, "---\napiVersion: ironlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: pool-%d}\nspec:\n  addresses: [203.0.113.%d/32, \"2001:db8::%x:0-2001:db8::%x:ff\"]\n", i, i, i, i)
		fmt.Fprintf(&sb, "---\napiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: peer-%d}\nspec: {peerAddress: 198.51.100.%d, peerASN: 64500, myASN: 64512, holdTime: 9s, keepaliveTime: 3s}\n", i, i+1)
	}
	data := []byte(sb.String())
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		snap, err := l.Load(context.Background(), "bench.yaml", data)
		if err != nil || len(snap.IPPools) != 100 || len(snap.BGPPeers) != 100 {
			b.Fatalf("%d pools, %d peers, %v", len(snap.IPPools), len(snap.BGPPeers), err)
		}
	}
}
