package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// metallbModule is the MetalLB release whose sample configurations
// (configsamples/*.yaml) the converter is tested on. The files are read
// from the Go module cache, never copied into this repository.
const metallbModule = "go.universe.tf/metallb@v0.16.2"

// metallbSamples returns the folder of MetalLB's sample configurations,
// downloading the module as the Makefile downloads the Prometheus
// Operator's. Without it the test is skipped, except in CI.
func metallbSamples(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", metallbModule)
	cmd.Dir = t.TempDir() // outside the module: go.mod and go.sum stay as they are
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if err == nil {
		err = json.Unmarshal(out, &info)
	}
	if err != nil || info.Dir == "" {
		msg := strings.TrimSpace(info.Error + " " + stderr.String())
		if os.Getenv("CI") == "true" {
			t.Fatalf("downloading %s: %v %s", metallbModule, err, msg)
		}
		t.Skipf("skipping: cannot download %s: %v %s", metallbModule, err, msg)
	}
	return filepath.Join(info.Dir, "configsamples")
}

// sampleWant is what each of MetalLB's samples must convert to: how many
// objects, and exactly which warnings. Samples that only advertise refer
// to pools and peers defined elsewhere, which the resolver points out.
var sampleWant = map[string]struct {
	objects  int
	warnings []warn
	check    func(t *testing.T, r *Result)
}{
	"bgpadv_selectspool_by_label.yaml": {objects: 1},
	"bgpadv_selectspool_by_list.yaml": {objects: 1, warnings: []warn{
		{"BGPAdvertisement/advertisement", "spec.ipPools[0]", `IPPool "test-addresspool" does not exist`},
		{"BGPAdvertisement/advertisement", "spec.peers[0]", `BGPPeer "ebgp-single-hop0" does not exist`},
	}},
	"bgpadvertisement_communities_localpref.yaml": {objects: 1, warnings: []warn{
		{"BGPAdvertisement/advertisement", "spec.ipPools[0]", `IPPool "bgp-with-advertisement" does not exist`},
	}},
	"bgpadvertisement_community_alias.yaml": {objects: 1, warnings: []warn{
		{"BGPAdvertisement/advertisement", "spec.ipPools[0]", `IPPool "bgp-with-advertisement" does not exist`},
	}, check: func(t *testing.T, r *Result) {
		adv := r.Objects[0].(*v1alpha1.BGPAdvertisement)
		if !slices.Equal(adv.Spec.Communities, []v1alpha1.Community{"65535:65282"}) {
			t.Errorf("communities %v, want the alias NO_ADVERTISE resolved to 65535:65282", adv.Spec.Communities)
		}
	}},
	"bgpadvertisement_with_node_selector.yaml": {objects: 1, warnings: []warn{
		{"BGPAdvertisement/advertisement", "spec.ipPools[0]", `IPPool "first-pool" does not exist`},
	}, check: func(t *testing.T, r *Result) {
		sel := r.Objects[0].(*v1alpha1.BGPAdvertisement).Spec.NodeSelector
		want := v1alpha1.SelectorRequirement{Key: "kubernetes.io/hostname", Operator: "In", Values: []v1alpha1.LabelValue{"kind-control-plane", "kind-worker"}}
		if sel == nil || len(sel.MatchExpressions) != 1 || sel.MatchExpressions[0].Key != want.Key || !slices.Equal(sel.MatchExpressions[0].Values, want.Values) {
			t.Errorf("nodeSelector %+v, want the two selectors merged into %+v", sel, want)
		}
	}},
	"bgppeer_simple.yaml":          {objects: 1},
	"bgppeer_with_bfdprofile.yaml": {objects: 1, warnings: []warn{
		// The profile becomes the peer's bfd block: nothing to warn of.
	}},
	"bgppeer_with_session_options.yaml": {objects: 1, warnings: []warn{}},
	"bgppeer_with_vrf.yaml": {objects: 1, warnings: []warn{
		{"BGPPeer/peer", "spec.vrf", `not in VRF "red"`},
	}},
	"bgppeer_withsecret.yaml": {objects: 1, warnings: []warn{
		{"BGPPeer/peer-with-secret", "spec.keepaliveTime", "takes 0s only together with a hold time of 0s"},
	}, check: func(t *testing.T, r *Result) {
		want := []SecretRef{{Namespace: "metallb-system", Name: "secretname", UsedBy: "BGPPeer/peer-with-secret"}}
		if !slices.Equal(r.Secrets, want) {
			t.Errorf("secrets %+v, want %+v", r.Secrets, want)
		}
		ref := r.Objects[0].(*v1alpha1.BGPPeer).Spec.PasswordSecretRef
		if ref == nil || ref.Name != "secretname" || ref.Namespace != SecretNamespace {
			t.Errorf("passwordSecretRef %+v, want secretname in %s", ref, SecretNamespace)
		}
	}},
	"deployment_bgp.yaml": {objects: 4, warnings: []warn{
		{"Deployment/nginx", "", "not MetalLB configuration"},
		{"Service/nginx", "", "not MetalLB configuration"},
	}},
	"deployment_l2.yaml": {objects: 2, warnings: []warn{
		{"Deployment/nginx", "", "not MetalLB configuration"},
		{"Service/nginx", "", "not MetalLB configuration"},
	}},
	"ipaddresspool_simple.yaml":        {objects: 1},
	"ipaddresspool_with_selector.yaml": {objects: 1},
	"l2adv_selects_pools_by_list.yaml": {objects: 1, warnings: []warn{
		{"L2Advertisement/example", "spec.ipPools[0]", `IPPool "first-pool" does not exist`},
	}},
	"l2adv_with_node_selector.yaml": {objects: 1},
	"simple_pool_adv_bgp.yaml":      {objects: 2},
	"simple_pool_adv_l2.yaml":       {objects: 2},
}

