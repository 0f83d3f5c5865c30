package migrate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// InputError says which document of the input, and which field of it, is
// at fault.
type InputError struct {
	Document int // 1-based position of the document in the stream
	Item     int // 1-based position inside a List document; 0 otherwise
	// Kind, Namespace and Name identify the object, as far as they could
	// be read.
	Kind, Namespace, Name string
	// Field is the path of the field at fault (MetalLB's spelling), or
	// empty when the whole document is.
	Field string
	Err   error
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString(e.where())
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *InputError) Unwrap() error { return e.Err }

// where names the document and object: `document 2, item 1, BGPPeer "metallb-system/peer"`.
func (e *InputError) where() string {
	s := fmt.Sprintf("document %d", e.Document)
	if e.Item > 0 {
		s += fmt.Sprintf(", item %d", e.Item)
	}
	if e.Kind != "" {
		s += ", " + e.Kind
		switch {
		case e.Namespace != "" && e.Name != "":
			s += fmt.Sprintf(" %q", e.Namespace+"/"+e.Name)
		case e.Name != "":
			s += fmt.Sprintf(" %q", e.Name)
		}
	}
	return s
}

// ErrLegacyConfigMap is wrapped by the error for MetalLB's configuration in
// the ConfigMap format of MetalLB v0.12 and older.
var ErrLegacyConfigMap = errors.New("MetalLB's legacy ConfigMap configuration")

// source is where an object came from.
type source struct {
	doc, item             int
	kind, namespace, name string
}

func (s source) fail(field string, err error) *InputError {
	return &InputError{Document: s.doc, Item: s.item, Kind: s.kind, Namespace: s.namespace, Name: s.name, Field: field, Err: err}
}

func (s source) failf(field, format string, args ...any) *InputError {
	return s.fail(field, fmt.Errorf(format, args...))
}

// ref is the object as warnings name it: Kind/name.
func (s source) ref() string { return s.kind + "/" + s.name }

// object is one decoded document (or List item).
type object struct {
	src        source
	apiVersion string
	meta       metav1.ObjectMeta
	fields     map[string]any // the whole document, numbers as json.Number
	// spec is a pointer to the spec struct of a MetalLB kind (metallb.go),
	// nil for other kinds.
	spec any
	// unknown holds the paths of fields that the spec struct does not
	// have; they were not decoded.
	unknown []string
}

// maxItems bounds the documents and List items read, so that a hostile
// input cannot make the converter allocate without limit.
const maxItems = 100000

// decodeStream splits the input into documents and decodes each one.
func decodeStream(input []byte) ([]*object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(input)))
	var out []*object
	for doc := 1; ; doc++ {
		chunk, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		src := source{doc: doc}
		if err != nil {
			return nil, src.fail("", fmt.Errorf("not valid YAML: %w", err))
		}
		v, err := parseYAML(chunk)
		if err != nil {
			return nil, src.fail("", err)
		}
		if v == nil {
			continue // only comments
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, src.failf("", "a document must be an object with apiVersion and kind, not %s", jsonKind(v))
		}
		if isList(m) {
			items, ok := m["items"].([]any)
			if !ok && m["items"] != nil {
				return nil, src.failf("items", "must be a list, not %s", jsonKind(m["items"]))
			}
			listVersion, _ := m["apiVersion"].(string)
			listKind, _ := m["kind"].(string)
			for i, it := range items {
				isrc := source{doc: doc, item: i + 1}
				im, ok := it.(map[string]any)
				if !ok {
					return nil, isrc.failf("", "a List item must be an object with apiVersion and kind, not %s", jsonKind(it))
				}
				// Items of a typed list (IPAddressPoolList) may leave out
				// their apiVersion and kind.
				if k := strings.TrimSuffix(listKind, "List"); k != "" && listKind != "List" {
					if _, ok := im["kind"]; !ok {
						im["kind"] = k
					}
					if _, ok := im["apiVersion"]; !ok {
						im["apiVersion"] = listVersion
					}
				}
				if isList(im) {
					return nil, isrc.failf("", "a List inside a List is not supported")
				}
				o, err := decodeObject(isrc, im)
				if err != nil {
					return nil, err
				}
				out = append(out, o)
				if len(out) > maxItems {
					return nil, isrc.failf("", "more than %d objects", maxItems)
				}
			}
			continue
		}
		o, err := decodeObject(src, m)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
		if len(out) > maxItems {
			return nil, src.failf("", "more than %d objects", maxItems)
		}
	}
}

