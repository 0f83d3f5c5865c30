package lab

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	rt, err := ParseRuntime(os.Getenv(RuntimeEnv))
	if err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	if _, err := Start(context.Background(), Options{Name: name, Nodes: 2, Dir: dir, Bin: bin, Log: slog.Default(), Runtime: rt}); err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	select {} // until killed
}

// testRuntime is the runtime the lab's tests run ironlb with (RuntimeEnv,
// images by default); without the images it fails in CI and skips
// elsewhere.
func testRuntime(t *testing.T, bin Binaries) Runtime {
	t.Helper()
	rt, err := ParseRuntime(os.Getenv(RuntimeEnv))
	if err != nil {
		t.Fatal(err)
	}
	if rt == RuntimeImage {
		if _, err := bin.ImageArchives(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
	}
	return rt
}

// killChildLab starts a lab of that name in a child process, kills the
// child with SIGKILL once ready says so, and returns what it left.
func killChildLab(t *testing.T, name string, rt Runtime, ready func() (bool, string)) []string {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childLabEnv+"="+name, childDirEnv+"="+t.TempDir(), RuntimeEnv+"="+string(rt))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the child's lab to come far enough", ready)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	left := Leftovers(name)
	if len(left) == 0 {
		t.Fatal("the killed lab left nothing; the test proves nothing")
	}
	t.Logf("the killed lab left %d entries: %v", len(left), left)
	return left
}

// restartClean brings a lab of that name up and down again and checks
// that nothing of either lab is left.
func restartClean(t *testing.T, name string, bin Binaries, rt Runtime) {
	t.Helper()
	l, err := Start(context.Background(), Options{Name: name, Nodes: 2, Dir: t.TempDir(), Bin: bin, Log: slog.Default(), Runtime: rt})
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

// TestKilledLabIsCleaned kills a lab's process with SIGKILL, once it has
// made its namespaces and while it is coming up or up, and shows that the
// next bring-up of a lab of that name cleans what was left and succeeds.
func TestKilledLabIsCleaned(t *testing.T) {
	needRoot(t)
	bin := repoBinaries(t)
	rt := testRuntime(t, bin)
	name := labName()
	t.Cleanup(func() { _ = Down(name) })
	killChildLab(t, name, rt, func() (bool, string) {
		left := Leftovers(name)
		return len(left) >= 6, ""
	})
	restartClean(t, name, bin, rt)
}

// A lab running the images that is killed leaves its containers running
// (podman's conmon outlives the lab's process) and its podman storage;
// the next bring-up ends them and removes it.
func TestKilledImageLabIsCleaned(t *testing.T) {
	needRoot(t)
	bin := repoBinaries(t)
	if testRuntime(t, bin) != RuntimeImage {
		t.Skipf("%s=%s: this test is about the images", RuntimeEnv, os.Getenv(RuntimeEnv))
	}
	name := labName()
	t.Cleanup(func() { _ = Down(name) })
	pidfile := filepath.Join(podmanDir(name), name+"-speaker-node1.pid")
	var pid int
	killChildLab(t, name, RuntimeImage, func() (bool, string) {
		b, _ := os.ReadFile(pidfile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0, "no speaker container yet"
	})
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the speaker container's process %d did not outlive the killed lab (%v): the test proves nothing", pid, err)
	}
	if !slices.Contains(Leftovers(name), podmanDir(name)) {
		t.Fatalf("Leftovers does not name the killed lab's podman storage %s: %v", podmanDir(name), Leftovers(name))
	}
	restartClean(t, name, bin, RuntimeImage)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the killed lab's speaker container (process %d) still runs after the next bring-up and teardown", pid)
	}
}
