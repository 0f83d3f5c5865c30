package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/ironlb/ironlb/internal/iprange"
)

// syncRoutes advertises, replaces and withdraws the peer's prefixes:
// every prefix, or only those in only when it is not nil. New and
// changed routes go out before withdrawals.
func (s *Server) syncRoutes(name string, want map[netip.Prefix]Route, only map[netip.Prefix]bool) error {
	a := s.applied[name]
	put, withdraw := diffRoutes(a.routes, want, a.Address.Is4(), only)
	var errs []error
	for _, pfx := range put {
		r := want[pfx]
		path, err := apiPath(pfx, r, false)
		if err == nil {
			err = s.call("AddPath", func(ctx context.Context) error {
				_, err := s.gobgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_VRF, VrfId: a.vrf, Path: path})
				return err
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("advertising %s to peer %s: %w", pfx, name, err))
			continue
		}
		a.routes[pfx] = r
	}
	for _, pfx := range withdraw {
		path, err := apiPath(pfx, a.routes[pfx], true)
		if err == nil {
			err = s.call("DeletePath", func(ctx context.Context) error {
				return s.gobgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_VRF, VrfId: a.vrf, Family: path.Family, Path: path})
			})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdrawing %s from peer %s: %w", pfx, name, err))
			continue
		}
		delete(a.routes, pfx)
	}
	s.mu.Lock()
	if st := s.status[name]; st != nil {
		st.Advertised = len(a.routes)
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// diffRoutes says, for a session of one family (is4), which prefixes to
// advertise or replace (new, or with other attributes) and which to
// withdraw (gone, or of the other family), each sorted. With only not
// nil, it looks at those prefixes alone.
func diffRoutes(have, want map[netip.Prefix]Route, is4 bool, only map[netip.Prefix]bool) (put, withdraw []netip.Prefix) {
	if only != nil {
		for pfx := range only {
			r, wanted := want[pfx]
			old, had := have[pfx]
			switch {
			case wanted && pfx.Addr().Is4() == is4 && (!had || !old.equal(r)):
				put = append(put, pfx)
			case had && (!wanted || pfx.Addr().Is4() != is4):
				withdraw = append(withdraw, pfx)
			}
		}
		slices.SortFunc(put, iprange.ComparePrefixes)
		slices.SortFunc(withdraw, iprange.ComparePrefixes)
		return put, withdraw
	}
	for pfx, r := range want {
		if old, ok := have[pfx]; pfx.Addr().Is4() == is4 && (!ok || !old.equal(r)) {
			put = append(put, pfx)
		}
	}
	for pfx := range have {
		if _, keep := want[pfx]; !keep || pfx.Addr().Is4() != is4 {
			withdraw = append(withdraw, pfx)
		}
	}
	slices.SortFunc(put, iprange.ComparePrefixes)
	slices.SortFunc(withdraw, iprange.ComparePrefixes)
	return put, withdraw
}

func (s *Server) updateMetrics() {
	for name, a := range s.applied {
		s.opts.Metrics.setAdvertised(name, len(a.routes))
	}
}
