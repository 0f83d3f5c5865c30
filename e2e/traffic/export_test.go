package traffic

import (
	"context"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
)

// StartProbeSlowReader is StartProbe with a reader that waits delay
// before every read, as a prober kept off the CPU by a busy machine does.
func StartProbeSlowReader(ctx context.Context, p lab.Plan, host lab.Host, target netip.Addr, delay time.Duration) (*Prober, error) {
	return startProbe(ctx, p, host, target, 0, func(c neighConn) neighConn { return slowConn{c, delay} })
}

type slowConn struct {
	neighConn
	delay time.Duration
}

func (s slowConn) receive() (Reply, bool, error) {
	time.Sleep(s.delay)
	return s.neighConn.receive()
}
