package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/iprange"
)

// Defaults applied when a field is unset (the CRD schema sets the same ones
// for objects that come from the cluster or through the file loader).
const (
	DefaultHoldTime = 90 * time.Second
	// DefaultMaxReceivedPrefixes bounds what a router may send (and the
	// speaker keep in memory) when its BGPPeer does not say: routes are
	// never used, a full table would cost hundreds of MB, and a few
	// hundred internal prefixes from a fabric are common.
	DefaultMaxReceivedPrefixes = 1000
	DefaultPeerPort            = 179
	DefaultAggregationLength   = 32
	DefaultAggregationLengthV6 = 128
)

// Resolve builds the model from a snapshot. The model holds every valid
// object; Problems lists every invalid one with the reason.
//
// When two pools overlap, the older one (by creation time, then by name) is
// kept and the newer one is invalid, so adding a bad pool never takes
// addresses away from a pool that is in use.
func Resolve(s Snapshot) (*Config, Problems) {
	r := &resolver{cfg: &Config{poolByName: map[string]*Pool{}}, poolExists: map[string]bool{}}
	for _, p := range s.IPPools {
		r.poolExists[p.Name] = true
	}
	r.resolvePools(s.IPPools)
	r.resolveL2Advertisements(s.L2Advertisements)
	r.resolvePeers(s.BGPPeers)
	r.resolveBGPAdvertisements(s.BGPAdvertisements, s.BGPPeers)
	return r.cfg, r.problems
}

type resolver struct {
	cfg      *Config
	problems Problems
	// poolExists holds the name of every IPPool of the snapshot, valid or not.
	poolExists map[string]bool
}

// fail records a problem and returns false, for `ok = r.fail(...)`.
func (r *resolver) fail(kind, name, field string, err error) bool {
	r.problems = append(r.problems, &ObjectError{Kind: kind, Name: name, Field: field, Err: err})
	return false
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidValue}, args...)...)
}

