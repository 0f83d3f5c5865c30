package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var epoch = time.Unix(1700000000, 0)

func config() Config {
	return Config{
		RepoTags:     []string{"example.test/speaker:1.2.3"},
		Architecture: "amd64",
		OS:           "linux",
		Created:      epoch,
		User:         "0:0",
		Entrypoint:   []string{"/speaker"},
		Env:          []string{"PATH=/usr/sbin:/usr/bin"},
		Labels:       map[string]string{"org.opencontainers.image.version": "1.2.3", "org.opencontainers.image.revision": "abc"},
	}
}

// tree is a root filesystem as two different build machines might leave it:
// other mtimes, another umask, group-writable files.
func tree(mtime time.Time, fileMode, dirMode fs.FileMode) fstest.MapFS {
	return fstest.MapFS{
		"speaker":                   {Data: []byte("binary"), Mode: 0o700 | fileMode, ModTime: mtime},
		"usr/sbin/nft":              {Data: []byte("nft"), Mode: 0o711 | fileMode, ModTime: mtime},
		"lib/x86_64-linux-gnu/libc": {Data: []byte("libc"), Mode: 0o600 | fileMode, ModTime: mtime},
		"etc/passwd":                {Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n"), Mode: 0o600 | fileMode, ModTime: mtime},
		"usr":                       {Mode: fs.ModeDir | dirMode, ModTime: mtime},
		"tmp":                       {Mode: fs.ModeDir | fs.ModeSticky | 0o777, ModTime: mtime},
	}
}

func TestSameTreeSameBytes(t *testing.T) {
	var a, b bytes.Buffer
	ra, err := Write(&a, tree(time.Now(), 0, 0o700), config())
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Write(&b, tree(time.Unix(42, 0), 0o060, 0o775), config())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two trees differing only in mtimes and modes gave different archives: %s and %s", ra.ID, rb.ID)
	}
	c := config()
	c.Labels["org.opencontainers.image.revision"] = "def"
	rc, err := Write(io.Discard, tree(epoch, 0, 0o755), c)
	if err != nil {
		t.Fatal(err)
	}
	if rc.ID == ra.ID {
		t.Errorf("another revision label kept the image ID %s", ra.ID)
	}
	if rc.Layer != ra.Layer {
		t.Errorf("a label changed the layer: %s, was %s", rc.Layer, ra.Layer)
	}
}

// The archive is what docker load reads: manifest.json names the config and
// the layer, the ID is the config's SHA-256, and the layer holds the tree
// with fixed owners, mtimes and normalised modes.
func TestArchiveLayout(t *testing.T) {
	var buf bytes.Buffer
	res, err := Write(&buf, tree(time.Now(), 0, 0o700), config())
	if err != nil {
		t.Fatal(err)
	}
	files := readTar(t, buf.Bytes())
	var manifest []manifestEntry
	if err := json.Unmarshal(files["manifest.json"].data, &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 {
		t.Fatalf("manifest.json has %d images, want 1", len(manifest))
	}
	m := manifest[0]
	if diff := cmp.Diff([]string{"example.test/speaker:1.2.3"}, m.RepoTags); diff != "" {
		t.Errorf("RepoTags (-want +got):\n%s", diff)
	}
	cfg := files[m.Config].data
	sum := sha256.Sum256(cfg)
	if id := "sha256:" + hex.EncodeToString(sum[:]); id != res.ID || m.Config != id[len("sha256:"):]+".json" {
		t.Errorf("config %s has ID %s; Write reported %s", m.Config, id, res.ID)
	}
	var oc ociConfig
	if err := json.Unmarshal(cfg, &oc); err != nil {
		t.Fatal(err)
	}
	if oc.Config.User != "0:0" || oc.Created != "2023-11-14T22:13:20Z" || oc.RootFS.DiffIDs[0] != res.Layer {
		t.Errorf("config: %s", cfg)
	}

	layer := readTar(t, files[m.Layers[0]].data)
	type entry struct {
		Mode     int64
		UID, GID int
	}
	got := map[string]entry{}
	for name, f := range layer {
		got[name] = entry{f.hdr.Mode, f.hdr.Uid, f.hdr.Gid}
		if !f.hdr.ModTime.Equal(epoch) || f.hdr.Uname != "" || f.hdr.Gname != "" {
			t.Errorf("%s: mtime %s, owner %q:%q; want %s and no names", name, f.hdr.ModTime, f.hdr.Uname, f.hdr.Gname, epoch)
		}
	}
	want := map[string]entry{
		"etc/":                      {0o755, 0, 0},
		"etc/passwd":                {0o644, 0, 0},
		"lib/":                      {0o755, 0, 0},
		"lib/x86_64-linux-gnu/":     {0o755, 0, 0},
		"lib/x86_64-linux-gnu/libc": {0o644, 0, 0},
		"speaker":                   {0o755, 0, 0},
		"tmp/":                      {0o1777, 0, 0},
		"usr/":                      {0o755, 0, 0},
		"usr/sbin/":                 {0o755, 0, 0},
		"usr/sbin/nft":              {0o755, 0, 0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
}

func TestSymlinkRefused(t *testing.T) {
	root := fstest.MapFS{"lib64": {Data: []byte("usr/lib64"), Mode: fs.ModeSymlink | 0o777}}
	_, err := Write(io.Discard, root, config())
	if err == nil || !strings.Contains(err.Error(), "lib64") || !strings.Contains(err.Error(), "resolve symlinks") {
		t.Fatalf("a symlink in the tree: got %v, want an error naming it", err)
	}
}

type tarFile struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, b []byte) map[string]tarFile {
	t.Helper()
	out := map[string]tarFile{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarFile{h, data}
	}
}
