package election

import (
	"fmt"
	"slices"
)

// Quorum tells whether the speakers this one sees alive may answer in
// layer 2 while others may be cut off from them: the fence that keeps the
// two sides of a memberlist partition from answering for the same address.
//
// known are the speakers that should be running (as far as the API server
// knows, or as last known when it cannot be reached); alive are those this
// speaker's memberlist sees, itself included. Every alive speaker counts as
// known, whatever the list says. The alive side has quorum when it holds
// more than half of the known speakers, or exactly half and the first known
// speaker by name: of two halves of an even split exactly one qualifies, so
// in every partition at most one side answers. With no side holding a
// majority (a three-way split, say), no side answers.
//
// The returned text says why, for logs, events and the NodeAnnouncement.
func Quorum(alive, known []string) (bool, string) {
	all := slices.Clone(known)
	all = append(all, alive...)
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) == 0 {
		return false, "no speaker is known"
	}
	n, k := len(alive), len(all)
	switch {
	case 2*n > k:
		return true, fmt.Sprintf("%d of %d known speakers alive, a majority", n, k)
	case 2*n == k && slices.Contains(alive, all[0]):
		return true, fmt.Sprintf("%d of %d known speakers alive, half of them including %s, the first by name, which breaks the tie", n, k, all[0])
	case 2*n == k:
		return false, fmt.Sprintf("%d of %d known speakers alive, half of them without %s, the first by name, which breaks the tie", n, k, all[0])
	}
	return false, fmt.Sprintf("%d of %d known speakers alive, not a majority", n, k)
}
