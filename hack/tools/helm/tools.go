//go:build tools

// Package tools pins Helm, which renders and lints the chart in
// charts/ironlb; `make tools` builds it into bin/.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
