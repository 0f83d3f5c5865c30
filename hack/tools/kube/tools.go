//go:build tools

// Package kube pins the Kubernetes control-plane commands built by make.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
