// Package migrate converts a MetalLB configuration (its metallb.io custom
// resources, as `kubectl get -o yaml` prints them or as they were written
// by hand) into ironlb's configuration objects. It is pure: bytes in,
// objects and warnings out.
//
// The mapping is the one docs/migrating-from-metallb.md describes field by
// field. What ironlb cannot express is never dropped in silence: every such
// field becomes a Warning naming the MetalLB object and field and saying
// what ironlb does instead. Input that MetalLB itself would refuse (bad
// YAML, wrong types, invalid addresses or timers) is an error naming the
// document, the object and the field.
//
// MetalLB's objects are namespaced and ironlb's are cluster-scoped, so two
// MetalLB objects of one kind with the same name in different namespaces
// cannot both be converted; that is an error naming both. Every converted
// object is checked against ironlb's CRD schema before it is returned, so
// what Convert returns, the API server accepts; the objects are also run
// through ironlb's resolver, whose complaints (overlapping pools, references
// to objects the input does not hold) become warnings.
//
// MetalLB's types are mirrored by small local structs (metallb.go) rather
// than imported, which keeps MetalLB's dependency tree out of ironlb.
package migrate

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// SecretNamespace is the namespace converted BGPPeers expect their password
// Secrets in: the namespace the ironlb chart is documented to be installed
// in. The speakers may read Secrets only there and in the namespaces listed
// in the chart value speaker.bgp.passwordSecretNamespaces.
const SecretNamespace = "ironlb-system"

// Result is what a conversion produced.
type Result struct {
	// Objects are ironlb objects (*v1alpha1.IPPool, *v1alpha1.L2Advertisement,
	// *v1alpha1.BGPAdvertisement, *v1alpha1.BGPPeer) with TypeMeta set,
	// ordered by kind in that order and then by name.
	Objects []client.Object
	// Warnings are in the order of the input documents, followed by what
	// ironlb's resolver has to say about the converted objects together.
	Warnings []Warning
	// Secrets are the MetalLB password Secrets that converted BGPPeers
	// need, sorted by namespace and name.
	Secrets []SecretRef
}

// Warning is something of the input that the output does not carry over
// exactly.
type Warning struct {
	// Object is the MetalLB object as Kind/name ("BGPPeer/peer1"), or, for
	// what ironlb's resolver says about the output, the ironlb object.
	Object string
	// Field is the path of the field concerned ("spec.bfdProfile"), or
	// empty when the warning is about the whole object.
	Field string
	// Message says what ironlb does instead, or that the value is dropped.
	Message string
}

func (w Warning) String() string {
	if w.Field == "" {
		return w.Object + ": " + w.Message
	}
	return w.Object + ": " + w.Field + ": " + w.Message
}

// SecretRef is a Secret holding a BGP password that MetalLB used. Namespace
// and Name are where MetalLB read it from. The converted BGPPeers refer to a
// Secret of the same Name in SecretNamespace, key "password" (the key MetalLB
// reads too), which the user must create by copying this one.
type SecretRef struct {
	Namespace, Name string
	// UsedBy lists the converted objects that refer to the Secret, as
	// Kind/name separated by ", ".
	UsedBy string
}

// Convert reads MetalLB objects from a stream of YAML documents (a document
// may also be a List of them) and converts them to ironlb objects.
// Documents of other kinds are skipped with a warning. On error the Result
// is nil; the error is an *InputError where one document is at fault.
func Convert(input []byte) (*Result, error) {
	objs, err := decodeStream(input)
	if err != nil {
		return nil, err
	}
	c := newConverter()
	if err := c.run(objs); err != nil {
		return nil, err
	}
	return c.result()
}

// WriteYAML writes the objects as a stream of YAML documents separated by
// "---", without status and without an empty creationTimestamp.
func (r *Result) WriteYAML(w io.Writer) error {
	var buf bytes.Buffer
	for i, o := range r.Objects {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return fmt.Errorf("%s %q: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		cleanForOutput(m)
		b, err := yaml.Marshal(m)
		if err != nil {
			return fmt.Errorf("%s %q: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// cleanForOutput removes from an object's map what a user should not apply:
// the status and the null creationTimestamp of an object never stored.
func cleanForOutput(m map[string]any) {
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		if md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
	}
}

// kindOrder is the order of kinds in Result.Objects: pools first, the
// BGPPeers last, since the migration guide applies those last.
var kindOrder = []string{v1alpha1.KindIPPool, v1alpha1.KindL2Advertisement, v1alpha1.KindBGPAdvertisement, v1alpha1.KindBGPPeer}

func compareObjects(a, b client.Object) int {
	ka := slices.Index(kindOrder, a.GetObjectKind().GroupVersionKind().Kind)
	kb := slices.Index(kindOrder, b.GetObjectKind().GroupVersionKind().Kind)
	return cmp.Or(cmp.Compare(ka, kb), strings.Compare(a.GetName(), b.GetName()))
}
