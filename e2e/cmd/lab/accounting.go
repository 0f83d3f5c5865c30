package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
)

// cpuTimes is the CPU time each of the lab's programs has used, by
// command name (processes of one name summed), from /proc; the time of
// the children it waited for (a speaker's nft) is counted as name+"'s
// children".
func cpuTimes(pids []int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted
		// after the command name, which may hold spaces.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		ticks := func(i int) time.Duration {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			return time.Duration(n) * time.Second / 100 // USER_HZ
		}
		out[s[open+1:end]] += ticks(11) + ticks(12)
		if c := ticks(13) + ticks(14); c > 0 {
			out[s[open+1:end]+"'s children"] += c
		}
	}
	return out
}

// cpuSpent is what each program used between two cpuTimes, as text.
func cpuSpent(before, after map[string]time.Duration) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if d := after[name] - before[name]; d >= 100*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s %.1f s", name, d.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

// apiRequests counts the API server's requests by verb and resource, and
// its watch events by kind, from its metrics.
func apiRequests(ctx context.Context, cs kubernetes.Interface) map[string]float64 {
	out := map[string]float64{}
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return out
	}
	label := func(line, name string) string {
		_, rest, ok := strings.Cut(line, name+`="`)
		if !ok {
			return ""
		}
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	for _, line := range strings.Split(string(body), "\n") {
		var key string
		switch {
		case strings.HasPrefix(line, "apiserver_request_total{"):
			key = label(line, "verb") + " " + label(line, "resource") + "/" + label(line, "subresource")
		case strings.HasPrefix(line, "apiserver_watch_events_total{"):
			key = "watch-event " + label(line, "kind")
		case strings.HasPrefix(line, "apiserver_watch_events_sizes_sum{"):
			key = "watch-bytes " + label(line, "kind")
		default:
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		out[key] += v
	}
	return out
}

// requestsSpent is the largest changes between two apiRequests, as text.
func requestsSpent(before, after map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			all = append(all, kv{k, d})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.v - a.v) })
	var parts []string
	for _, x := range all[:min(len(all), 14)] {
		parts = append(parts, fmt.Sprintf("%s %.0f", x.k, x.v))
	}
	return strings.Join(parts, "; ")
}
