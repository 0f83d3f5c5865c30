package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// foreground moves this process into a process group of its own and makes
// that group the terminal's foreground, so that Ctrl-C reaches the lab
// alone. Started by make, the lab would otherwise share make's group, and
// make, interrupted too, reports failure however cleanly the lab tears
// down. It returns a function that gives the terminal back to the group
// that had it. Without a terminal on standard input it does nothing.
func foreground() (restore func()) {
	nothing := func() {}
	tty := int(os.Stdin.Fd())
	prev, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP)
	if err != nil {
		return nothing // not a terminal
	}
	// A background group that touches the terminal is stopped by SIGTTOU;
	// ignore it while the foreground changes hands.
	signal.Ignore(syscall.SIGTTOU)
	own := unix.Getpgrp()
	if err := unix.Setpgid(0, 0); err != nil {
		return nothing
	}
	if err := unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
		// Back into the old group, where Ctrl-C still reaches us.
		_ = unix.Setpgid(0, own)
		return nothing
	}
	return func() { _ = unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, prev) }
}
