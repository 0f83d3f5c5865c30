package lab

// This file runs ironlb's controller and speakers from the images `make
// images` built, in podman containers that join the lab's namespaces:
// the speaker's the node's (hostNetwork, as the chart's DaemonSet), the
// controller's the control plane's. Each lab has podman storage of its
// own (podmanDir), made when it starts and removed when it closes; Down
// also removes what a killed lab left there.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/tools/clientcmd"
)

// Runtime says how the lab runs ironlb's controller and speakers.
type Runtime string

const (
	// RuntimeImage runs them from the images make images built
	// (Binaries.Images), with podman, under the chart's security
	// context: what a cluster runs.
	RuntimeImage Runtime = "image"
	// RuntimeBinary runs the binaries of make build as processes in the
	// namespaces: quicker to iterate on.
	RuntimeBinary Runtime = "binary"
)

// RuntimeEnv is the environment variable that chooses the runtime of the
// e2e suite and e2e/cmd/lab: image (the default) or binary.
const RuntimeEnv = "IRONLB_LAB_RUNTIME"

// ImagesEnv names a folder of image archives (controller.tar,
// speaker.tar) the lab runs instead of make images' _output/images: a
// mutant image, say.
const ImagesEnv = "IRONLB_LAB_IMAGES"

// ParseRuntime reads a runtime's name; empty means RuntimeImage.
func ParseRuntime(s string) (Runtime, error) {
	switch Runtime(s) {
	case "", RuntimeImage:
		return RuntimeImage, nil
	case RuntimeBinary:
		return RuntimeBinary, nil
	}
	return "", fmt.Errorf("%s=%q: want image (run the images of make images) or binary (run the binaries of make build)", RuntimeEnv, s)
}

// ImageArchives lists the image archives the lab loads from
// Binaries.Images, and fails naming the first one missing.
func (b Binaries) ImageArchives() ([]string, error) {
	var out []string
	for _, c := range []string{"controller", "speaker"} {
		f := filepath.Join(b.Images, c+".tar")
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("the %s image: %w (make images builds it; %s=binary runs the binaries instead)", c, err, RuntimeEnv)
		}
		out = append(out, f)
	}
	return out, nil
}

// containerKubeDir is where a container finds its kubeconfig.
const containerKubeDir = "/var/run/ironlb-lab"

// podmanDir is where the lab called name keeps its podman storage and
// configuration.
func podmanDir(name string) string { return filepath.Join("/var/tmp", "ironlb-lab-podman-"+name) }

// podman is one lab's private podman: its own storage, file locks (no
// shared memory segment shared with other podmans) and configuration.
type podman struct {
	dir string
	env []string
	// cgroup is the parent cgroup of the lab's containers (labCgroup).
	cgroup string
}

