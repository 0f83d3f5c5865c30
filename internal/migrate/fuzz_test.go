package migrate

import (
	"bytes"
	"testing"
)

// FuzzConvert checks that Convert never panics, and that whatever it
// accepts it can write.
func FuzzConvert(f *testing.F) {
	for _, tables := range [][]convertCase{poolCases, l2Cases, bgpAdvCases, peerCases(), otherCases} {
		for _, tc := range tables {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, {kind: List}]\n"))
	f.Add([]byte("--- !!binary\n---\n&a [*a]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := Convert(in)
		if err != nil {
			if r != nil {
				t.Fatalf("a Result beside the error %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := r.WriteYAML(&buf); err != nil {
			t.Fatalf("WriteYAML of a converted Result: %v", err)
		}
	})
}