// parseYAML turns one YAML document into JSON values (numbers as
// json.Number, so that they are decoded later exactly as written).
func parseYAML(chunk []byte) (v any, err error) {
	js, err := yaml.YAMLToJSONStrict(chunk)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	return v, nil
}

func isList(m map[string]any) bool {
	kind, _ := m["kind"].(string)
	_, hasItems := m["items"]
	return kind == "List" || (strings.HasSuffix(kind, "List") && hasItems)
}

// decodeObject reads apiVersion, kind and metadata and, for MetalLB's
// kinds, the spec.
func decodeObject(src source, m map[string]any) (*object, error) {
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	src.kind = kind
	if md, ok := m["metadata"].(map[string]any); ok {
		src.name, _ = md["name"].(string)
		src.namespace, _ = md["namespace"].(string)
	}
	if apiVersion == "" || kind == "" {
		return nil, src.failf("", "every document needs a string apiVersion and kind")
	}
	o := &object{src: src, apiVersion: apiVersion, fields: m}
	if md, ok := m["metadata"]; ok {
		if err := decodeInto(md, &o.meta); err != nil {
			return nil, typeError(src, "metadata", err)
		}
	}
	group, version, _ := strings.Cut(apiVersion, "/")
	if group != metallbGroup {
		return o, nil
	}
	spec, ok := specType(kind, version)
	if spec == nil {
		return o, nil // a MetalLB kind this converter does not read
	}
	if !ok {
		return nil, src.failf("apiVersion", "%s of %s is not a version this converter reads (%s)", apiVersion, kind, supportedVersions(kind))
	}
	if src.name == "" {
		return nil, src.failf("metadata.name", "required")
	}
	o.spec = spec
	specFields := m["spec"]
	if specFields == nil {
		return o, nil
	}
	o.unknown = pruneUnknown(specFields, reflect.TypeOf(spec), "spec")
	if err := decodeInto(specFields, spec); err != nil {
		return nil, typeError(src, "spec", err)
	}
	return o, nil
}

// typeError turns a decoding error of the field at path into an error
// naming the innermost field and the type it takes.
func typeError(src source, path string, err error) *InputError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			path += "." + te.Field
		}
		return src.failf(path, "got %s, want %s", te.Value, describeType(te.Type))
	}
	return src.fail(path, err)
}

func supportedVersions(kind string) string {
	if kind == kindBGPPeer {
		return metallbGroup + "/v1beta1 or " + metallbGroup + "/v1beta2"
	}
	return metallbGroup + "/v1beta1"
}

// decodeInto decodes JSON values (as parseYAML returns them) into a struct.
func decodeInto(v any, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// pruneUnknown removes from v, in place, every object key that the Go type
// t has no JSON field for, and returns their paths. Keys are compared
// exactly, as the API server does (encoding/json alone would accept
// "PeerAddress" for "peerAddress").
func pruneUnknown(v any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				delete(m, k)
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, pruneUnknown(m[k], ft, path+"."+k)...)
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range list {
			out = append(out, pruneUnknown(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// describeType says in words what JSON a Go type takes.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<t.Bits()-1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("a whole number from %d to %d", -(int64(1) << (t.Bits() - 1)), int64(1)<<(t.Bits()-1)-1)
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// jsonKind names the JSON type of a value, for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
