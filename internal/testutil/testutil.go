// Package testutil holds what ironlb's tests share: waiting for a
// condition, and a log sink several goroutines write.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// WaitLimit bounds every Eventually; it guards against a hung test, it
// measures nothing.
const WaitLimit = time.Minute

// Eventually polls cond until it reports done, failing the test with
// cond's last explanation when WaitLimit passes.
func Eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(WaitLimit)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %s", what, last)
}

// SyncBuffer is a log sink several goroutines may write.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
