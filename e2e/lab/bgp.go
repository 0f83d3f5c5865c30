package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// RouterPaths returns the next hops of the BGP paths the lab's router
// holds for pfx, sorted; none when it has no route.
func RouterPaths(p Plan, pfx netip.Prefix) ([]netip.Addr, error) {
	afi := "ipv4"
	if pfx.Addr().Is6() {
		afi = "ipv6"
	}
	out, err := Vtysh(p, fmt.Sprintf("show bgp %s unicast %s json", afi, pfx))
	if err != nil {
		return nil, err
	}
	var route struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &route); err != nil {
		return nil, fmt.Errorf("FRR's answer for %s: %w: %s", pfx, err, out)
	}
	var hops []netip.Addr
	for _, path := range route.Paths {
		for _, nh := range path.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// RouterFIB returns the next hops the router's kernel forwards pfx to
// (zebra's installed route), sorted; none when it has no route.
func RouterFIB(p Plan, pfx netip.Prefix) ([]netip.Addr, error) {
	cmd := "show ip route"
	if pfx.Addr().Is6() {
		cmd = "show ipv6 route"
	}
	out, err := Vtysh(p, fmt.Sprintf("%s %s json", cmd, pfx))
	if err != nil {
		return nil, err
	}
	var routes map[string][]struct {
		Protocol  string `json:"protocol"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP  string `json:"ip"`
			FIB bool   `json:"fib"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("FRR's answer for %s: %w: %s", pfx, err, out)
	}
	var hops []netip.Addr
	for _, r := range routes[pfx.String()] {
		if r.Protocol != "bgp" || !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil && nh.FIB {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// RouterPrefixes counts the prefixes the router has received from each
// neighbor, by neighbor address.
func RouterPrefixes(p Plan, ipv6 bool) (map[string]int, error) {
	afi := "ipv4"
	if ipv6 {
		afi = "ipv6"
	}
	out, err := Vtysh(p, fmt.Sprintf("show bgp %s unicast summary json", afi))
	if err != nil {
		return nil, err
	}
	var sum struct {
		Peers map[string]struct {
			State  string `json:"state"`
			PfxRcd int    `json:"pfxRcd"`
		} `json:"peers"`
	}
	if strings.TrimSpace(out) == "{}" {
		return map[string]int{}, nil
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return nil, fmt.Errorf("FRR's summary: %w: %s", err, out)
	}
	m := map[string]int{}
	for addr, peer := range sum.Peers {
		if peer.State == "Established" {
			m[addr] = peer.PfxRcd
		}
	}
	return m, nil
}