// newPodman writes the configuration of the lab's podman and loads the
// image archives into its storage.
func newPodman(name string, archives []string) (*podman, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("the lab runs the images with podman, which is not installed (make deps installs it; %s=binary runs the binaries instead)", RuntimeEnv)
	}
	p := &podman{dir: podmanDir(name), cgroup: labCgroup(name)}
	if err := os.MkdirAll(filepath.Join(p.dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	if err := raiseCPUWeight(p.cgroup); err != nil {
		return nil, err
	}
	nofile, nproc, err := ulimits()
	if err != nil {
		return nil, err
	}
	// runc, not crun: crun refuses the hybrid cgroup hierarchy of some
	// machines. The limits: podman's default (1048576 open files) is
	// above what a root without CAP_SYS_RESOURCE may set.
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
[engine]
lock_type = "file"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[5]s/events.log"
runtime = "runc"
tmp_dir = "%[5]s/tmp"
static_dir = "%[5]s/root/libpod"
volume_path = "%[5]s/root/volumes"
`, nofile, nofile, nproc, nproc, p.dir)
	storage := fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(p.dir, "root"), filepath.Join(p.dir, "run"))
	for f, s := range map[string]string{"containers.conf": conf, "storage.conf": storage} {
		if err := os.WriteFile(filepath.Join(p.dir, f), []byte(s), 0o644); err != nil {
			return nil, err
		}
	}
	p.env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(p.dir, "containers.conf"), "CONTAINERS_STORAGE_CONF="+filepath.Join(p.dir, "storage.conf"))
	for _, a := range archives {
		if _, err := p.run("load", "-q", "-i", a); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ulimits are the open files and processes a container may have: this
// process's hard limits, processes at most the kernel's pid_max (podman
// lowers its own limit to that).
func ulimits() (nofile, nproc uint64, err error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, err
	}
	nofile = r.Max
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &r); err != nil {
		return 0, 0, err
	}
	nproc = r.Max
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && max < nproc {
			nproc = max
		}
	}
	return nofile, nproc, nil
}

func (p *podman) command(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", args...)
	cmd.Env = p.env
	return cmd
}

// run runs podman and returns its output; the error has the command and
// the output.
func (p *podman) run(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := p.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// runFlags are podman run's flags for a workload's container that joins
// namespace ns, before the image: the chart's security context, its
// environment, and the folder with its kubeconfig.
func (p *podman) runFlags(w workload, ns string, env []string, kubeDir string) ([]string, podmanSecurity, error) {
	sec, err := securityFlags(w.template.Spec, w.container())
	if err != nil {
		return nil, sec, fmt.Errorf("%s: %w", w.name, err)
	}
	args := []string{"run", "--rm", "--pull", "never", "--network", "ns:" + filepath.Join(netnsDir, ns), "--cgroup-parent", "/" + p.cgroup}
	args = append(args, sec.flags...)
	for _, e := range env {
		args = append(args, "--env", e)
	}
	if kubeDir != "" {
		args = append(args, "--volume", kubeDir+":"+containerKubeDir+":ro")
	}
	return args, sec, nil
}

// start runs a workload's image in a container called name (one of a
// stopped container of the same name is replaced) inside namespace ns,
// with the chart's arguments, a kubeconfig that holds what the host's
// file does, then extra. Its output goes to dir/logName.log. It returns
// once the container runs or podman has ended.
func (p *podman) start(dir, logName, name, ns string, w workload, env []string, kubeconfig string, extra []string) (*Process, error) {
	kubeDir := filepath.Join(dir, "containers", logName)
	args, sec, err := p.runFlags(w, ns, env, kubeDir)
	if err != nil {
		return nil, err
	}
	if err := containerKubeconfig(kubeconfig, kubeDir, sec.uid, sec.gid); err != nil {
		return nil, fmt.Errorf("%s's kubeconfig: %w", name, err)
	}
	pidfile := filepath.Join(p.dir, name+".pid")
	_ = os.Remove(pidfile)
	args = append(args, "--name", name, "--replace", "--sig-proxy=false", "--pidfile", pidfile, w.container().Image)
	args = append(append(args, w.command(containerKubeDir+"/kubeconfig")...), extra...)
	pr, err := start(dir, logName, p.command(args...))
	if err != nil {
		return nil, err
	}
	pr.signal = func(sig syscall.Signal) error {
		_, err := p.run("kill", "--signal", strconv.Itoa(int(sig)), name)
		return err
	}
	pr.pid = func() int {
		b, _ := os.ReadFile(pidfile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	// The first run loads the image's layers; later ones take well under
	// a second.
	for deadline := time.Now().Add(2 * time.Minute); pr.PID() == 0; time.Sleep(20 * time.Millisecond) {
		if exited, _ := pr.Exited(); exited {
			return pr, nil // as a binary that ends at once: its log tells why
		}
		if time.Now().After(deadline) {
			pr.Kill()
			return nil, fmt.Errorf("the container %s did not start within 2 minutes; see %s.log", name, logName)
		}
	}
	return pr, nil
}

// runOnce runs a workload's image with args (none of the chart's) in
// namespace ns and returns its output.
func (p *podman) runOnce(w workload, ns string, args ...string) (string, error) {
	flags, _, err := p.runFlags(w, ns, nil, "")
	if err != nil {
		return "", err
	}
	return p.run(append(append(flags, w.container().Image), args...)...)
}

// containerKubeconfig writes into dir (made afresh) a copy of the
// kubeconfig src with its CA embedded, readable by uid and gid alone
// (root's when they are -1): the container sees nothing of the host's
// files but that folder.
func containerKubeconfig(src, dir string, uid, gid int) error {
	cfg, err := clientcmd.LoadFromFile(src)
	if err != nil {
		return err
	}
	for name, c := range cfg.Clusters {
		if c.CertificateAuthority == "" {
			continue
		}
		if c.CertificateAuthorityData, err = os.ReadFile(c.CertificateAuthority); err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
		c.CertificateAuthority = ""
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, f); err != nil {
		return err
	}
	if uid < 0 {
		uid, gid = 0, 0
	}
	return errors.Join(os.Chmod(f, 0o400), os.Chown(f, uid, gid))
}

// sweepPodman removes the containers and the storage of the lab called
// name, whatever state a killed lab left them in.
func sweepPodman(name string) error {
	dir := podmanDir(name)
	var errs []error
	if _, err := os.Stat(dir); err == nil {
		errs = append(errs, removeStorage(dir))
	}
	for _, d := range cgroupDirs(labCgroup(name)) {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// removeStorage removes a lab's podman containers, then its storage.
func removeStorage(dir string) error {
	var errs []error
	if _, err := exec.LookPath("podman"); err == nil {
		p := &podman{dir: dir, env: append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"), "CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"))}
		if out, err := p.run("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			if _, err := p.run("rm", "--force", "--all", "--time", "0"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, m := range MountsUnder(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("removing the lab's podman storage: %w", err))
	}
	return errors.Join(errs...)
}

// labCgroup is the parent cgroup of the containers of the lab called name.
func labCgroup(name string) string { return "ironlb-lab-" + name }

// raiseCPUWeight makes the parent cgroup of the lab's containers with the
// largest CPU weight, before podman makes it with the default one. Under
// podman's default parent every container of the lab together would
// weigh as much as one of the lab's other threads (the API server's,
// etcd's, the pods'), and on a busy machine the speakers would answer
// ARP late where the binaries, scheduled as those threads are, do not.
// In a cluster they have a node to themselves.
func raiseCPUWeight(cgroup string) error {
	const root = "/sys/fs/cgroup"
	file, value := filepath.Join(root, "cpu", cgroup, "cpu.shares"), "262144" // cgroup v1
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		file, value = filepath.Join(root, cgroup, "cpu.weight"), "10000" // v2
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("making the lab's cgroup: %w", err)
	}
	if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
		return fmt.Errorf("raising the CPU weight of the lab's cgroup: %w", err)
	}
	return nil
}

// cgroupDirs lists the folders of cgroup and those below it, in every
// hierarchy, deepest first.
func cgroupDirs(cgroup string) []string {
	tops, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cgroup))
	tops = append(tops, filepath.Join("/sys/fs/cgroup", cgroup))
	var out []string
	for _, top := range tops {
		_ = filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append([]string{path}, out...)
			}
			return nil
		})
	}
	return out
}

// podmanLeftovers lists the podman storage of the lab called name and
// the mounts under it, if any are left.
func podmanLeftovers(name string) []string {
	dir := podmanDir(name)
	var out []string
	if _, err := os.Stat(dir); err == nil {
		out = append(out, dir)
	}
	for _, m := range MountsUnder(dir) {
		out = append(out, "mount "+m)
	}
	for _, d := range cgroupDirs(labCgroup(name)) {
		out = append(out, "cgroup "+d)
	}
	return out
}

// MountsUnder lists the mount points at or below dir, deepest first.
func MountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append([]string{f[4]}, out...)
		}
	}
	return out
}
