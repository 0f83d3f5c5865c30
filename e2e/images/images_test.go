package images

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironlb/ironlb/internal/cmdutil/metricstest"
	"github.com/ironlb/ironlb/internal/imagearchive"
	"github.com/ironlb/ironlb/internal/testenv"
)

// The tests' images get names of their own, so that they never replace the
// images `make images` loaded, and are removed afterwards.
var (
	repo = "ironlb-imagetest.invalid"
	tag  = fmt.Sprintf("t%d", os.Getpid())
)

var (
	eng      *engine
	built    string // hack/images.sh's output folder
	epoch    string // SOURCE_DATE_EPOCH of the builds
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ironlb-images-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Fixed for the run, so that a commit made meanwhile changes neither build.
	epoch = fmt.Sprint(time.Now().Unix())
	built = filepath.Join(dir, "a")
	buildErr = buildImages(built)
	eng = startEngine()
	if eng.missing == "" && buildErr == nil {
		for _, c := range []string{"controller", "speaker"} {
			if _, err := eng.docker(context.Background(), "load", "-i", filepath.Join(built, c+".tar")); err != nil {
				buildErr = fmt.Errorf("loading the %s image: %w", c, err)
			}
		}
	}
	code := m.Run()
	testenv.Stop()
	if eng.missing == "" {
		// Every image these tests made: theirs is the only repository name.
		if out, err := eng.docker(context.Background(), "images", "-q", "--filter", "reference="+repo+"/*"); err == nil {
			if ids := strings.Fields(out); len(ids) > 0 {
				if _, err := eng.docker(context.Background(), append([]string{"rmi", "-f"}, ids...)...); err != nil {
					fmt.Fprintf(os.Stderr, "removing the test images: %v\n", err)
				}
			}
		}
		eng.stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func appVersion() string {
	b, err := os.ReadFile(filepath.Join(root(), "charts", "ironlb", "Chart.yaml"))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "appVersion:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return "unknown"
}

// buildImages runs hack/images.sh, as make images does, into out.
func buildImages(out string) error {
	cmd := exec.Command("bash", filepath.Join(root(), "hack", "images.sh"), out, repo, tag)
	cmd.Env = append(os.Environ(), "VERSION="+appVersion(), "REVISION=imagetest", "SOURCE_DATE_EPOCH="+epoch)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hack/images.sh: %w\n%s", err, b)
	}
	return nil
}

func image(c string) string { return repo + "/" + c + ":" + tag }

// needBuilt fails the test when the images did not build.
func needBuilt(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building the images as make images does: %v", buildErr)
	}
}

// needEngine skips the test without a container engine, or fails it in CI.
func needEngine(t *testing.T) *engine {
	t.Helper()
	needBuilt(t)
	if eng.missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no container engine to run the images in: %s. CI must run them: install docker.io (make deps) and run as root", eng.missing)
		}
		t.Skipf("skipping: no container engine to run the images in: %s", eng.missing)
	}
	return eng
}

// Both images start and print their usage; the controller's as 65532.
func TestImagesRunHelp(t *testing.T) {
	e := needEngine(t)
	for _, c := range []string{"controller", "speaker"} {
		out, err := e.docker(context.Background(), "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL", image(c), "--help")
		if err != nil {
			t.Errorf("%s --help in its image: %v", c, err)
			continue
		}
		if !strings.Contains(out, "Usage: "+c) {
			t.Errorf("%s --help in its image printed no usage:\n%s", c, out)
		}
	}
	user, err := e.docker(context.Background(), "inspect", "--format", "{{.Config.User}}", image("controller"))
	if err != nil || strings.TrimSpace(user) != "65532:65532" {
		t.Errorf("controller image user: %q, %v; want 65532:65532 (the chart's runAsUser)", strings.TrimSpace(user), err)
	}
}

// holder starts a container that holds a fresh network namespace (its own,
// made by the engine with --network none) for other containers to join, with
// ironlb's two nftables tables in it as a speaker leaves them. It returns the
// container's name and the path of its namespace.
func holder(t *testing.T, e *engine) (name, netns string) {
	t.Helper()
	name = fmt.Sprintf("ironlb-imagetest-holder-%d-%d", os.Getpid(), time.Now().UnixNano())
	// nft monitor waits for events until it is stopped; it needs NET_ADMIN
	// to listen, which the speaker's own container is then given or not.
	if _, err := e.docker(context.Background(), "run", "-d", "--name", name, "--network", "none", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
		"--entrypoint", "/usr/sbin/nft", image("speaker"), "monitor"); err != nil {
		t.Fatalf("starting a container to hold a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if _, err := e.docker(context.Background(), "rm", "-f", name); err != nil {
			t.Errorf("removing the holder container: %v", err)
		}
	})
	pid, err := e.docker(context.Background(), "inspect", "--format", "{{.State.Pid}}", name)
	if err != nil || strings.TrimSpace(pid) == "0" {
		logs, _ := e.docker(context.Background(), "logs", name)
		t.Fatalf("the holder container is not running (pid %q, %v); its output:\n%s", strings.TrimSpace(pid), err, logs)
	}
	netns = "/proc/" + strings.TrimSpace(pid) + "/ns/net"
	for _, family := range []string{"ip", "ip6"} {
		if out, err := exec.Command("nsenter", "--net="+netns, "nft", "add", "table", family, "ironlb").CombinedOutput(); err != nil {
			t.Fatalf("adding table %s ironlb in the holder's namespace: %v\n%s", family, err, out)
		}
	}
	return name, netns
}

