package crdschema

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/crd"
)

// TestCRDsAcceptable runs the API server's own CRD validation, CEL cost
// estimates included, so a rule too costly to install fails here in a
// second rather than in the integration tests.
func TestCRDsAcceptable(t *testing.T) {
	files, _ := fs.Glob(crd.FS, "*.yaml")
	if len(files) != 5 {
		t.Fatalf("expected 5 CRDs, found %v", files)
	}
	for _, f := range files {
		data, _ := fs.ReadFile(crd.FS, f)
		var v1 apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &v1); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		v1.Status.StoredVersions = []string{v1.Spec.Versions[0].Name}
		var in apiextensions.CustomResourceDefinition
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &in, nil); err != nil {
			t.Fatal(err)
		}
		for _, err := range validation.ValidateCustomResourceDefinition(context.Background(), &in) {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestValidate(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	gvk := schema.GroupVersionKind{Group: "ironlb.io", Version: "v1alpha1", Kind: "BGPPeer"}
	obj := map[string]any{
		"apiVersion": "ironlb.io/v1alpha1", "kind": "BGPPeer",
		"metadata": map[string]any{"name": "p", "namespace": "ignored-for-cluster-scope"},
		"spec":     map[string]any{"peerAddress": "198.51.100.1", "peerASN": int64(64500), "myASN": int64(64512)},
	}
	if errs := v.Validate(context.Background(), gvk, obj); len(errs) > 0 {
		t.Fatalf("valid peer refused: %v", errs.ToAggregate())
	}
	spec := obj["spec"].(map[string]any)
	if spec["peerPort"] != int64(179) || spec["holdTime"] != "90s" || spec["maxReceivedPrefixes"] != int64(1000) {
		t.Errorf("defaults not applied: %v", spec)
	}

	// The router's AS: exactly one of peerASN and dynamicASN.
	for _, c := range []struct {
		name string
		set  map[string]any
		want []string // empty: valid
	}{
		{"dynamic external", map[string]any{"peerASN": nil, "dynamicASN": "external"}, nil},
		{"both", map[string]any{"dynamicASN": "internal"}, []string{"set exactly one of peerASN and dynamicASN"}},
		{"neither", map[string]any{"peerASN": nil}, []string{"set exactly one of peerASN and dynamicASN"}},
		{"unknown dynamic", map[string]any{"peerASN": nil, "dynamicASN": "any"}, []string{"spec.dynamicASN", "internal", "external"}},
		{"connect time", map[string]any{"connectTime": "0s"}, []string{"spec.connectTime", "from 1s to 65535s"}},
		{"received prefixes", map[string]any{"maxReceivedPrefixes": int64(0)}, []string{"spec.maxReceivedPrefixes"}},
	} {
		o := map[string]any{"apiVersion": "ironlb.io/v1alpha1", "kind": "BGPPeer", "metadata": map[string]any{"name": "p"},
			"spec": map[string]any{"peerAddress": "198.51.100.1", "peerASN": int64(64500), "myASN": int64(64512)}}
		sp := o["spec"].(map[string]any)
		for k, val := range c.set {
			if val == nil {
				delete(sp, k)
			} else {
				sp[k] = val
			}
		}
		msg := v.Validate(context.Background(), gvk, o).ToAggregate()
		switch {
		case len(c.want) == 0 && msg != nil:
			t.Errorf("%s: refused: %v", c.name, msg)
		case len(c.want) > 0 && msg == nil:
			t.Errorf("%s: accepted, want %q", c.name, c.want)
		}
		for _, w := range c.want {
			if msg != nil && !strings.Contains(msg.Error(), w) {
				t.Errorf("%s: errors %q lack %q", c.name, msg, w)
			}
		}
	}

	spec["holdTime"] = "2s"
	spec["extra"] = true
	errs := v.Validate(context.Background(), gvk, obj)
	msg := errs.ToAggregate().Error()
	for _, want := range []string{"spec.extra", "unknown field", "spec.holdTime", "from 3s to 65535s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors %q lack %q", msg, want)
		}
	}
	if errs := v.Validate(context.Background(), schema.GroupVersionKind{Group: "ironlb.io", Version: "v1alpha1", Kind: "Pool"}, obj); len(errs) != 1 || !strings.Contains(errs[0].Error(), "IPPool") {
		t.Errorf("unknown kind: got %v", errs)
	}
}
