package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/e2e/lab"
)

// engine is the container engine the tests use.
type engine struct {
	// host is DOCKER_HOST for the docker CLI; empty means the CLI's default.
	host string
	// missing says why there is no engine; empty when there is one.
	missing string
	// dockerd is the daemon these tests started, nil for one found running.
	dockerd *exec.Cmd
	dir     string
}

// startEngine finds a running engine or starts a private dockerd.
func startEngine() *engine {
	if _, err := exec.LookPath("docker"); err != nil {
		return &engine{missing: "the docker CLI is not on PATH (install Debian's docker.io: make deps does, as root)"}
	}
	if os.Getenv("DOCKER_HOST") != "" || fileExists("/var/run/docker.sock") {
		e := &engine{host: os.Getenv("DOCKER_HOST")}
		if _, err := e.docker(context.Background(), "info"); err == nil {
			return e
		}
	}
	if os.Geteuid() != 0 {
		return &engine{missing: "no container engine answers `docker info`, and starting dockerd needs root"}
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		return &engine{missing: "no container engine answers `docker info`, and dockerd is not installed (install Debian's docker.io: make deps does)"}
	}
	// A short folder: the socket path must fit 108 bytes.
	dir, err := os.MkdirTemp("", "ilbd-")
	if err != nil {
		return &engine{missing: err.Error()}
	}
	e := &engine{host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir}
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return &engine{missing: err.Error()}
	}
	defer log.Close()
	cmd := exec.Command("dockerd",
		"--storage-driver=vfs", "--iptables=false", "--bridge=none",
		"--host", e.host,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"))
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that containerd goes with it if it must be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return &engine{missing: fmt.Sprintf("starting dockerd: %v", err)}
	}
	e.dockerd = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := e.docker(context.Background(), "info"); err == nil {
			return e
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(log.Name())
			os.RemoveAll(dir)
			return &engine{missing: fmt.Sprintf("dockerd exited at start; its log:\n%s", tail(out))}
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			e.stop()
			return &engine{missing: fmt.Sprintf("dockerd did not answer within 60s; its log:\n%s", tail(out))}
		}
	}
}

// stop stops the dockerd that startEngine started and removes its files.
func (e *engine) stop() {
	if e.dockerd == nil {
		return
	}
	pgid := e.dockerd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pgid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	// dockerd leaves the host's network namespace bind-mounted at
	// exec/netns/default (for --network host); unmount whatever is left.
	for _, m := range lab.MountsUnder(e.dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "images: unmounting %s, left by the private dockerd: %v (umount it by hand)\n", m, err)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		fmt.Fprintf(os.Stderr, "images: removing the private dockerd's folder %s: %v (remove it by hand)\n", e.dir, err)
	}
	e.dockerd = nil
}

// docker runs the docker CLI against the engine and returns its combined
// output, with the command and the output in the error.
func (e *engine) docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = os.Environ()
	if e.host != "" {
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+e.host)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
