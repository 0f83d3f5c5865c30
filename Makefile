# ironlb build, test and lab entry points. `make lab` and `make test` set up
# everything a fresh Debian 12 machine lacks: Debian packages (hack/deps.sh,
# as root), then the pinned tools and control plane, built here into bin/.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

BIN := $(CURDIR)/bin
K8S_VERSION := v1.37.1
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37
FUZZ_SCALE ?= 1

export KUBEBUILDER_ASSETS := $(BIN)

.PHONY: deps architecture build generate manifests images image-names image-check test unit fuzz lint tools bench lab lab-failover lab-bgp lab-forwarding lab-faults lab-down clean

# The version every binary reports (ironlb_build_info, kubectl ironlb
# version): the chart's appVersion; the revision is the commit, with -dirty
# for a checkout with changes.
VERSION ?= $(shell sed -n 's/^appVersion: "\(.*\)"$$/\1/p' charts/ironlb/Chart.yaml)
REVISION ?= $(shell git describe --always --dirty --abbrev=40 2>/dev/null || echo unknown)
BUILDINFO := github.com/ironlb/ironlb/internal/buildinfo
GO_LDFLAGS := -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Revision=$(REVISION)

build: ## build the controller, the speaker and the kubectl plugin into bin/
	go build -ldflags '$(GO_LDFLAGS)' -o $(BIN)/controller ./controller
	go build -ldflags '$(GO_LDFLAGS)' -o $(BIN)/speaker ./speaker
	go build -ldflags '$(GO_LDFLAGS)' -o $(BIN)/kubectl-ironlb ./kubectl-ironlb

deps: ## install the Debian packages the lab and the tests need, when missing (root)
	hack/deps.sh

