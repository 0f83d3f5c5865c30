// Package repo checks the repository as a newcomer meets it: that what the
// documentation names exists, that generated pictures are fresh, and that
// the two commands of the README set up a fresh machine by themselves.
package repo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// root is the repository's top directory.
func root(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// need returns the path of a program the test needs: in CI, where
// everything is installed, its absence fails the test; elsewhere it skips.
func need(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if p, err := exec.LookPath(path); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (make deps tools build)", path)
	}
	t.Skipf("%s is missing (make deps tools build)", path)
	return ""
}

// docs returns every Markdown file a user reads, by path relative to the
// repository, with its text.
func docs(t *testing.T) map[string]string {
	t.Helper()
	r := root(t)
	files := []string{"README.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md"}
	more, err := filepath.Glob(filepath.Join(r, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		rel, _ := filepath.Rel(r, m)
		files = append(files, rel)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(r, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

// lineOf returns the line number of offset i in text.
func lineOf(text string, i int) int { return strings.Count(text[:i], "\n") + 1 }

// Every `make TARGET` in the documentation is a target of the Makefile.
func TestDocsNameMakeTargets(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(mk), -1) {
		targets[m[1]] = true
	}
	if !targets["lab"] || !targets["test"] {
		t.Fatalf("the Makefile parser found no lab or test target: %v", targets)
	}
	// In inline code, or at the start of a line of a code block.
	re := regexp.MustCompile("(?m)(?:`|^)make ([a-z][a-z0-9-]*)[`\\s]")
	named := 0
	for file, text := range docs(t) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			target := text[m[2]:m[3]]
			named++
			if !targets[target] {
				t.Errorf("%s:%d names `make %s`, which the Makefile does not have", file, lineOf(text, m[0]), target)
			}
		}
	}
	if named < 10 {
		t.Errorf("only %d make targets found in the docs: the pattern is broken", named)
	}
}

// otherTools are the flags of helm, kubectl and the like that the
// documentation shows in commands; any other flag must be one of ironlb's.
var otherTools = []string{
	"--all", "--clusterrole", "--create-namespace", "--dry-run", "--field-selector", "--for",
	"--from-literal", "--image", "--include-crds", "--kube-version", "--port", "--reuse-values",
	"--server-side", "--serviceaccount", "--set", "--show-labels", "--type", "--namespace",
	"--wait", "--version", "--context", "--output",
	"--no-trunc", "--build-arg", // docker's, in install.md's Images
	"--flag", // configuration.md: "Boolean flags take `--flag` or `--flag=false`"
}

// flagsOf runs a binary's -h and returns its flags as --name.
func flagsOf(t *testing.T, bin string) []string {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // the flag package exits 0 or 2
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(-{1,2}[a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, "--"+strings.TrimLeft(m[1], "-"))
	}
	if len(flags) == 0 {
		t.Fatalf("%s -h lists no flags:\n%s", bin, out)
	}
	return flags
}

// Every --flag in the documentation is a flag of the controller, the
// speaker or the kubectl plugin, or of a tool the docs show commands of.
func TestDocsNameFlags(t *testing.T) {
	bin := filepath.Join(root(t), "bin")
	known := map[string]bool{}
	for _, b := range []string{"controller", "speaker", "kubectl-ironlb"} {
		for _, f := range flagsOf(t, need(t, filepath.Join(bin, b))) {
			known[f] = true
		}
	}
	for _, f := range otherTools {
		known[f] = true
	}
	re := regexp.MustCompile("(?:^|[\\s`=(\\[])(--[a-z][a-z0-9-]+)")
	named := 0
	for file, text := range docs(t) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			flag := text[m[2]:m[3]]
			named++
			if !known[flag] {
				t.Errorf("%s:%d names %s, which neither ironlb's binaries nor the tools the docs use have", file, lineOf(text, m[0]), flag)
			}
		}
	}
	if named < 30 {
		t.Errorf("only %d flags found in the docs: the pattern is broken", named)
	}
}

