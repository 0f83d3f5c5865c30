package measure

// This file is the memberlist key's trials (the key's Secret is e2e/lab's
// MemberlistKey, SetMemberlistKeys): the negative control of a rotation
// (KeyControl, KeyControlJoined) and the rotation itself (RotateKey), and
// the pure reading of the member counts they watch (SamplesSince,
// DescribeSamples, LowestMembers).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
)

// KeyControlRecord is what the negative control of a key rotation saw.
type KeyControlRecord struct {
	Victim string
	// At is when the victim had been restarted with a key the others do
	// not know.
	At time.Time
	// Joined says whether another speaker counted every node as a member
	// meanwhile (2 s after At or later, which leaves the others the time
	// to hear that the old speaker left): it should not.
	Joined bool
	// Seen are the distinct readings "node count" since At.
	Seen []string
}

// keyControlFor is how long the negative control watches.
const keyControlFor = 15 * time.Second

// KeyControl is the negative control of a key rotation: it restarts
// victim with a fresh key alone while the others know only the current
// one, watches w's readings for a while, then restarts it with the
// current key again and waits until every speaker counts every node. A
// lab that could not tell a working rotation from a broken one would
// show Joined.
func (e *FaultEnv) KeyControl(ctx context.Context, w *lab.MemberWatch, victim string) (KeyControlRecord, error) {
	rec := KeyControlRecord{Victim: victim}
	oldKey, err := e.Lab.MemberlistKey(ctx)
	if err != nil {
		return rec, err
	}
	newKey, err := lab.NewMemberlistKey()
	if err != nil {
		return rec, err
	}
	if err := e.Lab.SetMemberlistKeys(ctx, newKey); err != nil {
		return rec, err
	}
	if err := e.Lab.RestartSpeaker(victim); err != nil {
		return rec, err
	}
	rec.At = time.Now()
	time.Sleep(keyControlFor)
	rec.Joined, rec.Seen = KeyControlJoined(w.Samples(), victim, rec.At, len(e.Nodes))
	if err := e.Lab.SetMemberlistKeys(ctx, oldKey); err != nil {
		return rec, err
	}
	if err := e.Lab.RestartSpeaker(victim); err != nil {
		return rec, err
	}
	if _, err := e.Lab.WaitSpeakerReady(victim); err != nil {
		return rec, err
	}
	if !e.AllCount(30 * time.Second) {
		return rec, fmt.Errorf("not every speaker counts %d members after %s was restarted with the old key again: %v", len(e.Nodes), victim, LatestMembers(w.Samples()))
	}
	return rec, nil
}

// KeyControlJoined judges the readings of a negative control: whether a
// speaker other than victim counted n members 2 s after `at` or later,
// and the distinct readings ("node count") since at.
func KeyControlJoined(samples []lab.MemberSample, victim string, at time.Time, n int) (bool, []string) {
	joined := false
	var seen []string
	for _, s := range samples {
		if s.At.Before(at) || s.Err != nil {
			continue
		}
		if s.Node != victim && s.Members >= n && s.At.After(at.Add(2*time.Second)) {
			joined = true
		}
		if r := fmt.Sprintf("%s %d", s.Node, s.Members); !slices.Contains(seen, r) {
			seen = append(seen, r)
		}
	}
	return joined, seen
}

// Rollout is one of the three rollouts of a key rotation.
type Rollout struct {
	Name string
	// From is when the Secret was written, To when every speaker counted
	// every node after the last one restarted.
	From, To time.Time
	// Steps are the restarts, in order.
	Steps []RolloutStep
}

// RolloutStep is one speaker's restart in a rollout: how long after its
// stop it was ready, and every speaker counted every node.
type RolloutStep struct {
	Node           string
	Ready, Counted time.Duration
}

// RotateKey rotates the memberlist key from the current one to a fresh
// one in three rollouts, each restarting the speakers one at a time
// (they read the key's Secret only when they start): (a) the current key
// with the new one secondary, accepted but not sent with; (b) the new
// key with the old one secondary; (c) the new key alone. After each
// restart every speaker must count every node within 20 s; w's readings
// say, on failure, who counted fewer. MembersBelow(w's readings from the
// first rollout's From on, n-1) judges the rotation.
func (e *FaultEnv) RotateKey(ctx context.Context, w *lab.MemberWatch) ([]Rollout, error) {
	oldKey, err := e.Lab.MemberlistKey(ctx)
	if err != nil {
		return nil, err
	}
	newKey, err := lab.NewMemberlistKey()
	if err != nil {
		return nil, err
	}
	n := len(e.Nodes)
	start := time.Now()
	var out []Rollout
	for _, ro := range []struct {
		name      string
		key       string
		secondary []string
	}{
		{"(a) old key, new secondary", oldKey, []string{newKey}},
		{"(b) new key, old secondary", newKey, []string{oldKey}},
		{"(c) new key alone", newKey, nil},
	} {
		r := Rollout{Name: ro.name, From: time.Now()}
		if err := e.Lab.SetMemberlistKeys(ctx, ro.key, ro.secondary...); err != nil {
			return out, err
		}
		for _, node := range e.Nodes {
			t0 := time.Now()
			if err := e.Lab.RestartSpeaker(node); err != nil {
				return out, err
			}
			ready, err := e.Lab.WaitSpeakerReady(node)
			if err != nil {
				return out, fmt.Errorf("rollout %s: %w", ro.name, err)
			}
			if !e.AllCount(20 * time.Second) {
				since := SamplesSince(w.Samples(), start)
				return out, fmt.Errorf("rollout %s, %s restarted: not every speaker counts %d members within 20 s; readings below %d since the rotation began: %s; the latest by node: %v",
					ro.name, node, n, n-1, DescribeSamples(MembersBelow(since, n-1), start), LatestMembers(since))
			}
			r.Steps = append(r.Steps, RolloutStep{Node: node, Ready: ready.Sub(t0), Counted: time.Since(t0)})
		}
		r.To = time.Now()
		out = append(out, r)
	}
	return out, nil
}

// SamplesSince keeps the readings asked for at t or later.
func SamplesSince(samples []lab.MemberSample, t time.Time) []lab.MemberSample {
	var out []lab.MemberSample
	for _, s := range samples {
		if !s.At.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// DescribeSamples lists readings relative to t0, at most 12.
func DescribeSamples(ss []lab.MemberSample, t0 time.Time) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("+%s %s counted %d", s.At.Sub(t0).Round(time.Millisecond), s.Node, s.Members))
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("and %d more", len(out)-12))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// LowestMembers returns the lowest member count among the readings of
// joined speakers (see MembersBelow for the readings that tell nothing),
// and whether there was one.
func LowestMembers(samples []lab.MemberSample) (int, bool) {
	lowest, found := 0, false
	for _, s := range samples {
		if s.Err == nil && s.Members > 0 && (!found || s.Members < lowest) {
			lowest, found = s.Members, true
		}
	}
	return lowest, found
}
