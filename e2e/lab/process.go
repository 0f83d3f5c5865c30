package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Process is a program the lab runs inside one of its namespaces, with
// its output in the lab's folder.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan error
	// signal, when set, delivers a signal to the program the process
	// stands for (a container's, through podman); nil: to cmd's process
	// group.
	signal func(syscall.Signal) error
	// pid, when set, is the host process ID of that program, 0 once it
	// has ended; nil: cmd's.
	pid func() int
}

// startIn runs binary inside the namespace ns (through `ip netns exec`,
// which also gives it the namespace's /etc/netns files), logging to
// dir/name.log.
func startIn(dir, name, ns string, env []string, binary string, args ...string) (*Process, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, binary}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return start(dir, name, cmd)
}

// start starts cmd in a process group of its own, logging to
// dir/name.log.
func start(dir, name string, cmd *exec.Cmd) (*Process, error) {
	// Appended to, so a restarted process keeps its earlier log.
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so stopping it stops what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		logf.Close()
	}()
	return p, nil
}

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Stop asks the process to end and kills it after a grace period.
func (p *Process) Stop() {
	if exited, _ := p.Exited(); exited {
		return
	}
	p.send(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(10 * time.Second):
		err = p.killAndWait()
	}
	p.done <- err // for Exited
}

// Kill kills the process with SIGKILL, as a crash would, and waits until
// it has ended.
func (p *Process) Kill() {
	if exited, _ := p.Exited(); exited {
		return
	}
	p.done <- p.killAndWait() // for Exited
}

// killAndWait sends SIGKILL and waits for the end; a container's podman
// that has not ended 30 seconds after its container was killed is
// killed too.
func (p *Process) killAndWait() error {
	p.send(syscall.SIGKILL)
	if p.signal == nil {
		return <-p.done
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		return <-p.done
	}
}

// send delivers sig to the program: through signal when set (falling
// back on the process group when that fails), else to the process group.
func (p *Process) send(sig syscall.Signal) {
	if p.signal != nil && p.signal(sig) == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// PID is the host process ID of the program itself (for a container,
// its first process), 0 once it has ended.
func (p *Process) PID() int {
	if exited, _ := p.Exited(); exited {
		return 0
	}
	if p.pid != nil {
		return p.pid()
	}
	return p.cmd.Process.Pid
}

// killIn kills every process whose network namespace is the named one:
// what a killed lab left running.
func killIn(ns string) error {
	var target syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, ns), &target); err != nil {
		return nil // no such namespace, nothing runs in it
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if st.Ino == target.Ino && st.Dev == target.Dev {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("killing %d in %s: %w", pid, ns, err))
			}
		}
	}
	return errors.Join(errs...)
}
