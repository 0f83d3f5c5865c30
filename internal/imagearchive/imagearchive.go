// Package imagearchive writes a container image as a docker-archive tarball
// (the format of `docker save`, read by `docker load` and `podman load`)
// from a root filesystem tree, byte for byte the same every time it is given
// the same tree and the same Config.
//
// What makes it reproducible: the one layer lists its entries sorted by
// path; every entry is owned by 0:0 with no user or group names and carries
// Config.Created as its modification time; modes are reduced to 0755 for
// directories and executables and 0644 for other files (a sticky directory
// such as /tmp keeps 01777); the image config is JSON with sorted keys.
// Neither the umask, the clock nor the user who runs the build shows in the
// output, so the image ID (the SHA-256 of the config, which names the
// layer's SHA-256) is a function of the files' contents and the Config.
//
// The tree may hold directories and regular files only: symlinks would make
// the image depend on how the build machine lays out /lib, so the tree's
// maker is expected to have resolved them (hack/rootfs.sh does).
package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Config is what the image declares besides its files.
type Config struct {
	// RepoTags are the names docker load gives the image (repo:tag).
	RepoTags []string
	// Architecture and OS of the binaries, as Go spells them (amd64, linux).
	Architecture, OS string
	// Created is the image's creation time and every file's mtime.
	Created    time.Time
	User       string
	Entrypoint []string
	Env        []string
	Labels     map[string]string
}

// Result tells what was written.
type Result struct {
	// ID is the image ID docker reports: sha256:<hex of the config>.
	ID string
	// Layer is the SHA-256 of the uncompressed layer (its diff ID).
	Layer string
	// Files are the paths in the layer, sorted, directories with a
	// trailing slash.
	Files []string
}

// ociConfig is the image config as the OCI image spec names its fields.
type ociConfig struct {
	Created      string        `json:"created"`
	Architecture string        `json:"architecture"`
	OS           string        `json:"os"`
	Config       runConfig     `json:"config"`
	RootFS       rootFS        `json:"rootfs"`
	History      []historyItem `json:"history"`
}

type runConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	WorkingDir string            `json:"WorkingDir"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type historyItem struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Write writes the image of the tree at root, described by c, to w.
func Write(w io.Writer, root fs.FS, c Config) (Result, error) {
	if c.Architecture == "" || c.OS == "" {
		return Result{}, errors.New("imagearchive: Config needs Architecture and OS")
	}
	// The layer goes into the archive as a file of known size, so it is
	// built first, in memory: images here are tens of megabytes.
	layer, files, err := Layer(root, c.Created)
	if err != nil {
		return Result{}, err
	}
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])

	created := c.Created.UTC().Format(time.RFC3339)
	cfg, err := json.Marshal(ociConfig{
		Created:      created,
		Architecture: c.Architecture,
		OS:           c.OS,
		Config: runConfig{
			User:       c.User,
			Env:        c.Env,
			Entrypoint: c.Entrypoint,
			WorkingDir: "/",
			Labels:     c.Labels,
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{"sha256:" + layerHex}},
		History: []historyItem{{Created: created, CreatedBy: "ironlb hack/mkimage: one layer from a root filesystem tree"}},
	})
	if err != nil {
		return Result{}, err
	}
	cfgSum := sha256.Sum256(cfg)
	cfgHex := hex.EncodeToString(cfgSum[:])
	manifest, err := json.Marshal([]manifestEntry{{
		Config:   cfgHex + ".json",
		RepoTags: c.RepoTags,
		Layers:   []string{layerHex + "/layer.tar"},
	}})
	if err != nil {
		return Result{}, err
	}

	tw := tar.NewWriter(w)
	for _, e := range []struct {
		name string
		data []byte
	}{
		{layerHex + "/", nil},
		{layerHex + "/layer.tar", layer},
		{cfgHex + ".json", cfg},
		{"manifest.json", manifest},
	} {
		if err := writeEntry(tw, e.name, e.data, c.Created, 0o644); err != nil {
			return Result{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Result{}, err
	}
	return Result{ID: "sha256:" + cfgHex, Layer: "sha256:" + layerHex, Files: files}, nil
}

// Layer returns the tree at root as an uncompressed tar, entries sorted and
// normalised as the package doc says, and the paths it holds.
func Layer(root fs.FS, mtime time.Time) ([]byte, []string, error) {
	var entries []string
	modes := map[string]fs.FileMode{}
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case info.Mode().IsDir():
			entries = append(entries, p+"/")
		case info.Mode().IsRegular():
			entries = append(entries, p)
		default:
			return fmt.Errorf("imagearchive: %s is a %s; the tree may hold only directories and regular files (resolve symlinks when gathering it)", p, info.Mode().Type())
		}
		modes[p] = info.Mode()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(entries)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if e[len(e)-1] == '/' {
			mode := int64(0o755)
			if modes[e[:len(e)-1]]&fs.ModeSticky != 0 {
				mode = 0o1777
			}
			if err := writeEntry(tw, e, nil, mtime, mode); err != nil {
				return nil, nil, err
			}
			continue
		}
		data, err := fs.ReadFile(root, e)
		if err != nil {
			return nil, nil, err
		}
		mode := int64(0o644)
		if modes[e]&0o111 != 0 {
			mode = 0o755
		}
		if err := writeEntry(tw, e, data, mtime, mode); err != nil {
			return nil, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), entries, nil
}

// writeEntry writes a directory (name ends in /) or a regular file.
func writeEntry(tw *tar.Writer, name string, data []byte, mtime time.Time, mode int64) error {
	h := &tar.Header{
		Name:    name,
		Mode:    mode,
		ModTime: mtime.UTC().Truncate(time.Second),
	}
	if name[len(name)-1] == '/' {
		h.Typeflag = tar.TypeDir
	} else {
		h.Typeflag = tar.TypeReg
		h.Size = int64(len(data))
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("imagearchive: writing %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("imagearchive: writing %s: %w", name, err)
	}
	return nil
}

// WriteFile writes the image to the file at path, through a temporary file
// beside it, so a failed build leaves no half-written archive.
func WriteFile(path string, root fs.FS, c Config) (Result, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".imagearchive-*")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(f.Name())
	r, err := Write(f, root, c)
	if err != nil {
		f.Close()
		return Result{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return Result{}, err
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	return r, os.Rename(f.Name(), path)
}