func tables(t *testing.T, netns string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+netns, "nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("listing the tables in %s: %v\n%s", netns, err, out)
	}
	return strings.TrimSpace(string(out))
}

// runCleanup runs `speaker --cleanup` from img in the holder's namespace with
// the chart's security context: root, only NET_ADMIN and NET_RAW, read-only
// root filesystem.
func runCleanup(e *engine, holderName, img string) (string, error) {
	return e.docker(context.Background(), "run", "--rm", "--network", "container:"+holderName,
		"--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
		"--read-only", "--security-opt", "no-new-privileges", img, "--cleanup")
}

// The speaker image removes ironlb's tables with nft from its own files.
func TestSpeakerCleanup(t *testing.T) {
	e := needEngine(t)
	h, netns := holder(t, e)
	if got := tables(t, netns); got != "table ip ironlb\ntable ip6 ironlb" {
		t.Fatalf("before: tables %q, want ironlb's two", got)
	}
	out, err := runCleanup(e, h, image("speaker"))
	if err != nil {
		t.Fatalf("speaker --cleanup in its image with NET_ADMIN and NET_RAW only: %v", err)
	}
	if got := tables(t, netns); got != "" {
		t.Errorf("after speaker --cleanup (%s): tables left: %q", strings.TrimSpace(out), got)
	}
}

