package iprange

import (
	"math/big"
	"strconv"
)

// Limits of FormatCount's forms.
var (
	// exactBelow: numbers below 10^12 are written out in full.
	exactBelow = new(big.Int).Exp(big.NewInt(10), big.NewInt(12), nil)
	// nearPower: a number within a million of a power of two is written as
	// that power and the difference.
	nearPower = big.NewInt(1_000_000)
)

// FormatCount writes an address count so that a person reads it at a
// glance, whatever its size: in full below 10^12 ("4294967296"); as a
// power of two and an exact difference when within a million of one
// ("2^64", "2^64-3", "2^72+256"), which is how IPv6 pools are sized and
// then used; otherwise with three significant digits ("1.21e+24"). The
// controller writes IPPool's totalText and availableText with it, and
// kubectl ironlb the counts it shows.
func FormatCount(n *big.Int) string {
	if n.Sign() < 0 || n.Cmp(exactBelow) < 0 {
		return n.String()
	}
	// The nearest powers of two are 2^(b-1) <= n and 2^b > n.
	b := n.BitLen()
	for _, k := range []int{b - 1, b} {
		d := new(big.Int).Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(k)))
		if new(big.Int).Abs(d).Cmp(nearPower) >= 0 {
			continue
		}
		s := "2^" + strconv.Itoa(k)
		if d.Sign() > 0 {
			s += "+"
		}
		if d.Sign() != 0 {
			s += d.String() // a negative difference carries its minus sign
		}
		return s
	}
	return new(big.Float).SetInt(n).Text('e', 2)
}
