package assigner_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/internal/testutil"
)

// controllerProcess is the real controller binary run against the test
// API server, one process at a time: restart SIGKILLs the current one, as
// a crash or an OOM kill would, and starts the next at once. Each process
// logs (stdout and stderr) to its own file in the test's folder.
type controllerProcess struct {
	t    testing.TB
	bin  string
	args []string
	dir  string

	mu   sync.Mutex // guards runs
	runs []*controllerRun
}

// controllerRun is one process of a controllerProcess.
type controllerRun struct {
	cmd     *exec.Cmd
	logPath string
	started time.Time
	// killedAt is when the test sent SIGKILL; zero while it was not.
	killedAt time.Time
	// done is closed when the process has exited; err is then its result.
	done chan struct{}
	err  error
}

// startControllerProcess builds the controller binary and starts it
// against the test API server with flags args added to the kubeconfig,
// and without leader election, metrics or health endpoints. When the
// test ends every process is killed; a process that exited without being
// killed, or (in a -race build) reported a data race, fails the test, and
// a failed test shows every process's log.
func startControllerProcess(t testing.TB, args ...string) *controllerProcess {
	t.Helper()
	dir := t.TempDir()
	p := &controllerProcess{
		t:   t,
		bin: controllerBinary(t),
		dir: dir,
		args: append([]string{
			"--kubeconfig=" + writeKubeconfig(t, testenv.Get(t).Config, dir),
			"--leader-elect=false",
			"--metrics-bind-address=0",
			"--health-probe-bind-address=0",
		}, args...),
	}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, r := range p.runs {
			select {
			case <-r.done:
				if r.killedAt.IsZero() {
					t.Errorf("controller process %d exited by itself: %v", i, r.err)
				}
			default:
				_ = r.cmd.Process.Kill()
				<-r.done
			}
			logs := r.logs()
			if strings.Contains(logs, "WARNING: DATA RACE") {
				t.Errorf("controller process %d reported a data race", i)
			}
			if t.Failed() {
				t.Logf("controller process %d logged (%s):\n%s", i, r.logPath, logs)
			}
		}
	})
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// start starts the next process; the previous one must have ended.
func (p *controllerProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.runs)
	logPath := filepath.Join(p.dir, fmt.Sprintf("controller-%d.log", n))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	// The child has its own descriptor once started; ours is not needed.
	defer f.Close()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	r := &controllerRun{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting controller process %d: %w", n, err)
	}
	r.started = time.Now()
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.runs = append(p.runs, r)
	return nil
}

// restart SIGKILLs the current process, waits until it is gone and starts
// the next at once, and returns the time it sent the kill. It may be called
// from any goroutine.
func (p *controllerProcess) restart() (time.Time, error) {
	r := p.current()
	select {
	case <-r.done:
		return time.Time{}, fmt.Errorf("controller process %d had exited by itself before the kill: %v", p.count()-1, r.err)
	default:
	}
	p.mu.Lock()
	r.killedAt = time.Now()
	killedAt := r.killedAt
	p.mu.Unlock()
	if err := r.cmd.Process.Kill(); err != nil {
		return killedAt, err
	}
	<-r.done
	return killedAt, p.start()
}

func (p *controllerProcess) current() *controllerRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[len(p.runs)-1]
}

// count is how many processes were started.
func (p *controllerProcess) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.runs)
}

// run returns the i-th process started.
func (p *controllerProcess) run(i int) *controllerRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[i]
}

// waitLog waits until the current process has logged a line containing
// s; the test fails at once if the process ends first.
func (p *controllerProcess) waitLog(s string) {
	p.t.Helper()
	r := p.current()
	testutil.Eventually(p.t, fmt.Sprintf("the controller to log %q", s), func() (bool, string) {
		select {
		case <-r.done:
			p.t.Fatalf("the controller exited (%v) before logging %q; it logged:\n%s", r.err, s, r.logs())
		default:
		}
		return strings.Contains(r.logs(), s), "not yet"
	})
}

// checkRunning fails the test if the current process has ended.
func (p *controllerProcess) checkRunning() {
	p.t.Helper()
	r := p.current()
	select {
	case <-r.done:
		p.t.Errorf("controller process %d exited by itself: %v", p.count()-1, r.err)
	default:
	}
}

func (r *controllerRun) logs() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", r.logPath, err)
	}
	return string(b)
}

// runFigures are what one controller process did, read from its log.
type runFigures struct {
	// allocated counts the Services whose status it set to Allocated,
	// released the Services whose addresses it released.
	allocated, released int
	// claimed is how many Services' status addresses it took over at
	// start; -1 if it never got that far.
	claimed int
	// configLoaded and firstStatus are when it first loaded the
	// configuration and first wrote a Service's status; zero if never.
	configLoaded, firstStatus time.Time
}

// figures reads the process's log (slog's text format).
func (r *controllerRun) figures() runFigures {
	f := runFigures{claimed: -1}
	for line := range strings.SplitSeq(r.logs(), "\n") {
		var at time.Time
		if rest, ok := strings.CutPrefix(line, "time="); ok {
			ts, _, _ := strings.Cut(rest, " ")
			at, _ = time.Parse(time.RFC3339Nano, ts)
		}
		switch {
		case strings.Contains(line, `msg="service status"`):
			if f.firstStatus.IsZero() {
				f.firstStatus = at
			}
			if strings.Contains(line, " reason=Allocated ") {
				f.allocated++
			}
		case strings.Contains(line, "msg=released "):
			f.released++
		case strings.Contains(line, `msg="configuration loaded"`):
			if f.configLoaded.IsZero() {
				f.configLoaded = at
			}
		case strings.Contains(line, `msg="claimed the addresses in Service status"`):
			if _, n, ok := strings.Cut(line, " services="); ok {
				n, _, _ = strings.Cut(n, " ")
				f.claimed, _ = strconv.Atoi(n)
			}
		}
	}
	return f
}

// controllerBinary builds the controller command into the test's folder,
// with the race detector when this test binary has it, and returns its
// path. Building here keeps the test independent of `make build`; the Go
// build cache makes it a link after the first time.
func controllerBinary(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "controller")
	args := []string{"build", "-o", out}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, "github.com/ironlb/ironlb/controller")
	cmd := exec.Command("go", args...)
	cmd.Dir = testenv.RepoRoot()
	began := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	t.Logf("go %s took %v", strings.Join(args, " "), time.Since(began).Round(time.Millisecond))
	return out
}

// raceEnabled says whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// writeKubeconfig writes a kubeconfig for cfg into dir and returns its
// path. It carries every way of authenticating a rest.Config may hold
// (the test API server's is a client certificate).
func writeKubeconfig(t testing.TB, cfg *rest.Config, dir string) string {
	t.Helper()
	server := cfg.Host
	if !strings.Contains(server, "://") {
		scheme := "http"
		if rest.IsConfigTransportTLS(*cfg) {
			scheme = "https"
		}
		server = scheme + "://" + server
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthority:     cfg.CAFile,
		CertificateAuthorityData: cfg.CAData,
		TLSServerName:            cfg.ServerName,
		InsecureSkipTLSVerify:    cfg.Insecure,
	}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		ClientCertificate:     cfg.CertFile,
		ClientCertificateData: cfg.CertData,
		ClientKey:             cfg.KeyFile,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		TokenFile:             cfg.BearerTokenFile,
		Username:              cfg.Username,
		Password:              cfg.Password,
	}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
