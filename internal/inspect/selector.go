package inspect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/planner"
)

// selective is an advertisement's name and whether its serviceSelector
// selects a Service with some labels, for either kind.
type selective struct {
	kind, name string
	selector   fmt.Stringer // nil: no serviceSelector
	selects    func(map[string]string) bool
}

func l2Selective(advs []*config.L2Advertisement) []selective {
	out := make([]selective, len(advs))
	for i, adv := range advs {
		out[i] = selective{"L2Advertisement", adv.Name, adv.ServiceSelector, func(l map[string]string) bool { return adv.SelectsService(l) }}
	}
	return out
}

func bgpSelective(advs []*config.BGPAdvertisement) []selective {
	out := make([]selective, len(advs))
	for i, adv := range advs {
		out[i] = selective{"BGPAdvertisement", adv.Name, adv.ServiceSelector, func(l map[string]string) bool { return adv.SelectsService(l) }}
	}
	return out
}

// selectorHint explains, when the advertisements of one kind covering
// a's pool leave svc out by their serviceSelector, what that does to a:
// it is not announced that way at all (left is true) when they select no
// other Service using it either, otherwise it is announced for the
// Services they select, and so reaches svc too.
func selectorHint(a netip.Addr, svc planner.Service, sharing []planner.Service, advs []selective) (hint string, left bool) {
	var out []string
	for _, adv := range advs {
		if adv.selects(svc.Labels) {
			return "", false
		}
		out = append(out, fmt.Sprintf("%s %s (spec.serviceSelector %s)", adv.kind, adv.name, adv.selector))
	}
	if len(out) == 0 {
		return "", false
	}
	labels := "no labels"
	if len(svc.Labels) > 0 {
		labels = "labels " + svc.Labels.String()
	}
	var others []string
	for _, o := range sharing {
		if o.Key != svc.Key && slices.Contains(o.Addrs, a) && slices.ContainsFunc(advs, func(adv selective) bool { return adv.selects(o.Labels) }) {
			others = append(others, o.Key)
		}
	}
	msg := fmt.Sprintf("%s do(es) not select the Service, which has %s", strings.Join(out, ", "), labels)
	if len(others) > 0 {
		return fmt.Sprintf("%s; %s is announced anyway for %s, which share(s) it", msg, a, strings.Join(others, ", ")), false
	}
	return fmt.Sprintf("%s, so none of them announces %s: label the Service to match, or change the selector", msg, a), true
}