// TestMetalLBSamples converts every sample configuration of MetalLB and
// has a real API server accept the output, as a user would apply it.
func TestMetalLBSamples(t *testing.T) {
	dir := metallbSamples(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s: %v", dir, err)
	}
	env := testenv.Get(t)
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want, ok := sampleWant[name]
			if !ok {
				t.Fatalf("no expectation for this sample; add it to sampleWant")
			}
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Convert(in)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			if len(r.Objects) != want.objects {
				t.Errorf("%d objects, want %d", len(r.Objects), want.objects)
			}
			checkWarnings(t, r.Warnings, want.warnings)
			if want.check != nil {
				want.check(t, r)
			}
			var buf bytes.Buffer
			if err := r.WriteYAML(&buf); err != nil {
				t.Fatal(err)
			}
			for _, obj := range documents(t, buf.Bytes()) {
				err := env.Client.Create(context.Background(), obj, client.DryRunAll, client.FieldValidation("Strict"))
				if err != nil {
					t.Errorf("API server refused %s %q:\n%v", obj.GetKind(), obj.GetName(), err)
				}
			}
		})
	}
	for name := range sampleWant {
		if !slices.Contains(files, filepath.Join(dir, name)) {
			t.Errorf("sample %s is expected but missing from %s", name, dir)
		}
	}
}

// documents splits WriteYAML's output into objects.
func documents(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, doc)
		}
		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s %q: output has a status", u.GetKind(), u.GetName())
		}
		if _, ok := u.Object["metadata"].(map[string]any)["creationTimestamp"]; ok {
			t.Errorf("%s %q: output has a creationTimestamp", u.GetKind(), u.GetName())
		}
		out = append(out, u)
	}
	return out
}

// TestWrittenObjectsAccepted has the API server check the output of every
// conversion table case, so that the expected YAML in the tables is known
// to be applicable.
func TestWrittenObjectsAccepted(t *testing.T) {
	env := testenv.Get(t)
	var cases []convertCase
	for _, tables := range [][]convertCase{poolCases, l2Cases, bgpAdvCases, peerCases(), otherCases} {
		cases = append(cases, tables...)
	}
	for _, tc := range cases {
		if tc.want == "" {
			continue
		}
		for _, obj := range documents(t, []byte(strings.TrimLeft(tc.want, "\n"))) {
			if err := env.Client.Create(context.Background(), obj, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
				t.Errorf("%s: API server refused %s %q:\n%v", tc.name, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
}
