package lab

// This file reads the lab's logs (LogTail, LogLines, FirstLogAt).

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// LogTail returns the last n lines of one of the lab's logs.
func (l *Lab) LogTail(name string, n int) string {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// LogLines returns the lines of one of the lab's logs logged at since or
// later (the speakers' text log format: time=RFC 3339 first) that hold
// any of words.
func (l *Lab) LogLines(name string, since time.Time, words ...string) []string {
	var out []string
	l.logScan(name, since, func(_ time.Time, line string) bool {
		if slices.ContainsFunc(words, func(w string) bool { return strings.Contains(line, w) }) {
			out = append(out, line)
		}
		return true
	})
	return out
}

// FirstLogAt returns the time of the first line of one of the lab's
// logs logged at since or later that match accepts; zero when none does.
func (l *Lab) FirstLogAt(name string, since time.Time, match func(string) bool) time.Time {
	var first time.Time
	l.logScan(name, since, func(at time.Time, line string) bool {
		if match(line) {
			first = at
			return false
		}
		return true
	})
	return first
}

// logScan calls f with the lines of a log logged at since or later, in
// order, while it returns true.
func (l *Lab) logScan(name string, since time.Time, f func(at time.Time, line string) bool) {
	b, err := os.ReadFile(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil && !at.Before(since) && !f(at, line) {
			return
		}
	}
}
