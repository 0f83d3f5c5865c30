package config

import (
	"fmt"
	"strconv"
	"strings"
)

// wellKnownCommunities are the community names users may write, with their
// values (RFC 1997, RFC 3765, RFC 7999, RFC 8326, RFC 7611, RFC 9494).
var wellKnownCommunities = map[string]uint32{
	"graceful-shutdown":   0xFFFF0000,
	"accept-own":          0xFFFF0001,
	"llgr-stale":          0xFFFF0006,
	"no-llgr":             0xFFFF0007,
	"blackhole":           0xFFFF029A,
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
}

// ParseCommunity parses a community as the CRD accepts it: "65000:100",
// "large:65000:1:2" or "l:65000:1:2", or a well-known name.
func ParseCommunity(s string) (Community, error) {
	if v, ok := wellKnownCommunities[s]; ok {
		return Community{Standard: v}, nil
	}
	parts := strings.Split(s, ":")
	switch {
	case len(parts) == 2:
		hi, err1 := parseNumber(parts[0], 5, 16)
		lo, err2 := parseNumber(parts[1], 5, 16)
		if err1 == nil && err2 == nil {
			return Community{Standard: hi<<16 | lo}, nil
		}
	case len(parts) == 4 && (parts[0] == "large" || parts[0] == "l"):
		g, err1 := parseNumber(parts[1], 10, 32)
		l1, err2 := parseNumber(parts[2], 10, 32)
		l2, err3 := parseNumber(parts[3], 10, 32)
		if err1 == nil && err2 == nil && err3 == nil {
			return Community{Large: true, Global: g, Local1: l1, Local2: l2}, nil
		}
	}
	return Community{}, invalid("%q: must be a standard community such as 65000:100 (0-65535 each), a large community such as large:65000:1:2 or l:65000:1:2 (0-4294967295 each), or a well-known name (no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown, accept-own, llgr-stale, no-llgr)", s)
}

func parseNumber(s string, maxDigits, bits int) (uint32, error) {
	if len(s) == 0 || len(s) > maxDigits || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number of at most %d digits", s, maxDigits)
	}
	v, err := strconv.ParseUint(s, 10, bits)
	return uint32(v), err
}

// String writes the community the way ParseCommunity reads it.
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.Global, c.Local1, c.Local2)
	}
	for name, v := range wellKnownCommunities {
		if v == c.Standard {
			return name
		}
	}
	return fmt.Sprintf("%d:%d", c.Standard>>16, c.Standard&0xFFFF)
}
