package dataplane

import (
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// writeFull puts into tx everything needed to make the table hold m and
// nothing else, whatever it held before. existingChains and existingSets
// are what the table holds now (nil when it does not exist).
func writeFull(f family, m *model, tx *knftables.Transaction, existingChains, existingSets []string) {
	declare(f, tx)
	for id := range numSets {
		if setInfo[id].isMap {
			tx.Flush(&knftables.Map{Name: setInfo[id].name})
		} else {
			tx.Flush(&knftables.Set{Name: setInfo[id].name})
		}
	}
	// Chains and client sets left over from an earlier run go; the maps
	// that pointed at them were flushed above.
	for _, c := range existingChains {
		if _, keep := m.chains[c]; !keep && !isBase(c) {
			tx.Flush(&knftables.Chain{Name: c})
		}
	}
	for _, c := range existingChains {
		if _, keep := m.chains[c]; !keep && !isBase(c) {
			tx.Delete(&knftables.Chain{Name: c})
		}
	}
	for _, s := range existingSets {
		if _, keep := m.clients[s]; !keep && strings.HasPrefix(s, clientsPrefix) {
			tx.Delete(&knftables.Set{Name: s})
		}
	}
	// Client sets keep their contents: clients stay with their backends
	// across a full sync.
	for _, s := range sortedKeys(m.clients) {
		tx.Add(clientSet(f, s, m.clients[s].v))
	}
	names := sortedKeys(m.chains)
	for _, c := range names {
		tx.Add(&knftables.Chain{Name: c})
		tx.Flush(&knftables.Chain{Name: c})
	}
	for _, c := range names {
		for _, r := range m.chains[c].v {
			tx.Add(&knftables.Rule{Chain: c, Rule: r})
		}
	}
	for id := range numSets {
		elems := m.sets[id]
		for _, k := range sortedKeys(elems) {
			tx.Add(toElement(id, elems[k].v))
		}
	}
}

// writeDelta puts into tx what turns a table holding what d says it
// held before into one holding m. Only the objects d names are looked
// at, so the work is that of the change, whatever the table's size.
func writeDelta(f family, tx *knftables.Transaction, d *delta, m *model) {
	// New client sets and chains first, so that elements may point at
	// them.
	clients := sortedKeys(d.clients)
	for _, s := range clients {
		if now, ok := m.clients[s]; ok && !d.clients[s].existed {
			tx.Add(clientSet(f, s, now.v))
		}
	}
	names := sortedKeys(d.chains)
	for _, c := range names {
		if _, ok := m.chains[c]; ok && !d.chains[c].existed {
			tx.Add(&knftables.Chain{Name: c})
		}
	}
	for _, c := range names {
		now, ok := m.chains[c]
		before := d.chains[c]
		if !ok || before.existed && slices.Equal(before.v, now.v) {
			continue
		}
		if before.existed {
			tx.Flush(&knftables.Chain{Name: c})
		}
		for _, r := range now.v {
			tx.Add(&knftables.Rule{Chain: c, Rule: r})
		}
	}
	// Deletions before additions: a changed map element is deleted and
	// added again. Only the touched keys are sorted, for a stable
	// transaction text.
	keys := [numSets][]string{}
	for id := range numSets {
		keys[id] = sortedKeys(d.sets[id])
		for _, k := range keys[id] {
			before := d.sets[id][k]
			now, ok := m.sets[id][k]
			if before.existed && (!ok || !slices.Equal(before.v.value, now.v.value)) {
				tx.Delete(toElement(id, before.v))
			}
		}
	}
	for id := range numSets {
		for _, k := range keys[id] {
			before := d.sets[id][k]
			now, ok := m.sets[id][k]
			if ok && (!before.existed || !slices.Equal(before.v.value, now.v.value)) {
				tx.Add(toElement(id, now.v))
			}
		}
	}
	// Chains and sets nothing points at any more go last.
	var gone []string
	for _, c := range names {
		if _, ok := m.chains[c]; !ok && d.chains[c].existed {
			tx.Flush(&knftables.Chain{Name: c})
			gone = append(gone, c)
		}
	}
	for _, c := range gone {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, s := range clients {
		if _, ok := m.clients[s]; !ok && d.clients[s].existed {
			tx.Delete(&knftables.Set{Name: s})
		}
	}
}

func clientSet(f family, name string, timeout time.Duration) *knftables.Set {
	return &knftables.Set{
		Name:    name,
		Type:    f.addr,
		Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
		Timeout: &timeout,
	}
}

func toElement(id setID, e element) *knftables.Element {
	if setInfo[id].isMap {
		return &knftables.Element{Map: setInfo[id].name, Key: e.key, Value: e.value}
	}
	return &knftables.Element{Set: setInfo[id].name, Key: e.key}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	return slices.Sorted(maps.Keys(m))
}
