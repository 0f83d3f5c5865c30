package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/planner"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// failFirstPatch fails the first status patch, after calling during (a
// newer status arriving while the write is under way).
type failFirstPatch struct {
	client.Client
	mu      sync.Mutex
	patches int
	during  func()
}

func (f *failFirstPatch) Status() client.SubResourceWriter {
	return failingStatus{f.Client.Status(), f}
}

type failingStatus struct {
	client.SubResourceWriter
	f *failFirstPatch
}

func (s failingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.f.mu.Lock()
	s.f.patches++
	first := s.f.patches == 1
	s.f.mu.Unlock()
	if first {
		s.f.during()
		return errors.New("the API server timed out")
	}
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (f *failFirstPatch) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.patches
}

// TestStatusWriterKeepsNewest: a status that arrives while an older one
// is being written, and that write fails, is the one written in the end;
// the failed one is not put back over it.
func TestStatusWriterKeepsNewest(t *testing.T) {
	c := testenv.Get(t).Client
	create(t, node("sw-a", nil))
	fc := &failFirstPatch{Client: c}
	w := newStatusWriter(fc, "sw-a", slog.New(slog.DiscardHandler))
	fc.during = func() { w.set(v1alpha1.NodeAnnouncementStatus{Members: 2}) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	w.set(v1alpha1.NodeAnnouncementStatus{Members: 1})
	testutil.Eventually(t, "the status written after the failure", func() (bool, string) {
		var na v1alpha1.NodeAnnouncement
		if err := c.Get(ctx, client.ObjectKey{Name: "sw-a"}, &na); err != nil {
			return false, err.Error()
		}
		return fc.count() >= 2 && na.Status.Members != 0, fmt.Sprintf("patches %d, members %d", fc.count(), na.Status.Members)
	})
	// Give a wrong retry every chance to happen, then look again.
	testutil.Eventually(t, "the writer idle", func() (bool, string) { return len(w.latest) == 0, "" })
	var na v1alpha1.NodeAnnouncement
	if err := c.Get(ctx, client.ObjectKey{Name: "sw-a"}, &na); err != nil {
		t.Fatal(err)
	}
	if na.Status.Members != 2 {
		t.Errorf("status written last has members %d, want the newest status's 2 (after %d patches)", na.Status.Members, fc.count())
	}
}

// TestRunExitsWhenManagerFails: a speaker whose manager cannot start
// (here its metrics port is taken) returns the error instead of hanging.
func TestRunExitsWhenManagerFails(t *testing.T) {
	env := testenv.Get(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	o := RunOptions{
		Options:     Options{Node: "run-a", Log: slog.New(slog.DiscardHandler), ForwardingMode: planner.ForwardNone},
		MetricsAddr: taken.Addr().String(),
		HealthAddr:  "0",
		Join:        []string{"127.0.0.1:1"},
	}
	err = Run(context.Background(), env.Config, o)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run = %v, want the manager's error about the taken port", err)
	}
}
