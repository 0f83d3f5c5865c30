// Package crdschema validates ironlb objects in-process with the schema of
// their CRDs: pruning of unknown fields, defaults, OpenAPI checks, list
// types and CEL rules, in the order the API server applies them on create.
// The configuration file and the cluster therefore accept and reject exactly
// the same objects, with the same field paths and messages.
package crdschema

import (
	"context"
	"fmt"
	"io/fs"
	"slices"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/config/crd"
)

// Validator validates objects of the kinds its CRDs define. It is safe for
// concurrent use.
type Validator struct {
	kinds map[schema.GroupVersionKind]*kind
}

type kind struct {
	namespaced bool
	structural *structuralschema.Structural
	openapi    apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// New builds a Validator from ironlb's embedded CRDs.
func New() (*Validator, error) { return FromFS(crd.FS) }

// FromFS builds a Validator from the CRD manifests (*.yaml) in fsys.
func FromFS(fsys fs.FS) (*Validator, error) {
	files, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	v := &Validator{kinds: map[schema.GroupVersionKind]*kind{}}
	for _, name := range files {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", name, err)
		}
		for _, ver := range crd.Spec.Versions {
			k, err := newKind(&crd, &ver)
			if err != nil {
				return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, ver.Name, err)
			}
			v.kinds[schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}] = k
		}
	}
	return v, nil
}

func newKind(crd *apiextensionsv1.CustomResourceDefinition, ver *apiextensionsv1.CustomResourceDefinitionVersion) (*kind, error) {
	if ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("no schema")
	}
	internal := &apiextensionsinternal.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, internal, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, err
	}
	openapi, _, err := apiservervalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, err
	}
	return &kind{
		namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		structural: s,
		openapi:    openapi,
		cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
	}, nil
}

// Known tells whether the validator has a schema for the kind.
func (v *Validator) Known(gvk schema.GroupVersionKind) bool { return v.kinds[gvk] != nil }

// Validate checks one object, given as decoded JSON, as the API server would
// on create. It prunes nothing silently: unknown fields are errors (as with
// kubectl's strict field validation). On success obj holds the defaults.
func (v *Validator) Validate(ctx context.Context, gvk schema.GroupVersionKind, obj map[string]any) field.ErrorList {
	k := v.kinds[gvk]
	if k == nil {
		return field.ErrorList{field.NotSupported(field.NewPath("kind"), gvk.Kind, v.kindNames())}
	}
	var errs field.ErrorList
	for _, path := range structuralpruning.PruneWithOptions(obj, k.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}) {
		errs = append(errs, field.Invalid(field.NewPath(path), nil, "unknown field"))
	}
	meta, found, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	switch {
	case err != nil:
		return append(errs, field.Invalid(field.NewPath("metadata"), nil, err.Error()))
	case !found || meta == nil:
		return append(errs, field.Required(field.NewPath("metadata", "name"), "every object needs a name"))
	}
	for _, path := range unknown {
		errs = append(errs, field.Invalid(field.NewPath(path), nil, "unknown field"))
	}
	if !k.namespaced {
		// The API server clears it for cluster-scoped kinds.
		meta.Namespace = ""
		if m, ok := obj["metadata"].(map[string]any); ok {
			delete(m, "namespace")
		}
	}
	errs = append(errs, apimachineryvalidation.ValidateObjectMeta(meta, k.namespaced, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)

	structuraldefaulting.Default(obj, k.structural)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, k.openapi)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, k.structural, obj)...)
	if blocking(errs) {
		// The API server skips CEL rules on such objects too: they may
		// assume what the schema already guarantees.
		return append(errs, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"))
	}
	celErrs, _ := k.cel.Validate(ctx, nil, k.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// blocking tells whether errs include kinds of errors after which the API
// server does not evaluate CEL rules.
func blocking(errs field.ErrorList) bool {
	return slices.ContainsFunc(errs, func(e *field.Error) bool {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
		return false
	})
}

func (v *Validator) kindNames() []string {
	var out []string
	for gvk := range v.kinds {
		out = append(out, gvk.Kind)
	}
	slices.Sort(out)
	return out
}