// Every chart value the documentation names (`memberlist.port`,
// `--set speaker.fencing=off`, the rows of configuration.md's tables) is
// in values.yaml, or read by a template.
func TestDocsNameChartValues(t *testing.T) {
	chart := filepath.Join(root(t), "charts", "ironlb")
	b, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	var templates bytes.Buffer
	tpls, _ := filepath.Glob(filepath.Join(chart, "templates", "*"))
	for _, f := range tpls {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		templates.Write(b)
	}
	exists := func(path string) bool {
		var v any = values
		for _, seg := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				break
			}
			if v, ok = m[seg]; !ok {
				// Optional values have no default; a template reads them.
				return strings.Contains(templates.String(), ".Values."+path) ||
					strings.Contains(templates.String(), `"`+seg+`"`)
			}
		}
		return true
	}
	// A dotted name whose first part is a top-level value, in backticks or
	// after --set.
	re := regexp.MustCompile("(?:`|--set )([a-z][A-Za-z0-9]*(?:\\.[A-Za-z0-9]+)+)(?:=[^`\\s]*)?(?:`|\\s)")
	named := 0
	for file, text := range docs(t) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			path := text[m[2]:m[3]]
			top, _, _ := strings.Cut(path, ".")
			if _, ok := values[top]; !ok {
				continue // metadata.name, ippools.ironlb.io, ca.crt, ...
			}
			named++
			if !exists(path) {
				t.Errorf("%s:%d names the chart value %s, which values.yaml does not have and no template reads", file, lineOf(text, m[0]), path)
			}
		}
	}
	if named < 30 {
		t.Errorf("only %d chart values found in the docs: the pattern is broken", named)
	}
	// And the other way: configuration.md describes every value.
	conf := docs(t)["docs/configuration.md"]
	var missing []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			if !strings.Contains(conf, "`"+prefix+"`") {
				missing = append(missing, prefix)
			}
			return
		}
		for k, sub := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			// A described parent (`controller.resources`) covers its children.
			if prefix != "" && strings.Contains(conf, "`"+p+"`") {
				continue
			}
			walk(p, sub)
		}
	}
	walk("", values)
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md does not describe these chart values: %v", missing)
	}
}

// Every `kubectl ironlb COMMAND` in the documentation is a command of the
// plugin.
func TestDocsNamePluginCommands(t *testing.T) {
	plugin := need(t, filepath.Join(root(t), "bin", "kubectl-ironlb"))
	out, err := exec.Command(plugin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl-ironlb --help: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`kubectl ironlb ([a-z][a-z-]*)`)
	named := 0
	for file, text := range docs(t) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			cmd := text[m[2]:m[3]]
			named++
			if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(cmd) + `\s`).Match(out) {
				t.Errorf("%s:%d names `kubectl ironlb %s`, which the plugin's help does not list:\n%s", file, lineOf(text, m[0]), cmd, out)
			}
		}
	}
	if named < 3 {
		t.Errorf("only %d plugin commands found in the docs: the pattern is broken", named)
	}
}

// docs/architecture.svg is what Graphviz draws from docs/architecture.dot
// now: run make architecture after editing the .dot file.
func TestArchitecturePictureIsFresh(t *testing.T) {
	dot := need(t, "dot")
	r := root(t)
	want, err := exec.Command(dot, "-Tsvg", filepath.Join(r, "docs", "architecture.dot")).Output()
	if err != nil {
		t.Fatalf("dot: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(r, "docs", "architecture.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/architecture.svg is stale: run make architecture")
	}
}

// The README links only to files that exist.
func TestDocsLinksResolve(t *testing.T) {
	r := root(t)
	re := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for file, text := range docs(t) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			target := text[m[2]:m[3]]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(r, filepath.Dir(file), target)); err != nil {
				t.Errorf("%s:%d links to %s, which does not exist", file, lineOf(text, m[0]), target)
			}
		}
	}
}
