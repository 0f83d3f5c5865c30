package layer2

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
)

// FuzzParseRequest feeds arbitrary frames to both parsers. Whatever they
// accept must be answerable, and the answer must decode as an answer to
// the same target that we would never answer ourselves.
func FuzzParseRequest(f *testing.F) {
	f.Add(false, arpFrame(f, arp.OperationRequest, theirMAC, theirV4, lbV4, nil))
	f.Add(false, arpFrame(f, arp.OperationRequest, theirMAC, netip.IPv4Unspecified(), lbV4, nil))
	f.Add(true, ndpFrame(f, theirMAC, theirV6, lbV6Group, 255, ns(lbV6, sll(theirMAC)), nil))
	f.Add(true, ndpFrame(f, theirMAC, netip.IPv6Unspecified(), lbV6Group, 255, ns(lbV6), nil))
	f.Add(true, ndpFrame(f, theirMAC, theirLL, lbV6, 255, ns(lbV6), nil))
	f.Fuzz(func(t *testing.T, v6 bool, frame []byte) {
		fam := ipv4
		if v6 {
			fam = ipv6
		}
		req, err := parseRequest(fam, frame)
		if err != nil {
			return
		}
		if !unicastMAC(req.senderMAC) || !req.target.IsValid() || familyOf(req.target) != fam {
			t.Fatalf("accepted %+v", req)
		}
		b, err := reply(fam, ourMAC, req)
		if err != nil {
			t.Fatalf("no reply to %+v: %v", req, err)
		}
		w := decode(t, fam, b)
		about := w.TargetIP
		if fam == ipv4 {
			about = w.SenderIP
		}
		if about != req.target.String() {
			t.Fatalf("reply about %s to a request for %s", about, req.target)
		}
		if again, err := parseRequest(fam, b); err == nil {
			t.Fatalf("our reply parses as a request: %+v", again)
		}
	})
}