generate: $(BIN)/controller-gen ## regenerate CRDs and deepcopy code from config/v1alpha1, and the chart's copy of the CRDs
	$(BIN)/controller-gen object crd:crdVersions=v1 paths=./config/... output:crd:artifacts:config=config/crd
	rm -f charts/ironlb/crds/*.yaml && cp config/crd/*.yaml charts/ironlb/crds/

test: deps tools lint unit fuzz image-check ## every test: what CI runs

# How the lab (make lab, the lab-* measurements, the e2e suite) runs the
# controller and the speakers: image, from the images of make images, with
# the chart's security context, as a cluster does; or binary, the binaries
# in bin/, quicker to iterate on (make lab LAB_RUNTIME=binary).
LAB_RUNTIME ?= image
LAB_IMAGES := $(if $(filter image,$(LAB_RUNTIME)),images)
export IRONLB_LAB_RUNTIME := $(LAB_RUNTIME)

unit: tools build $(LAB_IMAGES)
	go test -race ./...
	cd e2e && go test -race -count=1 -p 1 -timeout 45m ./... # one lab at a time; never cached, as the tests run the binaries in bin/ and the images in _output/images

# Short fuzz runs of the parsers and the resolver, about ten seconds each,
# counted in executions: a -fuzztime given as a duration can fail with
# "context deadline exceeded" when it runs out (golang/go#75804, fixed in
# Go 1.27). Longer runs: make fuzz FUZZ_SCALE=30
fuzz:
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $$((200000 * $(FUZZ_SCALE)))x ./internal/iprange
	go test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $$((1500 * $(FUZZ_SCALE)))x ./internal/configfile
	go test -run '^$$' -fuzz '^FuzzResolve$$' -fuzztime $$((70000 * $(FUZZ_SCALE)))x ./internal/config
	go test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $$((250000 * $(FUZZ_SCALE)))x ./internal/layer2
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $$((300000 * $(FUZZ_SCALE)))x ./internal/bfd

lint:
	go vet ./...
	cd e2e && go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

tools: $(BIN)/controller-gen $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/etcd $(BIN)/helm $(BIN)/servicemonitor-crd.yaml ## build the pinned tools and control plane

$(BIN)/helm: hack/tools/helm/go.mod hack/tools/helm/go.sum
	cd hack/tools/helm && go build -o $@ helm.sh/helm/v3/cmd/helm

# The Prometheus Operator's ServiceMonitor CRD, from its pinned Go module,
# so the chart's optional ServiceMonitors can be checked against a real API
# server.
PROMETHEUS_OPERATOR := github.com/prometheus-operator/prometheus-operator@v0.85.0
$(BIN)/servicemonitor-crd.yaml:
	mkdir -p $(BIN)
	dir=$$(go mod download -json $(PROMETHEUS_OPERATOR) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$dir" && cp "$$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" $@ && chmod 644 $@

$(BIN)/controller-gen: hack/tools/gen/go.mod hack/tools/gen/go.sum
	cd hack/tools/gen && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(BIN)/kube-apiserver: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && go build -ldflags "$(K8S_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(BIN)/kube-controller-manager: hack/tools/kube/go.mod hack/tools/kube/go.sum
	cd hack/tools/kube && go build -ldflags "$(K8S_LDFLAGS)" -o $@ k8s.io/kubernetes/cmd/kube-controller-manager

# Debian's etcd (package etcd-server) works with this kube-apiserver.
$(BIN)/etcd: | deps
	@command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server (make deps does, as root)"; exit 1; }
	mkdir -p $(BIN) && ln -sf "$$(command -v etcd)" $@

architecture: deps ## draw docs/architecture.svg from docs/architecture.dot (Graphviz)
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg

bench: ## run the benchmarks and write their figures to docs/performance.md
	hack/bench.sh docs/performance.md

# Every rendering uses the same memberlist key: MEMBERLIST_KEY if set, else
# _output/manifests/memberlist.key, made on the first run (speakers with
# different keys cannot talk to each other).
manifests: $(BIN)/helm ## render the chart into plain manifests in _output/manifests/ironlb.yaml
	mkdir -p _output/manifests
	test -s _output/manifests/memberlist.key || (umask 077; head -c 32 /dev/urandom | base64 > _output/manifests/memberlist.key)
	$(BIN)/helm template ironlb charts/ironlb --namespace ironlb-system --include-crds \
		--set memberlist.key=$${MEMBERLIST_KEY:-$$(cat _output/manifests/memberlist.key)} > _output/manifests/ironlb.yaml
	@echo "wrote _output/manifests/ironlb.yaml (apply with: kubectl create namespace ironlb-system; kubectl apply --server-side -f _output/manifests/ironlb.yaml)"

# The chart's default values name these images: the repository below and
# the chart's appVersion as the tag. make images builds them FROM scratch
# without pulling anything (hack/images.sh): docker-archive tarballs in
# _output/images/, loaded into the engine when one answers. docs/install.md
# tells how to move them to an air-gapped cluster or a private registry.
IMAGE_REPO ?= ghcr.io/ironlb
IMAGE_TAG ?= $(VERSION)
IMAGES_DIR := $(CURDIR)/_output/images

images: ## build the controller and speaker images into _output/images/ (and load them, when a container engine answers)
	VERSION='$(VERSION)' REVISION='$(REVISION)' hack/images.sh $(IMAGES_DIR) $(IMAGE_REPO) $(IMAGE_TAG)
	@if docker info >/dev/null 2>&1; then \
		for c in controller speaker; do docker load -i $(IMAGES_DIR)/$$c.tar; done; \
	else \
		echo "no container engine answers here, so nothing was loaded: load the archives with docker load -i (or podman load -i) $(IMAGES_DIR)/controller.tar and speaker.tar"; \
	fi

# The image names make images tags, one a line (a test compares them with
# what the chart renders).
image-names:
	@echo $(IMAGE_REPO)/controller:$(IMAGE_TAG)
	@echo $(IMAGE_REPO)/speaker:$(IMAGE_TAG)

# What can be checked of the images without Docker: the binaries build
# static, and nft and the speaker run from exactly the files the speaker
# image gathers (in a chroot, root).
image-check:
	hack/check-speaker-rootfs.sh

# LAB_ARGS adds flags of e2e/cmd/lab (-name, -nodes, -dir) to make lab;
# LAB_RUNTIME (above) chooses images or binaries.
LAB_ARGS ?=
lab: deps tools build $(LAB_IMAGES) ## bring up the lab, run the demo, stay up until interrupted (root)
	cd e2e && go run ./cmd/lab -dir $(CURDIR)/_output/lab -bin $(BIN) $(LAB_ARGS) up

lab-failover: deps tools build $(LAB_IMAGES) ## measure layer 2 failover on a lab and write docs/failover.md (root, about ten minutes)
	cd e2e && go run ./cmd/lab -name ilbm -dir $(CURDIR)/_output/lab-failover -bin $(BIN) -out $(CURDIR)/docs/failover.md measure

lab-bgp: deps tools build $(LAB_IMAGES) ## measure BGP on a lab and write docs/bgp.md (root, about half an hour)
	cd e2e && go run ./cmd/lab -name ilbb -dir $(CURDIR)/_output/lab-bgp -bin $(BIN) -trials 10 -out $(CURDIR)/docs/bgp.md measure-bgp

lab-forwarding: deps tools build $(LAB_IMAGES) ## measure HTTP through failovers and LB-vs-direct throughput on a lab, write docs/forwarding-lab.md (root, under ten minutes)
	cd e2e && go run ./cmd/lab -name ilbf -dir $(CURDIR)/_output/lab-forwarding -bin $(BIN) -trials 5 -out $(CURDIR)/docs/forwarding-lab.md measure-forwarding

lab-faults: deps tools build $(LAB_IMAGES) ## measure what a client sees through restarts, partitions, a pulled cable, a frozen API server and key rotation on a lab, write docs/faults.md (root, about 40 minutes)
	cd e2e && go run ./cmd/lab -name ilbq -dir $(CURDIR)/_output/lab-faults -bin $(BIN) -trials 10 -out $(CURDIR)/docs/faults.md measure-faults

lab-down: deps ## remove what a killed lab left behind (root)
	cd e2e && go run ./cmd/lab down

clean:
	rm -rf $(BIN)
