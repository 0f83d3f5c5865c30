package lab

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/ironlb/ironlb/internal/testutil"
)

// When the test binary runs with these set, it is the child of
// TestKilledLabIsCleaned: it starts a lab and waits to be killed.
const (
	childLabEnv = "IRONLB_LAB_CHILD_NAME"
	childDirEnv = "IRONLB_LAB_CHILD_DIR"
)

func TestMain(m *testing.M) {
	if name := os.Getenv(childLabEnv); name != "" {
		runChildLab(name, os.Getenv(childDirEnv))
		return
	}
	os.Exit(m.Run())
}

func runChildLab(name, dir string) {
	bin, err := BinariesIn(repoBin())
	if err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	if _, err := Start(context.Background(), Options{Name: name, Nodes: 2, Dir: dir, Bin: bin, Log: slog.Default()}); err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	select {} // until killed
}

// TestKilledLabIsCleaned kills a lab's process with SIGKILL, once it has
// made its namespaces and while it is coming up or up, and shows that the
// next bring-up of a lab of that name cleans what was left and succeeds.
func TestKilledLabIsCleaned(t *testing.T) {
	needRoot(t)
	bin := repoBinaries(t)
	name := labName()
	t.Cleanup(func() { _ = Down(name) })
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childLabEnv+"="+name, childDirEnv+"="+t.TempDir())
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the child's lab to have its nodes' namespaces", func() (bool, string) {
		left := Leftovers(name)
		return len(left) >= 6, ""
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if left := Leftovers(name); len(left) == 0 {
		t.Fatal("the killed lab left nothing; the test proves nothing")
	} else {
		t.Logf("the killed lab left %d entries: %v", len(left), left)
	}

	l, err := Start(context.Background(), Options{Name: name, Nodes: 2, Dir: t.TempDir(), Bin: bin, Log: slog.Default()})
	if err != nil {
		t.Fatalf("bring-up after a killed lab: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(name); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
