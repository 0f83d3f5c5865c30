package dataplane

import "net/netip"

// frontendKey is what tells frontends apart. Two frontends of one list
// with the same key would fight over the same elements.
type frontendKey struct {
	addr  netip.Addr
	proto Protocol
	port  uint16
}

func keyOf(fe *Frontend) frontendKey {
	return frontendKey{addr: fe.Addr, proto: fe.Protocol, port: fe.Port}
}

// familyOf is the index of a frontend's table in Dataplane.fams: 0 for
// IPv4, 1 for IPv6 (as family.matches decides).
func familyOf(fe *Frontend) int {
	if fe.Addr.Is4() {
		return 0
	}
	return 1
}

// change is one frontend that is new, changed or gone since the last
// list: old is what the tables were asked for before (nil: new), new
// what they are asked for now (nil: gone).
type change struct {
	old, new *Frontend
}

// desired is the last list of frontends, kept so that the next one is
// compared with it frontend by frontend. Only Sync uses it.
type desired struct {
	// list is a copy of the last list, in its order; index the position
	// of each key in it.
	list  []Frontend
	index map[frontendKey]int
}

// update compares fes with the last list, records fes as the last list
// and returns the changes by family. dup reports a key that fes names
// twice: then nothing is recorded, the changes mean nothing, and the
// next call finds every frontend new.
//
// A list with the keys of the last one, in the same order, is compared
// position by position, a few nanoseconds per unchanged frontend whose
// Backends and SourceRanges are the slice and pointer of the last list
// (a comparison of each backend otherwise), and only its changed
// frontends are copied. A list that adds, removes or moves frontends is
// matched through index, which is then made again.
func (s *desired) update(fes []Frontend) (chs [2][]change, dup bool) {
	if len(fes) == len(s.list) {
		var changed []int
		i := 0
		for ; i < len(fes); i++ {
			fe, last := &fes[i], &s.list[i]
			if fe.Port != last.Port || fe.Addr != last.Addr || fe.Protocol != last.Protocol {
				break
			}
			if !sameFrontend(last, fe) {
				changed = append(changed, i)
			}
		}
		if i == len(fes) {
			for _, i := range changed {
				old := s.list[i]
				s.list[i] = fes[i]
				f := familyOf(&fes[i])
				chs[f] = append(chs[f], change{old: &old, new: &fes[i]})
			}
			return chs, false
		}
	}
	return s.rematch(fes)
}

// rematch is update for a list whose keys are not the last list's in
// the same order.
func (s *desired) rematch(fes []Frontend) (chs [2][]change, dup bool) {
	list := make([]Frontend, len(fes))
	index := make(map[frontendKey]int, len(fes))
	matched := make([]bool, len(s.list))
	for i := range fes {
		fe := &fes[i]
		k := keyOf(fe)
		if _, ok := index[k]; ok {
			*s = desired{}
			return [2][]change{}, true
		}
		index[k] = i
		list[i] = *fe
		f := familyOf(fe)
		j, ok := s.index[k]
		switch {
		case !ok:
			chs[f] = append(chs[f], change{new: fe})
		case !sameFrontend(&s.list[j], fe):
			chs[f] = append(chs[f], change{old: &s.list[j], new: fe})
		}
		if ok {
			matched[j] = true
		}
	}
	for j := range s.list {
		if !matched[j] {
			f := familyOf(&s.list[j])
			chs[f] = append(chs[f], change{old: &s.list[j]})
		}
	}
	s.list, s.index = list, index
	return chs, false
}

// Equal tells whether two frontends forward the same traffic the same
// way: the same address, protocol and port, and the same backends,
// affinity and source ranges. A frontend given its predecessor's Backends
// slice again is told equal without comparing the backends.
func (f *Frontend) Equal(o *Frontend) bool {
	return keyOf(f) == keyOf(o) && sameFrontend(f, o)
}

// sameFrontend tells whether two frontends of one key need the same
// objects. Slices and pointers shared with the last list are equal
// without a look at their elements: Set's caller does not change them.
func sameFrontend(a, b *Frontend) bool {
	if a.Affinity != b.Affinity || len(a.Backends) != len(b.Backends) {
		return false
	}
	if len(a.Backends) > 0 && &a.Backends[0] != &b.Backends[0] {
		for i := range a.Backends {
			if a.Backends[i] != b.Backends[i] {
				return false
			}
		}
	}
	return a.SourceRanges == b.SourceRanges || a.SourceRanges.Equal(b.SourceRanges)
}
