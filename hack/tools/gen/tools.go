//go:build tools

// Package gen pins the code generators used by `make generate`.
package gen

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
