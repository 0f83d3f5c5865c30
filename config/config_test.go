// Package config_test checks the configuration API against the real
// kube-apiserver: the samples are accepted, every object in
// testdata/invalid.yaml is refused with a message naming its field, and the
// file loader gives the same verdicts.
package config_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configfile"
	"github.com/ironlb/ironlb/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// documents splits a YAML stream into decoded objects.
func documents(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, u)
	}
	return out
}

func newLoader(t *testing.T) *configfile.Loader {
	t.Helper()
	l, err := configfile.New()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSamplesAccepted(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	loader := newLoader(t)
	files, _ := filepath.Glob("samples/*.yaml")
	if len(files) < 6 {
		t.Fatalf("expected at least one sample per kind and pool family, found %v", files)
	}
	var all config.Snapshot
	for _, f := range files {
		snap, err := loader.LoadFile(ctx, f)
		if err != nil {
			t.Errorf("file loader refused sample %s: %v", f, err)
			continue
		}
		all.IPPools = append(all.IPPools, snap.IPPools...)
		all.L2Advertisements = append(all.L2Advertisements, snap.L2Advertisements...)
		all.BGPPeers = append(all.BGPPeers, snap.BGPPeers...)
		all.BGPAdvertisements = append(all.BGPAdvertisements, snap.BGPAdvertisements...)

		for _, obj := range documents(t, f) {
			if err := env.Client.Create(ctx, obj, client.FieldValidation("Strict")); err != nil {
				t.Errorf("API server refused %s %s from %s: %v", obj.GetKind(), obj.GetName(), f, err)
				continue
			}
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
			// What the API server stored, defaults included, must be what
			// the file loader produced from the same document.
			if diff := cmp.Diff(typedSpec(t, obj), loadedSpec(t, loader, obj)); diff != "" {
				t.Errorf("%s %s: spec stored by the API server differs from the file loader's (-server +loader):\n%s", obj.GetKind(), obj.GetName(), diff)
			}
		}
	}
	if _, problems := config.Resolve(all); len(problems) > 0 {
		t.Errorf("the samples together do not resolve: %v", problems.Err())
	}
}

// loadedSpec runs one object through the file loader and returns its spec
// as the loader defaulted it, in the API server's JSON form.
func loadedSpec(t *testing.T, l *configfile.Loader, obj *unstructured.Unstructured) any {
	t.Helper()
	raw := obj.DeepCopy()
	unstructured.RemoveNestedField(raw.Object, "metadata")
	raw.SetName(obj.GetName())
	data, err := yaml.Marshal(raw.Object)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := l.Load(context.Background(), "sample", data)
	if err != nil {
		t.Fatalf("file loader: %v", err)
	}
	var typed any
	switch {
	case len(snap.IPPools) == 1:
		typed = snap.IPPools[0]
	case len(snap.L2Advertisements) == 1:
		typed = snap.L2Advertisements[0]
	case len(snap.BGPPeers) == 1:
		typed = snap.BGPPeers[0]
	case len(snap.BGPAdvertisements) == 1:
		typed = snap.BGPAdvertisements[0]
	default:
		t.Fatalf("file loader returned %+v for one object", snap)
	}
	return specOf(t, typed)
}

// typedSpec decodes what the API server stored into ironlb's Go type, the
// same way the file loader's objects were, and returns its spec.
func typedSpec(t *testing.T, obj *unstructured.Unstructured) any {
	t.Helper()
	typed, err := scheme.Scheme.New(obj.GroupVersionKind())
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, typed); err != nil {
		t.Fatal(err)
	}
	return specOf(t, typed)
}

func specOf(t *testing.T, typed any) any {
	t.Helper()
	b, err := json.Marshal(typed)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := utiljson.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back["spec"]
}

func TestInvalidObjectsRejected(t *testing.T) {
	env := testenv.Get(t)
	loader := newLoader(t)
	objs := documents(t, "testdata/invalid.yaml")
	if len(objs) < 25 {
		t.Fatalf("only %d invalid objects; the table must hold at least 25", len(objs))
	}
	for _, obj := range objs {
		ann := obj.GetAnnotations()
		wantField, wantMsg := ann["test.ironlb.io/field"], ann["test.ironlb.io/message"]
		t.Run(obj.GetKind()+"/"+obj.GetName(), func(t *testing.T) {
			if wantField == "" || wantMsg == "" {
				t.Fatal("the document lacks its test.ironlb.io/field or test.ironlb.io/message annotation")
			}
			ctx := context.Background()
			err := env.Client.Create(ctx, obj.DeepCopy(), client.FieldValidation("Strict"))
			if err == nil {
				_ = env.Client.Delete(ctx, obj)
				t.Fatalf("API server accepted it")
			}
			if msg := err.Error(); !strings.Contains(msg, wantField) || !strings.Contains(msg, wantMsg) {
				t.Errorf("API server error does not name field %q with %q:\n%s", wantField, wantMsg, msg)
			}

			data, _ := yaml.Marshal(obj.Object)
			snap, err := loader.Load(ctx, "invalid.yaml", data)
			if err == nil {
				t.Fatalf("file loader accepted it: %+v", snap)
			}
			if msg := err.Error(); !strings.Contains(msg, wantField) || !strings.Contains(msg, wantMsg) {
				t.Errorf("file loader error does not name field %q with %q:\n%s", wantField, wantMsg, msg)
			}
		})
	}
}

// TestGeneratedFilesFresh fails when the CRDs or the deepcopy code are not
// what controller-gen makes of the current types: run `make generate`.
func TestGeneratedFilesFresh(t *testing.T) {
	gen := filepath.Join(testenv.RepoRoot(), "bin", "controller-gen")
	if _, err := os.Stat(gen); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("controller-gen missing: %v", err)
		}
		t.Skipf("controller-gen missing (run `make tools`): %v", err)
	}
	out := t.TempDir()
	cmd := exec.Command(gen, "object", "crd:crdVersions=v1", "paths=./config/...",
		"output:object:dir="+out, "output:crd:dir="+out)
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	generated, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(generated) != 6 {
		t.Fatalf("controller-gen wrote %v", generated)
	}
	for _, g := range generated {
		committed := filepath.Join("crd", filepath.Base(g))
		if strings.HasSuffix(g, ".go") {
			committed = filepath.Join("v1alpha1", filepath.Base(g))
		}
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(committed)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is stale or missing (run `make generate`): %v", committed, err)
		}
	}
}

// TestChartCRDsSame fails when the Helm chart's CRDs differ from
// config/crd: `make generate` copies them.
func TestChartCRDsSame(t *testing.T) {
	chart := filepath.Join(testenv.RepoRoot(), "charts", "ironlb", "crds")
	want, _ := filepath.Glob(filepath.Join("crd", "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(chart, "*"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("config/crd has %d CRDs, the chart %d (%v): run `make generate`", len(want), len(got), got)
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(chart, filepath.Base(w)))
		if err != nil || string(a) != string(b) {
			t.Errorf("charts/ironlb/crds/%s differs from config/%s or is missing (run `make generate`): %v", filepath.Base(w), w, err)
		}
	}
}