// olderFirst orders objects by creation time, then name.
func olderFirst(a, b metav1.ObjectMeta) int {
	if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// duplicate reports a second object of the same kind and name (only a file
// can hold one) and tells whether the name was seen before.
func (r *resolver) duplicate(seen map[string]bool, kind, name string) bool {
	if seen[name] {
		r.fail(kind, name, "metadata.name", invalid("a second %s with this name; names must be unique", kind))
		return true
	}
	seen[name] = true
	return false
}

// indexedRange is a parsed pool entry and its position in spec.addresses.
type indexedRange struct {
	iprange.Range
	index int
}

func (r *resolver) resolvePools(in []v1alpha1.IPPool) {
	pools := slices.Clone(in)
	slices.SortStableFunc(pools, func(a, b v1alpha1.IPPool) int { return olderFirst(a.ObjectMeta, b.ObjectMeta) })
	seen := map[string]bool{}
	// accepted holds the ranges of pools already accepted, sorted.
	var accepted []poolRange
	for i := range pools {
		if r.duplicate(seen, v1alpha1.KindIPPool, pools[i].Name) {
			continue
		}
		p, ranges, ok := r.resolvePool(&pools[i])
		if !ok {
			continue
		}
		if !r.checkOverlap(p.Name, ranges, accepted) {
			continue
		}
		for _, rg := range ranges {
			pos, _ := slices.BinarySearchFunc(accepted, rg.Range, func(a poolRange, b iprange.Range) int { return a.Compare(b) })
			accepted = slices.Insert(accepted, pos, poolRange{Range: rg.Range, pool: p, index: rg.index})
		}
		r.cfg.Pools = append(r.cfg.Pools, p)
		r.cfg.poolByName[p.Name] = p
	}
	r.cfg.ranges = accepted
	slices.SortFunc(r.cfg.Pools, func(a, b *Pool) int { return cmp.Compare(a.Name, b.Name) })
}

// resolvePool checks one pool on its own.
func (r *resolver) resolvePool(in *v1alpha1.IPPool) (*Pool, []indexedRange, bool) {
	const kind = v1alpha1.KindIPPool
	ok := true
	p := &Pool{
		Name:          in.Name,
		Labels:        labels.Set(in.Labels),
		AutoAssign:    in.Spec.AutoAssign == nil || *in.Spec.AutoAssign,
		AvoidBuggyIPs: in.Spec.AvoidBuggyIPs,
		Priority:      NoPriority,

		AllowSharingAcrossNamespaces: in.Spec.AllowSharingAcrossNamespaces,
	}
	if len(in.Spec.Addresses) == 0 {
		ok = r.fail(kind, in.Name, "spec.addresses", invalid("a pool needs at least one address entry"))
	}
	var ranges []indexedRange
	for i, a := range in.Spec.Addresses {
		rg, err := iprange.Parse(string(a))
		if err != nil {
			ok = r.fail(kind, in.Name, fmt.Sprintf("spec.addresses[%d]", i), err)
			continue
		}
		for _, msg := range unsafeProblems(string(a), rg) {
			ok = r.fail(kind, in.Name, fmt.Sprintf("spec.addresses[%d]", i), invalid("%s", msg))
		}
		ranges = append(ranges, indexedRange{rg, i})
	}
	slices.SortFunc(ranges, func(a, b indexedRange) int { return a.Compare(b.Range) })
	for i := 1; i < len(ranges); i++ {
		if prev, cur := ranges[i-1], ranges[i]; prev.Overlaps(cur.Range) {
			ok = r.fail(kind, in.Name, fmt.Sprintf("spec.addresses[%d]", cur.index),
				fmt.Errorf("%w: %s overlaps spec.addresses[%d] (%s) of the same pool", ErrOverlap, cur.Range, prev.index, prev.Range))
		}
	}
	for _, rg := range ranges {
		p.Ranges = append(p.Ranges, rg.Range)
	}
	if at := in.Spec.AllocateTo; at != nil {
		if at.Priority != nil {
			if *at.Priority < 0 {
				ok = r.fail(kind, in.Name, "spec.allocateTo.priority", invalid("%d: must not be negative", *at.Priority))
			}
			p.Priority = int64(*at.Priority)
		}
		if len(at.Namespaces) > 0 {
			p.Namespaces = map[string]bool{}
			for _, ns := range at.Namespaces {
				p.Namespaces[ns] = true
			}
		}
		var err error
		if at.NamespaceSelector != nil {
			if p.NamespaceSelector, err = toSelector(at.NamespaceSelector); err != nil {
				ok = r.fail(kind, in.Name, "spec.allocateTo.namespaceSelector", err)
			}
		}
		if at.ServiceSelector != nil {
			if p.ServiceSelector, err = toSelector(at.ServiceSelector); err != nil {
				ok = r.fail(kind, in.Name, "spec.allocateTo.serviceSelector", err)
			}
		}
	}
	return p, ranges, ok
}

// checkOverlap reports every range of a pool that overlaps an accepted one.
func (r *resolver) checkOverlap(pool string, ranges []indexedRange, accepted []poolRange) bool {
	ok := true
	for _, rg := range ranges {
		// The first accepted range that does not end before rg starts.
		i, _ := slices.BinarySearchFunc(accepted, rg.First, func(a poolRange, first netip.Addr) int { return a.Last.Compare(first) })
		if i < len(accepted) && accepted[i].Overlaps(rg.Range) {
			other := accepted[i]
			ok = r.fail(v1alpha1.KindIPPool, pool, fmt.Sprintf("spec.addresses[%d]", rg.index),
				fmt.Errorf("%w: %s overlaps %s (spec.addresses[%d]) of IPPool %q, which was there first; an address may belong to only one pool",
					ErrOverlap, rg.Range, other.Range, other.index, other.pool.Name))
		}
	}
	return ok
}

// toSelector converts a selector; nil selects everything.
func toSelector(s *v1alpha1.Selector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	ls := &metav1.LabelSelector{}
	for k, v := range s.MatchLabels {
		if ls.MatchLabels == nil {
			ls.MatchLabels = map[string]string{}
		}
		ls.MatchLabels[k] = string(v)
	}
	for _, e := range s.MatchExpressions {
		req := metav1.LabelSelectorRequirement{Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator)}
		for _, v := range e.Values {
			req.Values = append(req.Values, string(v))
		}
		ls.MatchExpressions = append(ls.MatchExpressions, req)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, invalid("malformed selector: %v", err)
	}
	return sel, nil
}

// serviceSelector converts an advertisement's serviceSelector; unset or
// empty gives nil, which selects every Service without a lookup.
func serviceSelector(s *v1alpha1.Selector) (labels.Selector, error) {
	if s == nil || len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
		return nil, nil
	}
	return toSelector(s)
}

