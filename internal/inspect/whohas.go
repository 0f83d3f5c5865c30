package inspect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// WhoHasReport says who holds one address.
type WhoHasReport struct {
	Address string `json:"address"`
	// Pool is the IPPool holding the address, "" when none does.
	Pool      string     `json:"pool,omitempty"`
	PoolValid *Condition `json:"poolValid,omitempty"`
	// Services are the Services whose status holds it, as namespace/name.
	Services []string `json:"services"`
	Announcers
	Notes []string `json:"notes,omitempty"`
}

// WhoHas finds the Services holding a, its pool and the nodes announcing
// it. It reads IPPools, NodeAnnouncements and Services (all of them).
func WhoHas(s *Snapshot, a netip.Addr) WhoHasReport {
	a = a.Unmap()
	cfg, _ := s.resolve()
	r := WhoHasReport{Address: a.String(), Pool: s.poolOf(cfg, a), Services: []string{}, Announcers: s.announcers(a)}
	for i := range s.Services {
		if slices.Contains(addrsOf(&s.Services[i]), a) {
			r.Services = append(r.Services, key(&s.Services[i]))
		}
	}
	slices.Sort(r.Services)
	if p := s.pool(r.Pool); p != nil {
		r.PoolValid = conditionOf(p.Status.Conditions, ConditionValid)
	}
	switch {
	case r.Pool == "":
		r.Notes = append(r.Notes, a.String()+" is in no IPPool")
	case cfg.Pool(r.Pool) == nil:
		r.Notes = append(r.Notes, fmt.Sprintf("IPPool %s is invalid: no Service gets its addresses and no speaker announces them", r.Pool))
	}
	nodes := r.Nodes()
	switch {
	case len(r.Services) == 0 && len(nodes) == 0:
		if r.Pool != "" {
			r.Notes = append(r.Notes, fmt.Sprintf("%s is not assigned to any Service", a))
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("no Service holds %s", a))
		}
	case len(r.Services) == 0:
		r.Notes = append(r.Notes, fmt.Sprintf("no Service holds %s, yet %s still announce it: the speakers may not have caught up with a deleted Service", a, strings.Join(nodes, ", ")))
	case len(nodes) == 0:
		msg := fmt.Sprintf("no node announces %s", a)
		if len(r.Truncated) > 0 {
			msg += fmt.Sprintf(" as far as the NodeAnnouncements tell (those of %s list only their first 100 entries)", strings.Join(r.Truncated, ", "))
		}
		ns, name, _ := strings.Cut(r.Services[0], "/")
		r.Notes = append(r.Notes, fmt.Sprintf("%s: kubectl ironlb explain svc/%s -n %s says why", msg, name, ns))
	}
	if len(r.Layer2) > 1 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d nodes answer for %s in layer 2: normal for a moment during a handover only", len(r.Layer2), a))
	}
	return r
}
