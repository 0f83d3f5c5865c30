// Package images checks ironlb's container images as a user runs them: it
// builds them as `make images` does (hack/images.sh, no registry pulls),
// loads them into a container engine and runs them with the security
// context the chart sets. Its tests are all in _test files.
//
// The engine: one that already answers `docker info`, else a private
// dockerd this package starts (Debian's docker.io, as root, vfs storage, no
// iptables, no bridge) with its own socket, data and exec roots under a
// temporary folder, stopped and removed when the tests end. Without one,
// the tests that run containers skip and say why; with CI=true they fail.
package images