// resolvePoolRefs resolves ipPools and ipPoolSelector. A name that no
// IPPool has is an error; a name of an invalid pool is skipped (the pool
// itself is reported), so one bad pool does not take others down with it.
func (r *resolver) resolvePoolRefs(kind, name string, names []string, sel *v1alpha1.Selector) ([]*Pool, bool) {
	ok := true
	chosen := map[*Pool]bool{}
	for i, n := range names {
		if !r.poolExists[n] {
			ok = r.fail(kind, name, fmt.Sprintf("spec.ipPools[%d]", i), fmt.Errorf("%w: IPPool %q does not exist", ErrUnknownRef, n))
			continue
		}
		if p := r.cfg.Pool(n); p != nil {
			chosen[p] = true
		}
	}
	if sel != nil {
		s, err := toSelector(sel)
		if err != nil {
			return nil, r.fail(kind, name, "spec.ipPoolSelector", err)
		}
		for _, p := range r.cfg.Pools {
			if s.Matches(p.Labels) {
				chosen[p] = true
			}
		}
	}
	var out []*Pool
	for _, p := range r.cfg.Pools { // sorted by name
		if chosen[p] || (len(names) == 0 && sel == nil) {
			out = append(out, p)
		}
	}
	return out, ok
}

func (r *resolver) resolveL2Advertisements(in []v1alpha1.L2Advertisement) {
	const kind = v1alpha1.KindL2Advertisement
	seen := map[string]bool{}
	for _, a := range sortedByName(in, func(a v1alpha1.L2Advertisement) string { return a.Name }) {
		if r.duplicate(seen, kind, a.Name) {
			continue
		}
		out := &L2Advertisement{Name: a.Name}
		var ok bool
		out.Pools, ok = r.resolvePoolRefs(kind, a.Name, a.Spec.IPPools, a.Spec.IPPoolSelector)
		sel, err := toSelector(a.Spec.NodeSelector)
		if err != nil {
			ok = r.fail(kind, a.Name, "spec.nodeSelector", err)
		}
		out.NodeSelector = sel
		if out.ServiceSelector, err = serviceSelector(a.Spec.ServiceSelector); err != nil {
			ok = r.fail(kind, a.Name, "spec.serviceSelector", err)
		}
		for _, ifi := range a.Spec.Interfaces {
			out.Interfaces = append(out.Interfaces, string(ifi))
		}
		switch a.Spec.Placement {
		case "", v1alpha1.L2PlacementHash:
		case v1alpha1.L2PlacementBalanced:
			out.Balanced = true
		default:
			ok = r.fail(kind, a.Name, "spec.placement", invalid("%q: must be %s or %s", a.Spec.Placement, v1alpha1.L2PlacementHash, v1alpha1.L2PlacementBalanced))
		}
		if ok {
			r.cfg.L2Advertisements = append(r.cfg.L2Advertisements, out)
		}
	}
}

func (r *resolver) resolvePeers(in []v1alpha1.BGPPeer) {
	seen := map[string]bool{}
	for _, p := range sortedByName(in, func(p v1alpha1.BGPPeer) string { return p.Name }) {
		if r.duplicate(seen, v1alpha1.KindBGPPeer, p.Name) {
			continue
		}
		if out, ok := r.resolvePeer(&p); ok {
			r.cfg.BGPPeers = append(r.cfg.BGPPeers, out)
		}
	}
}

