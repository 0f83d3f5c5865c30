package testutil

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Helper is the test binary run again under `ip netns exec`, so that the
// whole process, with every thread and goroutine, lives in a network
// namespace the test made. It takes commands as JSON lines on stdin and
// answers each with one JSON line on stdout; closing stdin tells it to
// finish. The package's TestMain turns the binary into the helper when it
// finds the environment variable that StartHelper is given.
type Helper struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	logs *SyncBuffer
	// done is closed when the process has exited; err is then its result.
	done    chan struct{}
	err     error
	stopped bool
}

// StartHelper starts the test binary as a helper in the namespace ns,
// with env ("NAME=value" entries) added to its environment; name says
// which helper it is in failures. When the test ends, the helper is
// stopped (if the test did not stop it) and must exit 0; if the test
// failed, the end of the helper's log (its stderr) is shown.
func StartHelper(t testing.TB, name, ns string, env ...string) *Helper {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	h := &Helper{t: t, name: name, cmd: cmd, logs: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = h.logs
	if h.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	// A pipe of our own rather than StdoutPipe, which Wait (called as
	// soon as the process exits) would close under the reader.
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		t.Fatal(err)
	}
	go func() {
		h.err = cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		if !h.stopped {
			if err := h.Stop(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		out.Close()
		if t.Failed() {
			t.Logf("%s logged:\n%s", name, lastLines(h.logs.String(), 300))
		}
	})
	h.out = bufio.NewScanner(out)
	h.out.Buffer(nil, 64<<20)
	return h
}

// Stop closes the helper's stdin and returns its exit status; a helper
// still running 30 s later is killed.
func (h *Helper) Stop() error {
	h.stopped = true
	_ = h.in.Close()
	select {
	case <-h.done:
		return h.err
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
		return errors.New("did not stop within 30s of its stdin closing")
	}
}

// Do sends the command and decodes the helper's answer into reply; the
// test fails when the helper cannot be reached or has ended.
func (h *Helper) Do(command, reply any) {
	h.t.Helper()
	b, err := json.Marshal(command)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.in.Write(append(b, '\n')); err != nil {
		h.t.Fatalf("%s: %v", h.name, err)
	}
	if !h.out.Scan() {
		h.t.Fatalf("%s ended (%v); it logged:\n%s", h.name, h.out.Err(), lastLines(h.logs.String(), 100))
	}
	if err := json.Unmarshal(h.out.Bytes(), reply); err != nil {
		h.t.Fatalf("%s answered %q: %v", h.name, h.out.Bytes(), err)
	}
}

// lastLines is the last max lines of s, saying how many were left out.
func lastLines(s string, max int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= max {
		return s
	}
	return fmt.Sprintf("(%d lines before)\n", len(lines)-max) + strings.Join(lines[len(lines)-max:], "")
}

// ServeCommands is the helper's side of Helper: it decodes every JSON
// line of in as a command, writes handle's answer as one JSON line to
// out, and returns nil when in ends (the test stopped the helper), or the
// first error: a line that is not a command, handle's error, a failed
// write.
func ServeCommands[C any](in io.Reader, out io.Writer, handle func(C) (any, error)) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 256<<20)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var c C
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("bad command %q: %w", sc.Bytes(), err)
		}
		answer, err := handle(c)
		if err != nil {
			return err
		}
		if err := enc.Encode(answer); err != nil {
			return err
		}
	}
	return sc.Err()
}
