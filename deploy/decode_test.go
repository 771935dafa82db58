package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The kinds a manifest here may hold. Anything else (a typo in kind or
// apiVersion included) fails to decode.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict is apimachinery's strict decoder, the one the API server uses
// for fieldValidation=Strict: unknown fields, duplicate fields and fields
// in the wrong case are errors.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// decodeAll splits a YAML stream into documents and decodes each strictly
// into its typed object. Documents holding only comments are skipped.
// With patch set, kustomize's strategic-merge directives ($patch and
// kin) are removed first: they are not fields of the object.
func decodeAll(name string, data []byte, patch bool) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var v any
		if err := yaml.UnmarshalStrict(doc, &v); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if v == nil {
			continue
		}
		if patch {
			if doc, err = json.Marshal(stripDirectives(v)); err != nil {
				return nil, err
			}
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		objs = append(objs, obj)
	}
}

// stripDirectives removes the keys of strategic-merge-patch directives
// ($patch, $setElementOrder/..., $retainKeys, ...) from a decoded patch.
func stripDirectives(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.HasPrefix(k, "$") {
				delete(v, k)
				continue
			}
			v[k] = stripDirectives(e)
		}
	case []any:
		for i, e := range v {
			v[i] = stripDirectives(e)
		}
	}
	return v
}