func (r *resolver) resolvePeer(in *v1alpha1.BGPPeer) (*BGPPeer, bool) {
	const kind = v1alpha1.KindBGPPeer
	ok := true
	fail := func(field string, err error) { ok = r.fail(kind, in.Name, field, err) }
	s := in.Spec
	out := &BGPPeer{Name: in.Name, EBGPMultiHop: s.EBGPMultiHop, GracefulRestart: s.GracefulRestart, Password: s.PasswordSecretRef}

	var err error
	if out.Address, err = parseAddr(s.PeerAddress); err != nil {
		fail("spec.peerAddress", err)
	}
	if s.SourceAddress != "" {
		if out.SourceAddress, err = parseAddr(s.SourceAddress); err != nil {
			fail("spec.sourceAddress", err)
		} else if out.Address.IsValid() && out.Address.Is4() != out.SourceAddress.Is4() {
			fail("spec.sourceAddress", invalid("%s is not of the same address family as peerAddress %s", out.SourceAddress, out.Address))
		}
	}
	if s.RouterID != "" {
		if out.RouterID, err = parseAddr(s.RouterID); err != nil || !out.RouterID.Is4() {
			fail("spec.routerID", invalid("%q: must be an IPv4 address in dotted-quad form", s.RouterID))
		}
	}
	asn := func(field string, v int64) uint32 {
		if v < 1 || v > 1<<32-1 {
			fail(field, invalid("%d: must be from 1 to 4294967295", v))
			return 0
		}
		return uint32(v)
	}
	out.MyASN = asn("spec.myASN", s.MyASN)
	switch {
	case s.DynamicASN != "" && s.PeerASN != 0:
		fail("spec.dynamicASN", invalid("%q: set either peerASN (%d) or dynamicASN, not both", s.DynamicASN, s.PeerASN))
	case s.DynamicASN == "internal":
		out.ASN = out.MyASN
	case s.DynamicASN == "external":
		out.ASN = 0
	case s.DynamicASN != "":
		fail("spec.dynamicASN", invalid("%q: must be internal or external", s.DynamicASN))
	case s.PeerASN == 0:
		fail("spec.peerASN", invalid("required: a number from 1 to 4294967295, or set spec.dynamicASN to internal or external"))
	default:
		out.ASN = asn("spec.peerASN", s.PeerASN)
	}
	peerLimits(s, out, fail)
	switch {
	case s.PeerPort == 0:
		out.Port = DefaultPeerPort
	case s.PeerPort < 1 || s.PeerPort > 65535:
		fail("spec.peerPort", invalid("%d: must be from 1 to 65535", s.PeerPort))
	default:
		out.Port = uint16(s.PeerPort)
	}

	out.HoldTime = DefaultHoldTime
	if s.HoldTime != nil {
		out.HoldTime = s.HoldTime.Duration
	}
	if h := out.HoldTime; h != 0 && (h < 3*time.Second || h > 65535*time.Second || h%time.Second != 0) {
		fail("spec.holdTime", invalid("%s: must be 0s, or a whole number of seconds from 3s to 65535s", h))
	}
	out.KeepaliveTime = (out.HoldTime / 3).Truncate(time.Second)
	if s.KeepaliveTime != nil {
		out.KeepaliveTime = s.KeepaliveTime.Duration
		k := out.KeepaliveTime
		switch {
		case k < 0 || k > 65535*time.Second || k%time.Second != 0:
			fail("spec.keepaliveTime", invalid("%s: must be a whole number of seconds from 0s to 65535s", k))
		case out.HoldTime == 0 && k != 0:
			fail("spec.keepaliveTime", invalid("%s: must be 0s when holdTime is 0s", k))
		case out.HoldTime != 0 && (k < time.Second || k > out.HoldTime):
			fail("spec.keepaliveTime", invalid("%s: must be at least 1s and not longer than holdTime (%s)", k, out.HoldTime))
		}
	}
	if out.NodeSelector, err = toSelector(s.NodeSelector); err != nil {
		fail("spec.nodeSelector", err)
	}
	return out, ok
}

// peerLimits resolves the peer's connect time, how many prefixes the
// router may send, and its BFD session.
func peerLimits(s v1alpha1.BGPPeerSpec, out *BGPPeer, fail func(field string, err error)) {
	out.BFD = peerBFD(s.BFD, fail)
	if s.ConnectTime != nil {
		c := s.ConnectTime.Duration
		if c < time.Second || c > 65535*time.Second || c%time.Second != 0 {
			fail("spec.connectTime", invalid("%s: must be a whole number of seconds from 1s to 65535s", c))
		}
		out.ConnectTime = c
	}
	out.MaxReceived = DefaultMaxReceivedPrefixes
	if m := s.MaxReceivedPrefixes; m != nil {
		if *m < 1 || *m > 1<<32-1 {
			fail("spec.maxReceivedPrefixes", invalid("%d: must be from 1 to 4294967295", *m))
		} else {
			out.MaxReceived = uint32(*m)
		}
	}
}

// Bounds and defaults of a peer's bfd block (the defaults are FRR's).
const (
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDMultiplier = 3
	minBFDInterval       = 10 * time.Millisecond
	maxBFDInterval       = 60 * time.Second
)

// peerBFD resolves the peer's bfd block.
func peerBFD(in *v1alpha1.BFDSettings, fail func(field string, err error)) *BFD {
	if in == nil {
		return nil
	}
	out := &BFD{ReceiveInterval: DefaultBFDInterval, TransmitInterval: DefaultBFDInterval, DetectMultiplier: DefaultBFDMultiplier}
	interval := func(field string, d *metav1.Duration, to *time.Duration) {
		if d == nil {
			return
		}
		if v := d.Duration; v < minBFDInterval || v > maxBFDInterval || v%time.Millisecond != 0 {
			fail(field, invalid("%s: must be a whole number of milliseconds from 10ms to 60s", v))
			return
		}
		*to = d.Duration
	}
	interval("spec.bfd.receiveInterval", in.ReceiveInterval, &out.ReceiveInterval)
	interval("spec.bfd.transmitInterval", in.TransmitInterval, &out.TransmitInterval)
	if m := in.DetectMultiplier; m != nil {
		if *m < 2 || *m > 255 {
			fail("spec.bfd.detectMultiplier", invalid("%d: must be from 2 to 255", *m))
		} else {
			out.DetectMultiplier = uint8(*m)
		}
	}
	if in.EchoMode {
		fail("spec.bfd.echoMode", invalid("true: echo mode is not supported, only false (leave it out)"))
	}
	return out
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, invalid("%q: must be an IPv4 or IPv6 address", s)
	}
	return a, nil
}

