package inspect

import (
	"math"
	"math/big"
	"strconv"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/iprange"
)

// Usage is one address family's use of a pool, counts written by
// iprange.FormatCount.
type Usage struct {
	Assigned  string `json:"assigned"`
	Available string `json:"available"`
	Total     string `json:"total"`
}

// usageOf reads a family's counts from a pool's status. The integer
// fields stop at the largest int64; where the status has no text for a
// count that reached it, the count is worked out from spec.addresses (the
// total) less the assigned addresses (what is available). Such a pool is
// IPv6, where nothing is skipped but the few addresses the controller
// never hands out, so the figure is right to its three digits.
func usageOf(pool *v1alpha1.IPPool, is4 bool) *Usage {
	c := pool.Status.IPv4
	if !is4 {
		c = pool.Status.IPv6
	}
	if c == nil {
		return nil
	}
	u := &Usage{Assigned: strconv.FormatInt(c.Assigned, 10), Total: c.TotalText, Available: c.AvailableText}
	size := func() *big.Int {
		n := new(big.Int)
		for _, a := range pool.Spec.Addresses {
			if r, err := iprange.Parse(string(a)); err == nil && r.Is4() == is4 {
				n.Add(n, r.Size())
			}
		}
		return n
	}
	if u.Total == "" {
		u.Total = strconv.FormatInt(c.Total, 10)
		if c.Total == math.MaxInt64 {
			u.Total = iprange.FormatCount(size())
		}
	}
	if u.Available == "" {
		u.Available = strconv.FormatInt(c.Available, 10)
		if c.Available == math.MaxInt64 {
			u.Available = iprange.FormatCount(new(big.Int).Sub(size(), big.NewInt(c.Assigned)))
		}
	}
	return u
}
