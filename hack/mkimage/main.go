// Command mkimage writes one of ironlb's images as a docker-archive tarball
// (load it with `docker load -i` or `podman load -i`) from a root filesystem
// tree made by hack/image-rootfs.sh. The image is FROM scratch: one layer,
// the tree, with fixed owners and mtimes (see internal/imagearchive), so the
// same tree, version, revision and epoch give the same image ID.
//
// hack/images.sh runs it for `make images`; the Dockerfiles declare the same
// user, entrypoint, PATH and labels, which a test compares with specs below.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/internal/imagearchive"
)

// Source is the org.opencontainers.image.source label of both images.
const Source = "https://github.com/ironlb/ironlb"

// Path is the PATH both images set: knftables finds nft on it.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec is what an image declares besides its files.
type Spec struct {
	User        string
	Title       string
	Description string
}

// Specs are ironlb's two images. The controller runs as nonroot; the speaker
// as root, with only NET_RAW and NET_ADMIN granted by the chart, because
// capabilities given to a non-root user are not effective.
var Specs = map[string]Spec{
	"controller": {
		User:        "65532:65532",
		Title:       "ironlb-controller",
		Description: "ironlb controller: assigns addresses from IPPools to LoadBalancer Services",
	},
	"speaker": {
		User:        "0:0",
		Title:       "ironlb-speaker",
		Description: "ironlb speaker: announces LoadBalancer addresses (ARP/NDP or BGP) and forwards their traffic with nftables",
	},
}

// Config is the image config of component at version and revision.
func Config(component, version, revision string, created time.Time, arch string, tags []string) (imagearchive.Config, error) {
	s, ok := Specs[component]
	if !ok {
		return imagearchive.Config{}, fmt.Errorf("unknown component %q: give controller or speaker", component)
	}
	return imagearchive.Config{
		RepoTags:     tags,
		Architecture: arch,
		OS:           "linux",
		Created:      created,
		User:         s.User,
		Entrypoint:   []string{"/" + component},
		Env:          []string{"PATH=" + Path},
		Labels: map[string]string{
			"org.opencontainers.image.source":      Source,
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.title":       s.Title,
			"org.opencontainers.image.description": s.Description,
		},
	}, nil
}

func main() {
	var (
		root      = flag.String("root", "", "root filesystem tree of the image (hack/image-rootfs.sh)")
		component = flag.String("component", "", "controller or speaker")
		tag       = flag.String("tag", "", "name docker load gives the image, repository:tag")
		version   = flag.String("version", "", "org.opencontainers.image.version label")
		revision  = flag.String("revision", "", "org.opencontainers.image.revision label (the commit)")
		epoch     = flag.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "creation time and every file's mtime, seconds since 1970 (default: $SOURCE_DATE_EPOCH)")
		out       = flag.String("out", "", "archive to write")
		arch      = flag.String("arch", runtime.GOARCH, "architecture of the binaries in the tree")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: mkimage -root DIR -component NAME -tag REPO:TAG -version V -revision R -epoch SECONDS -out FILE\n\nWrites ironlb's image of that component as a docker-archive tarball.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*root, *component, *tag, *version, *revision, *epoch, *out, *arch); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(root, component, tag, version, revision, epoch, out, arch string) error {
	for name, v := range map[string]string{"-root": root, "-component": component, "-tag": tag, "-version": version, "-revision": revision, "-epoch": epoch, "-out": out} {
		if v == "" {
			return fmt.Errorf("%s is required (mkimage -help lists the flags)", name)
		}
	}
	if !strings.Contains(tag, ":") {
		return fmt.Errorf("-tag %q: give repository:tag", tag)
	}
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("-epoch %q: want seconds since 1970, such as the commit time (git log -1 --format=%%ct): %w", epoch, err)
	}
	c, err := Config(component, version, revision, time.Unix(secs, 0), arch, []string{tag})
	if err != nil {
		return err
	}
	res, err := imagearchive.WriteFile(out, os.DirFS(root), c)
	if err != nil {
		return fmt.Errorf("writing %s from %s: %w", out, root, err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s\t%s\t%d entries\t%d bytes\t%s\n", tag, res.ID, len(res.Files), fi.Size(), out)
	return nil
}
