// Package configfile reads ironlb's configuration objects from a
// multi-document YAML file (for --config-file: static setups and the lab).
// Every document goes through the CRD schema in-process (internal/crdschema),
// so a file rejects exactly what the API server would reject. Like the
// resolver, the loader keeps the good objects and reports the bad ones.
package configfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/v1alpha1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/crdschema"
)

// DocumentError says why one document of a file was refused.
type DocumentError struct {
	File  string
	Index int // 1-based position of the document in the file
	Line  int // 1-based line the document starts on
	Kind  string
	Name  string
	// Fields holds schema errors, each with its field path; Err anything else.
	Fields field.ErrorList
	Err    error
}

func (e *DocumentError) Error() string {
	where := fmt.Sprintf("%s:%d: document %d", e.File, e.Line, e.Index)
	if e.Kind != "" {
		where += fmt.Sprintf(", %s %q", e.Kind, e.Name)
	}
	if e.Err != nil {
		return where + ": " + e.Err.Error()
	}
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.Error()
	}
	return where + ": " + strings.Join(msgs, "; ")
}

func (e *DocumentError) Unwrap() error { return e.Err }

// ErrUnknownKind is wrapped by the error of a document whose apiVersion and
// kind are not one of ironlb's configuration kinds.
var ErrUnknownKind = errors.New("unknown kind")

// Loader reads configuration files. It is safe for concurrent use.
type Loader struct {
	validator *crdschema.Validator
}

// New returns a Loader validating with ironlb's CRDs.
func New() (*Loader, error) {
	v, err := crdschema.New()
	if err != nil {
		return nil, fmt.Errorf("loading the CRD schemas: %w", err)
	}
	return &Loader{validator: v}, nil
}

// LoadFile reads and parses the file at path.
func (l *Loader) LoadFile(ctx context.Context, path string) (config.Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Snapshot{}, err
	}
	return l.Load(ctx, path, data)
}

// Load parses a file's contents; name is used in errors. It returns the
// objects of every valid document and, joined, one *DocumentError for each
// document that was refused.
func (l *Loader) Load(ctx context.Context, name string, data []byte) (config.Snapshot, error) {
	var snap config.Snapshot
	var errs []error
	seen := map[string]bool{} // "Kind/name"
	for _, doc := range splitDocuments(data) {
		derr := &DocumentError{File: name, Index: doc.index, Line: doc.line}
		if err := l.loadDocument(ctx, doc.text, &snap, derr, seen); err != nil {
			errs = append(errs, err)
		}
	}
	return snap, errors.Join(errs...)
}

func (l *Loader) loadDocument(ctx context.Context, text []byte, snap *config.Snapshot, derr *DocumentError, seen map[string]bool) error {
	fail := func(err error) error { derr.Err = err; return derr }
	js, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		return fail(fmt.Errorf("not valid YAML: %w", err))
	}
	// Numbers become int64 where integral, as the API server decodes them.
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil || obj == nil {
		return fail(errors.New("a document must be a mapping with apiVersion, kind, metadata and spec"))
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	derr.Kind = kind
	derr.Name, _ = meta["name"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	gvk := gv.WithKind(kind)
	// NodeAnnouncements are the speakers' reports, not configuration.
	if err != nil || !l.validator.Known(gvk) || kind == v1alpha1.KindNodeAnnouncement {
		derr.Kind = ""
		return fail(fmt.Errorf("%w %q of apiVersion %q: allowed are %s, %s, %s and %s of %s", ErrUnknownKind, kind, apiVersion,
			v1alpha1.KindIPPool, v1alpha1.KindL2Advertisement, v1alpha1.KindBGPPeer, v1alpha1.KindBGPAdvertisement, v1alpha1.GroupVersion))
	}
	if fe := l.validator.Validate(ctx, gvk, obj); len(fe) > 0 {
		derr.Fields = fe
		return derr
	}
	key := kind + "/" + derr.Name
	if seen[key] {
		return fail(fmt.Errorf("a %s named %q appears earlier in the file; names must be unique", kind, derr.Name))
	}
	if err := appendObject(snap, kind, obj); err != nil {
		// The schema has checked every field, so this is a bug, not a
		// user error; say so rather than blame the file.
		return fail(fmt.Errorf("internal error converting a validated object: %w", err))
	}
	seen[key] = true
	return nil
}

// appendObject converts a validated object to its Go type and adds it to
// the snapshot; on error the snapshot is unchanged.
func appendObject(snap *config.Snapshot, kind string, obj map[string]any) error {
	convert := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation
	switch kind {
	case v1alpha1.KindIPPool:
		var o v1alpha1.IPPool
		if err := convert(obj, &o, true); err != nil {
			return err
		}
		snap.IPPools = append(snap.IPPools, o)
	case v1alpha1.KindL2Advertisement:
		var o v1alpha1.L2Advertisement
		if err := convert(obj, &o, true); err != nil {
			return err
		}
		snap.L2Advertisements = append(snap.L2Advertisements, o)
	case v1alpha1.KindBGPPeer:
		var o v1alpha1.BGPPeer
		if err := convert(obj, &o, true); err != nil {
			return err
		}
		snap.BGPPeers = append(snap.BGPPeers, o)
	case v1alpha1.KindBGPAdvertisement:
		var o v1alpha1.BGPAdvertisement
		if err := convert(obj, &o, true); err != nil {
			return err
		}
		snap.BGPAdvertisements = append(snap.BGPAdvertisements, o)
	default:
		return fmt.Errorf("no Go type for kind %q", kind)
	}
	return nil
}

type document struct {
	index int // 1-based position in the stream
	line  int // 1-based line of its first content; 0 while it has none
	text  []byte
}

// splitDocuments cuts a YAML stream at document markers: "---" (alone or
// followed by blanks and more content) starts a document, "..." alone ends
// one. Documents holding only comments and blank lines are dropped but still
// counted, so positions match what an editor shows.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{index: 1}
	ended := false     // a "..." closed the current document
	sawMarker := false // a "---" or "..." came before
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		t := bytes.TrimRight(line, "\r\n")
		startsDoc := bytes.HasPrefix(t, []byte("---")) && (len(t) == 3 || t[3] == ' ' || t[3] == '\t')
		endsDoc := bytes.Equal(bytes.TrimRight(t, " \t"), []byte("..."))
		if startsDoc || endsDoc || (ended && hasContent(line)) {
			if cur.line != 0 {
				docs = append(docs, cur)
			}
			// A marker after only comments at the top of the file, or
			// right after a "...", begins the document already counted.
			if cur.line != 0 || !(ended || !sawMarker) {
				cur = document{index: cur.index + 1}
			} else {
				cur.text = nil
			}
			ended = endsDoc
			sawMarker = true
			switch {
			case startsDoc:
				// What follows the marker belongs to the document; blank
				// the marker so columns stay where the user wrote them.
				line = append([]byte("   "), line[3:]...)
			case endsDoc:
				continue
			}
		}
		if cur.line == 0 && hasContent(line) {
			cur.line = i + 1
		}
		cur.text = append(cur.text, line...)
	}
	if cur.line != 0 {
		docs = append(docs, cur)
	}
	return docs
}

func hasContent(line []byte) bool {
	l := bytes.TrimSpace(line)
	return len(l) > 0 && l[0] != '#'
}
