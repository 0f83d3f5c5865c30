package election

import (
	"fmt"
	"strings"
	"testing"
)

func TestQuorum(t *testing.T) {
	abc := []string{"a", "b", "c"}
	abcd := []string{"a", "b", "c", "d"}
	tests := []struct {
		name         string
		alive, known []string
		want         bool
		why          string
	}{
		{"all alive", abc, abc, true, "3 of 3"},
		{"majority side", []string{"a", "b"}, abc, true, "2 of 3"},
		{"isolated node", []string{"c"}, abc, false, "1 of 3 known speakers alive, not a majority"},
		{"even split, side with the first", []string{"a", "d"}, abcd, true, "including a"},
		{"even split, other side", []string{"b", "c"}, abcd, false, "without a"},
		{"two nodes, the first alone", []string{"a"}, []string{"a", "b"}, true, "1 of 2"},
		{"two nodes, the second alone", []string{"b"}, []string{"a", "b"}, false, "1 of 2"},
		{"three-way split", []string{"a", "b"}, []string{"a", "b", "c", "d", "e"}, false, "2 of 5"},
		{"alone and the only one known", []string{"a"}, []string{"a"}, true, "1 of 1"},
		{"known list not yet read: the alive count", []string{"b", "c"}, nil, true, "2 of 2"},
		// A speaker the API server has not reported yet (a new node) still
		// counts once it is alive.
		{"alive but not yet known", []string{"a", "b", "x"}, abc, true, "3 of 4"},
		{"alive beside unknowns", []string{"x"}, abc, false, "1 of 4"},
		{"no one", nil, nil, false, "no speaker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Quorum(tt.alive, tt.known)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("Quorum(%v, %v) = %v, %q; want %v, mentioning %q", tt.alive, tt.known, got, why, tt.want, tt.why)
			}
		})
	}
}

// TestQuorumOneSide: whatever way the known speakers split in two, at most
// one side has quorum, and with an odd or even count one of the two does.
func TestQuorumOneSide(t *testing.T) {
	for k := 1; k <= 7; k++ {
		known := make([]string, k)
		for i := range known {
			known[i] = fmt.Sprintf("node%d", i)
		}
		for mask := 0; mask < 1<<k; mask++ {
			var side, other []string
			for i, n := range known {
				if mask&(1<<i) != 0 {
					side = append(side, n)
				} else {
					other = append(other, n)
				}
			}
			q1, _ := Quorum(side, known)
			q2, _ := Quorum(other, known)
			if q1 && q2 {
				t.Fatalf("%d known: both %v and %v have quorum", k, side, other)
			}
			if !q1 && !q2 {
				t.Fatalf("%d known: neither %v nor %v has quorum", k, side, other)
			}
		}
	}
}
