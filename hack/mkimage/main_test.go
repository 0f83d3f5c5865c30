package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
}

type stage struct {
	from, name string
	body       []instruction
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages []stage
		line   string
	)
	for _, l := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(l)
		if line == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			line += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		line += trimmed
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			f := strings.Fields(args)
			var s stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					s.name = f[i+1]
					i++
				default:
					s.from = f[i]
				}
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			st := &stages[len(stages)-1]
			st.body = append(st.body, instruction{cmd, strings.TrimSpace(args)})
		}
	}
	return stages
}

var labelRE = regexp.MustCompile(`([A-Za-z0-9._-]+)="([^"]*)"`)

// The multi-stage Dockerfiles, for builders with registry access, must make
// the image `make images` makes: FROM scratch, holding only the tree of
// hack/image-rootfs.sh for the same component, with the same user,
// entrypoint, PATH and labels. The Dockerfile cannot be built here (its base
// images cannot be pulled), so this reads it; e2e/images compares the two
// images' files where it can be built.
func TestDockerfilesMakeTheScratchImage(t *testing.T) {
	for component := range Specs {
		t.Run(component, func(t *testing.T) {
			file := filepath.Join("..", "..", component, "Dockerfile")
			stages := parseDockerfile(t, file)
			if len(stages) == 0 {
				t.Fatalf("%s: no FROM", file)
			}
			final := stages[len(stages)-1]
			if final.from != "scratch" {
				t.Fatalf("%s: final stage is FROM %s; it must be FROM scratch so that its files are only those of hack/image-rootfs.sh", file, final.from)
			}
			want, err := Config(component, "${VERSION}", "${REVISION}", time.Time{}, "amd64", nil)
			if err != nil {
				t.Fatal(err)
			}
			var (
				copies     []string
				user, path string
				entrypoint []string
				labels     = map[string]string{}
			)
			for _, in := range final.body {
				switch in.cmd {
				case "COPY", "ADD":
					copies = append(copies, in.cmd+" "+in.args)
				case "USER":
					user = in.args
				case "ENV":
					if v, ok := strings.CutPrefix(in.args, "PATH="); ok {
						path = "PATH=" + v
					}
				case "ENTRYPOINT":
					if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
						t.Errorf("ENTRYPOINT %s: want the JSON form: %v", in.args, err)
					}
				case "LABEL":
					for _, m := range labelRE.FindAllStringSubmatch(in.args, -1) {
						labels[m[1]] = m[2]
					}
				}
			}
			if len(copies) != 1 || !strings.HasPrefix(copies[0], "COPY --from=") || !strings.HasSuffix(copies[0], " /rootfs/ /") {
				t.Fatalf("final stage copies %q; want exactly one COPY --from=STAGE /rootfs/ /, so that it holds the tree hack/image-rootfs.sh built and nothing else", copies)
			}
			from := strings.TrimPrefix(strings.Fields(copies[0])[1], "--from=")
			var built bool
			for _, s := range stages {
				if s.name != from {
					continue
				}
				for _, in := range s.body {
					if in.cmd == "RUN" && strings.Contains(in.args, "image-rootfs.sh /rootfs "+component+" ") {
						built = true
					}
				}
			}
			if !built {
				t.Errorf("stage %s does not build /rootfs with `image-rootfs.sh /rootfs %s BINARY`", from, component)
			}
			got := map[string]any{"user": user, "path": path, "entrypoint": entrypoint, "labels": labels}
			wantm := map[string]any{"user": want.User, "path": want.Env[0], "entrypoint": want.Entrypoint, "labels": want.Labels}
			if diff := cmp.Diff(wantm, got); diff != "" {
				t.Errorf("%s declares another image than hack/mkimage makes (-mkimage +Dockerfile):\n%s", file, diff)
			}
		})
	}
}

func TestRunRefusesMissingFlags(t *testing.T) {
	err := run(t.TempDir(), "speaker", "example.test/speaker:1", "1", "abc", "", filepath.Join(t.TempDir(), "x.tar"), "amd64")
	if err == nil || !strings.Contains(err.Error(), "-epoch is required") {
		t.Errorf("no epoch: got %v", err)
	}
	err = run(t.TempDir(), "agent", "example.test/agent:1", "1", "abc", "0", filepath.Join(t.TempDir(), "x.tar"), "amd64")
	if err == nil || !strings.Contains(err.Error(), "unknown component") {
		t.Errorf("unknown component: got %v", err)
	}
}