func (r *resolver) resolveBGPAdvertisements(in []v1alpha1.BGPAdvertisement, peers []v1alpha1.BGPPeer) {
	const kind = v1alpha1.KindBGPAdvertisement
	seen := map[string]bool{}
	peerExists := map[string]bool{}
	for _, p := range peers {
		peerExists[p.Name] = true
	}
	for _, a := range sortedByName(in, func(a v1alpha1.BGPAdvertisement) string { return a.Name }) {
		if r.duplicate(seen, kind, a.Name) {
			continue
		}
		s := a.Spec
		out := &BGPAdvertisement{Name: a.Name, AggregationLength: DefaultAggregationLength, AggregationLengthV6: DefaultAggregationLengthV6}
		var ok bool
		fail := func(field string, err error) { ok = r.fail(kind, a.Name, field, err) }
		out.Pools, ok = r.resolvePoolRefs(kind, a.Name, s.IPPools, s.IPPoolSelector)

		chosen := map[string]bool{}
		for i, n := range s.Peers {
			if !peerExists[n] {
				fail(fmt.Sprintf("spec.peers[%d]", i), fmt.Errorf("%w: BGPPeer %q does not exist", ErrUnknownRef, n))
			}
			chosen[n] = true
		}
		for _, p := range r.cfg.BGPPeers {
			if len(s.Peers) == 0 || chosen[p.Name] {
				out.Peers = append(out.Peers, p)
			}
		}
		var err error
		if out.NodeSelector, err = toSelector(s.NodeSelector); err != nil {
			fail("spec.nodeSelector", err)
		}
		if out.ServiceSelector, err = serviceSelector(s.ServiceSelector); err != nil {
			fail("spec.serviceSelector", err)
		}
		if s.LocalPref != nil {
			if *s.LocalPref < 0 || *s.LocalPref > 1<<32-1 {
				fail("spec.localPref", invalid("%d: must be from 0 to 4294967295", *s.LocalPref))
			} else {
				lp := uint32(*s.LocalPref)
				out.LocalPref = &lp
			}
		}
		for i, c := range s.Communities {
			parsed, err := ParseCommunity(string(c))
			if err != nil {
				fail(fmt.Sprintf("spec.communities[%d]", i), err)
			}
			out.Communities = append(out.Communities, parsed)
		}
		for _, agg := range []struct {
			field string
			v     *int32
			is4   bool
			dst   *int
		}{
			{"spec.aggregationLength", s.AggregationLength, true, &out.AggregationLength},
			{"spec.aggregationLengthV6", s.AggregationLengthV6, false, &out.AggregationLengthV6},
		} {
			if agg.v != nil {
				*agg.dst = int(*agg.v)
			}
			if err := checkAggregation(*agg.dst, agg.is4, out.Pools); err != nil {
				fail(agg.field, err)
			}
		}
		if ok {
			r.cfg.BGPAdvertisements = append(r.cfg.BGPAdvertisements, out)
		}
	}
}

// checkAggregation refuses an aggregation length shorter than a prefix of
// an advertised pool: the aggregate would claim addresses outside the pool.
func checkAggregation(length int, is4 bool, pools []*Pool) error {
	bits := 128
	if is4 {
		bits = 32
	}
	if length < 0 || length > bits {
		return invalid("%d: must be from 0 to %d", length, bits)
	}
	for _, p := range pools {
		for _, rg := range p.Ranges {
			if rg.Is4() != is4 {
				continue
			}
			for _, pfx := range rg.Prefixes() {
				if length < pfx.Bits() {
					return invalid("%d is shorter than %s of IPPool %q: the aggregate would cover addresses outside the pool; use at least /%d", length, pfx, p.Name, pfx.Bits())
				}
			}
		}
	}
	return nil
}

func sortedByName[T any](in []T, name func(T) string) []T {
	out := slices.Clone(in)
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(name(a), name(b)) })
	return out
}