// A mutant: the speaker image without nft must fail the check above, or the
// check would not show that the image carries what the speaker needs.
func TestSpeakerWithoutNftFailsCleanup(t *testing.T) {
	e := needEngine(t)
	tree := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", filepath.Join(built, "work", "rootfs", "speaker"), tree).CombinedOutput(); err != nil {
		t.Fatalf("copying the speaker's tree: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(tree, "usr", "sbin", "nft")); err != nil {
		t.Fatalf("the speaker's tree has no usr/sbin/nft to remove: %v", err)
	}
	mutant := image("speaker") + "-nonft"
	archive := filepath.Join(t.TempDir(), "mutant.tar")
	if _, err := imagearchive.WriteFile(archive, os.DirFS(tree), imagearchive.Config{
		RepoTags: []string{mutant}, Architecture: runtime.GOARCH, OS: "linux", Created: time.Unix(0, 0),
		User: "0:0", Entrypoint: []string{"/speaker"}, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.docker(context.Background(), "load", "-i", archive); err != nil {
		t.Fatal(err)
	}
	h, netns := holder(t, e)
	out, err := runCleanup(e, h, mutant)
	if err == nil {
		t.Fatalf("speaker --cleanup succeeded in an image without nft; the check cannot tell a broken image:\n%s", out)
	}
	if !strings.Contains(out, "nft") {
		t.Errorf("speaker --cleanup without nft failed without naming nft:\n%s", out)
	}
	if got := tables(t, netns); got != "table ip ironlb\ntable ip6 ironlb" {
		t.Errorf("tables after the failed cleanup: %q, want both still there", got)
	}
}

// The controller image starts as 65532 with no capabilities and a read-only
// root filesystem, reaches a real kube-apiserver and reports healthy and ready.
func TestControllerAnswersHealth(t *testing.T) {
	e := needEngine(t)
	env := testenv.Get(t)
	kubeconfig := metricstest.Kubeconfig(t, env.Config)
	dir := filepath.Dir(kubeconfig)
	// The container's user, 65532, must read it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(kubeconfig, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := metricstest.FreeAddr(t)
	name := fmt.Sprintf("ironlb-imagetest-controller-%d", os.Getpid())
	// Host network: the API server listens on the host's loopback.
	if _, err := e.docker(context.Background(), "run", "-d", "--name", name, "--network", "host",
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"-v", dir+":/kube:ro", image("controller"),
		"--kubeconfig=/kube/kubeconfig", "--leader-elect=false", "--metrics-bind-address=0",
		"--health-probe-bind-address="+addr); err != nil {
		t.Fatalf("starting the controller image: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := e.docker(context.Background(), "logs", name)
			t.Logf("controller's output:\n%s", logs)
		}
		if _, err := e.docker(context.Background(), "rm", "-f", name); err != nil {
			t.Errorf("removing the controller container: %v", err)
		}
	})
	c := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := c.Get("http://" + addr + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("status %s", resp.Status)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the controller in its image did not answer %s with 200 within 60s: %v", path, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// Two builds of the same tree give the same image IDs.
func TestBuildIsReproducible(t *testing.T) {
	needBuilt(t)
	second := filepath.Join(t.TempDir(), "b")
	if err := buildImages(second); err != nil {
		t.Fatal(err)
	}
	ids := func(dir string) []string {
		b, err := os.ReadFile(filepath.Join(dir, "images.txt"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Split(l, "\t")
			out = append(out, strings.Join(f[:len(f)-1], " ")) // all but the archive's path
		}
		return out
	}
	if diff := cmp.Diff(ids(built), ids(second)); diff != "" {
		t.Errorf("two builds of the same tree differ (-first +second); if no source file was edited between them, find what hack/images.sh takes from the clock or the machine:\n%s", diff)
	}
}

// What make images tags is what the chart's default values name.
func TestChartNamesTheTagsMakeImagesBuilds(t *testing.T) {
	helm := filepath.Join(root(), "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing: make tools builds it", helm)
		}
		t.Skipf("skipping: %s missing (make tools builds it)", helm)
	}
	cmd := exec.Command("make", "-s", "--no-print-directory", "image-names")
	cmd.Dir = root()
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make image-names: %v", err)
	}
	made := strings.Fields(string(out))
	rendered, err := exec.Command(helm, "template", "ironlb", filepath.Join(root(), "charts", "ironlb"), "--namespace", "ironlb-system", "--set", "memberlist.key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	var named []string
	for _, l := range strings.Split(string(rendered), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "image: "); ok {
			named = append(named, strings.Trim(v, `"`))
		}
	}
	sort.Strings(made)
	sort.Strings(named)
	if diff := cmp.Diff(made, named); diff != "" {
		t.Errorf("images make images tags vs. images the chart's defaults name (-make +chart):\n%s", diff)
	}
}

// cleanEnv is the environment without what an outer make passes down.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// The multi-stage Dockerfiles give the files make images gives. They need
// BuildKit and their base images from a registry; where either is missing
// this says so and skips (also in CI: these machines reach no registry), and
// hack/mkimage's TestDockerfilesMakeTheScratchImage checks them by reading.
func TestDockerfilesBuildTheSameFiles(t *testing.T) {
	e := needEngine(t)
	if _, err := e.docker(context.Background(), "buildx", "version"); err != nil {
		t.Skipf("cannot run the multi-stage Dockerfiles here: they need BuildKit (docker buildx), which this docker lacks; hack/mkimage's TestDockerfilesMakeTheScratchImage compares them with make images by reading them")
	}
	for _, c := range []string{"controller", "speaker"} {
		df := image(c) + "-dockerfile"
		out, err := e.docker(context.Background(), "buildx", "build", "--load", "-f", filepath.Join(root(), c, "Dockerfile"), "-t", df, root())
		if err != nil {
			if strings.Contains(out, "pull") || strings.Contains(out, "resolve") || strings.Contains(out, "dial tcp") {
				t.Skipf("cannot run the multi-stage Dockerfiles here: their base images cannot be pulled (%s); hack/mkimage's TestDockerfilesMakeTheScratchImage compares them by reading them", tail([]byte(out)))
			}
			t.Fatalf("building %s/Dockerfile: %v", c, err)
		}
		if diff := cmp.Diff(imageFiles(t, e, image(c)), imageFiles(t, e, df)); diff != "" {
			t.Errorf("%s: files of make images' image vs. the Dockerfile's (-make +Dockerfile):\n%s", c, diff)
		}
	}
}

// imageFiles lists the paths in an image's filesystem, from docker export
// of a container created (not started) from it, less what the engine adds.
func imageFiles(t *testing.T, e *engine, img string) []string {
	t.Helper()
	id, err := e.docker(context.Background(), "create", img)
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimSpace(id)
	defer e.docker(context.Background(), "rm", "-f", id)
	dir := t.TempDir()
	if _, err := e.docker(context.Background(), "export", "-o", filepath.Join(dir, "fs.tar"), id); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-tf", filepath.Join(dir, "fs.tar")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		switch strings.TrimSuffix(f, "/") {
		case ".dockerenv", "dev", "proc", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", "dev/console", "dev/pts", "dev/shm":
			continue
		}
		files = append(files, f)
	}
	return files
}
