// Package crd embeds the generated CustomResourceDefinitions of ironlb, so
// the binaries can validate a configuration file with the very schema the
// API server uses.
package crd

import "embed"

// FS holds the CRD manifests, one file per kind.
//
//go:embed ironlb.io_*.yaml
var FS embed.FS
