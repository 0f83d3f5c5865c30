package dataplane

import (
	"slices"
	"time"
)

// setID is one of the table's sets and maps; they are written in this
// order.
type setID int

const (
	idAddresses setID = iota
	idMasquerade
	idHairpin
	idBackendsTCP
	idBackendsUDP
	idBackendsSCTP
	idServices
	idRestricted
	idAllowed
	numSets
)

// setInfo names each setID and says whether it is a map.
var setInfo = [numSets]struct {
	name  string
	isMap bool
}{
	{setAddresses, false},
	{setMasquerade, false},
	{setHairpin, false},
	{backendsPrefix + string(TCP), true},
	{backendsPrefix + string(UDP), true},
	{backendsPrefix + string(SCTP), true},
	{mapServices, true},
	{setRestricted, false},
	{setAllowed, false},
}

// backendsOf is the backends map of a protocol.
func backendsOf(p Protocol) setID {
	switch p {
	case TCP:
		return idBackendsTCP
	case UDP:
		return idBackendsUDP
	case SCTP:
		return idBackendsSCTP
	}
	panic("dataplane: unknown protocol " + string(p))
}

// element is one element of a set or map, as nft writes it.
type element struct {
	key, value []string
}

// counted is an object of the table with the number of frontends that
// put it there.
type counted[V any] struct {
	v    V
	refs int
}

// refs holds objects of one kind by name (an element's key, a chain's
// name), each counted once per frontend that needs it.
type refs[V any] map[string]counted[V]

// prior is what a table held under a name before a sync touched it.
type prior[V any] struct {
	v       V
	existed bool
}

// add counts one more user of name, which now holds v (the last value
// wins when users disagree, which only frontends named twice can do),
// and notes in touched what name held before, the first time.
func (r refs[V]) add(name string, v V, touched map[string]prior[V]) {
	c, ok := r[name]
	note(touched, name, c.v, ok)
	r[name] = counted[V]{v: v, refs: c.refs + 1}
}

// drop counts one user of name less, and removes it with the last one.
func (r refs[V]) drop(name string, touched map[string]prior[V]) {
	c, ok := r[name]
	if !ok {
		return
	}
	note(touched, name, c.v, true)
	if c.refs > 1 {
		c.refs--
		r[name] = c
	} else {
		delete(r, name)
	}
}

func note[V any](touched map[string]prior[V], name string, v V, existed bool) {
	if touched == nil {
		return
	}
	if _, ok := touched[name]; !ok {
		touched[name] = prior[V]{v: v, existed: existed}
	}
}

// model is everything ironlb puts in one family's table, apart from the
// fixed base chains, each object counted by the frontends that need it:
// a frontend's objects are added and dropped again without looking at
// the others'.
type model struct {
	sets [numSets]refs[element]
	// chains are the regular chains and their rules.
	chains refs[[]string]
	// clients are the affinity sets and their timeouts.
	clients refs[time.Duration]
}

func newModel() *model {
	m := &model{chains: refs[[]string]{}, clients: refs[time.Duration]{}}
	for i := range m.sets {
		m.sets[i] = refs[element]{}
	}
	return m
}

// delta is what a sync changes: every object it touched, with what the
// table held under that name before. What it holds after is the model.
type delta struct {
	sets    [numSets]map[string]prior[element]
	chains  map[string]prior[[]string]
	clients map[string]prior[time.Duration]
}

func newDelta() *delta {
	d := &delta{chains: map[string]prior[[]string]{}, clients: map[string]prior[time.Duration]{}}
	for i := range d.sets {
		d.sets[i] = map[string]prior[element]{}
	}
	return d
}

// placement puts one frontend's objects into a model, or takes them out
// (remove), noting what it touches in d when d is not nil.
type placement struct {
	m      *model
	d      *delta
	remove bool
}

func (p placement) elem(id setID, e element) {
	var touched map[string]prior[element]
	if p.d != nil {
		touched = p.d.sets[id]
	}
	if k := elemKey(e.key...); p.remove {
		p.m.sets[id].drop(k, touched)
	} else {
		p.m.sets[id].add(k, e, touched)
	}
}

func (p placement) chain(name string, rules []string) {
	var touched map[string]prior[[]string]
	if p.d != nil {
		touched = p.d.chains
	}
	if p.remove {
		p.m.chains.drop(name, touched)
	} else {
		p.m.chains.add(name, rules, touched)
	}
}

func (p placement) clientSet(name string, timeout time.Duration) {
	var touched map[string]prior[time.Duration]
	if p.d != nil {
		touched = p.d.clients
	}
	if p.remove {
		p.m.clients.drop(name, touched)
	} else {
		p.m.clients.add(name, timeout, touched)
	}
}

// buildModel lays out the frontends of one family from scratch. A
// frontend named twice (same address, protocol and port) gets the later
// one's elements where the two differ.
func buildModel(f family, fes []Frontend) *model {
	m := newModel()
	p := placement{m: m}
	for i := range fes {
		if f.matches(fes[i].Addr) {
			layout(f, &fes[i], p)
		}
	}
	return m
}

// update takes the old objects of the changed frontends out of m and
// puts their new ones in, and returns what that touched. m must hold
// exactly the objects of its family's frontends as they were before.
func (m *model) update(f family, chs []change) *delta {
	d := newDelta()
	for _, c := range chs {
		if c.old != nil {
			layout(f, c.old, placement{m: m, d: d, remove: true})
		}
	}
	for _, c := range chs {
		if c.new != nil {
			layout(f, c.new, placement{m: m, d: d})
		}
	}
	return d
}

// diffModels is the delta that turns a table holding old into one
// holding m, found by comparing them whole.
func diffModels(old, m *model) *delta {
	d := newDelta()
	for i := range old.sets {
		diffRefs(old.sets[i], m.sets[i], d.sets[i], func(a, b element) bool { return slices.Equal(a.value, b.value) })
	}
	diffRefs(old.chains, m.chains, d.chains, slices.Equal[[]string])
	// A client set's name holds its timeout.
	diffRefs(old.clients, m.clients, d.clients, func(time.Duration, time.Duration) bool { return true })
	return d
}

func diffRefs[V any](old, now refs[V], touched map[string]prior[V], same func(a, b V) bool) {
	for k, o := range old {
		if n, ok := now[k]; !ok || !same(o.v, n.v) {
			touched[k] = prior[V]{v: o.v, existed: true}
		}
	}
	for k := range now {
		if _, ok := old[k]; !ok {
			touched[k] = prior[V]{}
		}
	}
}

// counts are the model's sizes, for the metrics.
func (m *model) counts() map[string]int {
	return map[string]int{
		setAddresses:  len(m.sets[idAddresses]),
		setMasquerade: len(m.sets[idMasquerade]),
		setHairpin:    len(m.sets[idHairpin]),
		mapServices:   len(m.sets[idServices]),
		setRestricted: len(m.sets[idRestricted]),
		setAllowed:    len(m.sets[idAllowed]),
		"backends":    len(m.sets[idBackendsTCP]) + len(m.sets[idBackendsUDP]) + len(m.sets[idBackendsSCTP]),
		"chains":      len(m.chains),
	}
}
