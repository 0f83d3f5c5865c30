package repo

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/e2e/lab"
)

// cleanEnv is the environment without what an outer make passes to the
// makes these tests start (job server, flags, level).
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// The README's two commands install the Debian packages first: the first
// command make would run for `make lab`, `make test` and every lab target
// is hack/deps.sh.
func TestTheTwoCommandsInstallPackagesFirst(t *testing.T) {
	need(t, "make")
	for _, target := range []string{"lab", "test", "lab-failover", "lab-faults"} {
		cmd := exec.Command("make", "-n", "--no-print-directory", target)
		cmd.Dir = root(t)
		cmd.Env = cleanEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make -n %s: %v", target, err)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if first != "hack/deps.sh" {
			t.Errorf("make %s would first run %q, not hack/deps.sh:\n%s", target, first, out)
		}
	}
}

// fakeDebian puts dpkg-query and apt-get stand-ins first on PATH: dpkg-query
// reports the packages in installed as installed, apt-get records its
// arguments in the returned log. The packages themselves are not the thing
// under test here, the script's decisions are.
func fakeDebian(t *testing.T, installed ...string) (path, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "apt.log")
	scripts := map[string]string{
		"dpkg-query": fmt.Sprintf(`#!/bin/sh
for pkg; do :; done # the last argument
for p in %s; do [ "$p" = "$pkg" ] && { printf 'install ok installed'; exit 0; }; done
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
`, strings.Join(installed, " ")),
		"apt-get": fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\n", log),
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir + ":" + os.Getenv("PATH"), log
}

// hack/deps.sh installs exactly the missing packages as root, installs
// nothing when none is missing, and without root names what is missing and
// fails.
func TestDepsInstallsWhatIsMissing(t *testing.T) {
	script := filepath.Join(root(t), "hack", "deps.sh")
	run := func(path string) (string, error) {
		cmd := exec.Command(script)
		cmd.Env = cleanEnv("PATH="+path, "DEPS_PACKAGES=etcd-server frr nftables")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	path, log := fakeDebian(t, "etcd-server", "frr", "nftables")
	if out, err := run(path); err != nil {
		t.Fatalf("nothing missing: %v\n%s", err, out)
	}
	if _, err := os.Stat(log); err == nil {
		t.Errorf("apt-get ran although nothing was missing")
	}

	path, log = fakeDebian(t, "frr")
	out, err := run(path)
	if os.Geteuid() != 0 {
		if err == nil || !strings.Contains(out, "missing Debian packages: etcd-server nftables") || !strings.Contains(out, "sudo apt-get install etcd-server nftables") {
			t.Errorf("without root: err %v, want a failure naming etcd-server and nftables and the command:\n%s", err, out)
		}
		return
	}
	if err != nil {
		t.Fatalf("as root with packages missing: %v\n%s", err, out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("apt-get never ran: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "update -qq" || !strings.HasSuffix(lines[1], "install -y -qq --no-install-recommends etcd-server nftables") {
		t.Errorf("apt-get ran as %q, want an update, then an install of etcd-server and nftables alone", lines)
	}
}

// openPTY returns a new pseudo-terminal's controlling side and the path of
// the other.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, ptmx.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlocking the pty: %v", e)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("the pty's number: %v", err)
	}
	return ptmx, fmt.Sprintf("/dev/pts/%d", n)
}

// Ctrl-C on make lab, typed at a terminal, tears the lab down and make exits
// 0: the lab takes the terminal's foreground, so the interrupt reaches it
// alone and make does not report failure.
func TestLabCtrlCExitsCleanly(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("the lab needs root, and CI runs as root")
		}
		t.Skip("the lab needs root")
	}
	need(t, "make")
	const name = "ilbx"
	ptmx, ptsPath := openPTY(t)
	defer ptmx.Close()
	pts, err := os.OpenFile(ptsPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "lab", "LAB_ARGS=-name "+name+" -dir "+t.TempDir())
	cmd.Dir = root(t)
	cmd.Env = cleanEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	// A session of its own with the pty as its terminal, as a login shell
	// has; make is its foreground process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
		_ = lab.Down(name)
	})

	var transcript strings.Builder
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(ptmx)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitFor := func(what string) {
		t.Helper()
		for line := range lines {
			transcript.WriteString(line + "\n")
			if strings.Contains(line, what) {
				return
			}
		}
		t.Fatalf("make lab ended before printing %q:\n%s", what, transcript.String())
	}
	waitFor("the lab stays up until interrupted")
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // the terminal's intr character, Ctrl-C
		t.Fatal(err)
	}
	waitFor("done.")
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for line := range lines {
			transcript.WriteString(line + "\n")
		}
	}()
	err = cmd.Wait()
	<-drained // the pty reads end once every process holding it has gone
	if err != nil {
		t.Errorf("make lab after Ctrl-C: %v, want exit 0:\n%s", err, transcript.String())
	}
	if left := lab.Leftovers(name); len(left) > 0 {
		t.Errorf("the lab left behind %v", left)
	}
}
