// Package testutil holds what ironlb's tests share: waiting for a
// condition, a log sink several goroutines write, and the gate and
// command runner of the network tests.
package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
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

// NeedNet skips a network test that lacks root or one of the tools (a
// name on $PATH or an absolute path); in CI (CI=true), which provides
// them, it fails the test instead.
func NeedNet(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("network test needs %v, which CI provides", missing)
	}
	t.Skipf("network test needs %v", missing)
}

// Run runs a command and fails the test if it fails; it returns the
// command's output.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
