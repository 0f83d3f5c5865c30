package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// InNetNS runs f on an OS thread switched into the named network
// namespace (one made by `ip netns add`) and returns f's error.
//
// Sockets f makes belong to that namespace for their whole life, so they
// may be used from any goroutine once f returns; but goroutines f starts
// run elsewhere, and must not make sockets of their own.
//
// f runs on a goroutine of its own, whose thread is switched back before
// it is unlocked; when switching back fails the thread stays locked, so
// the runtime ends it with the goroutine and no other code runs in the
// namespace by mistake. The caller's thread is never switched.
func InNetNS(name string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- inNetNSLocked(name, f)
	}()
	return <-done
}

// inNetNSLocked is InNetNS on the locked thread; it unlocks the thread
// only when the thread is back in its own namespace.
func inNetNSLocked(name string, f func() error) error {
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("reading the thread's network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		// setns failed, so the thread is where it was; still, check.
		if now, gerr := netns.Get(); gerr == nil {
			if now.Equal(orig) {
				runtime.UnlockOSThread()
			}
			now.Close()
		}
		return fmt.Errorf("entering network namespace %s: %w", name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leaving network namespace %s (the thread is discarded): %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// RemoveLeftoverNetNS deletes the namespaces named "<prefix><pid>x…" of
// test processes that died without cleaning up; namespaces of processes
// still running (this one included) stay.
func RemoveLeftoverNetNS(t testing.TB, prefix string) {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\d+)x\d+-\S+`)
	for _, line := range strings.Split(Run(t, "ip", "netns", "list"), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil || m[1] == strconv.Itoa(os.Getpid()) {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // its test process still runs
		}
		_ = exec.Command("ip", "netns", "del", strings.Fields(line)[0]).Run()
	}
}
