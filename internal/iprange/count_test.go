package iprange

import (
	"math"
	"math/big"
	"testing"
)

func pow2(k uint, add int64) *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), k)
	return n.Add(n, big.NewInt(add))
}

func TestFormatCount(t *testing.T) {
	for _, tc := range []struct {
		n    *big.Int
		want string
	}{
		{big.NewInt(0), "0"},
		{big.NewInt(1), "1"},
		{big.NewInt(254), "254"},
		{pow2(32, 0), "4294967296"}, // all of IPv4: still in full
		{pow2(40, -1), "2^40-1"},    // 13 digits
		{big.NewInt(999_999_999_999), "999999999999"},
		{big.NewInt(1_000_000_000_000), "1.00e+12"}, // far from 2^40
		{big.NewInt(1_234_567_890_123), "1.23e+12"},
		{big.NewInt(math.MaxInt64), "2^63-1"},
		{pow2(64, 0), "2^64"},                                    // a /64
		{pow2(64, -3), "2^64-3"},                                 // a /64 with three assigned
		{pow2(64, 256), "2^64+256"},                              // a /64 and a /120
		{pow2(72, 256), "2^72+256"},                              //
		{pow2(128, -1), "2^128-1"},                               // all of IPv6
		{pow2(128, 0), "2^128"},                                  //
		{pow2(64, 999_999), "2^64+999999"},                       // just inside a million
		{pow2(64, 1_000_000), "1.84e+19"},                        // a million off: rounded
		{pow2(65, -999_999), "2^65-999999"},                      //
		{new(big.Int).Add(pow2(80, 0), pow2(64, 0)), "1.21e+24"}, // a /48 and a /64
		{new(big.Int).Mul(pow2(64, 0), big.NewInt(3)), "5.53e+19"},
	} {
		if got := FormatCount(tc.n); got != tc.want {
			t.Errorf("FormatCount(%s) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
