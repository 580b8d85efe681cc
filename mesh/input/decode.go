package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Decode reads a multi-document YAML (or JSON) stream of Kubernetes objects.
// source names the stream in errors (usually the file name). It returns
// every object of the stream, in stream order, or — if any document is bad
// — no objects and an error joining one *DecodeError per problem. Decode
// never panics and is safe to call concurrently.
func Decode(source string, data []byte) ([]Object, error) {
	return decode(source, data, nil)
}

func decode(source string, data []byte, cache *Cache) ([]Object, error) {
	docs, err := split(source, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{source: source, seen: make(map[objectID]Origin, len(docs)), cache: cache}
	if cache != nil {
		d.next = make(map[docKey]cachedDoc, len(docs))
		d.objs = make([]Object, 0, len(docs))
	}
	for _, doc := range docs {
		d.document(doc)
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	if cache != nil {
		cache.docs = d.next
	}
	return d.objs, nil
}

type objectID struct {
	kind Kind
	key  Key
}

type decoder struct {
	source string
	objs   []Object
	errs   []error
	seen   map[objectID]Origin
	// cache, when set, offers the objects of documents decoded before;
	// next collects this stream's for it.
	cache *Cache
	next  map[docKey]cachedDoc
}

func (d *decoder) fail(o Origin, kind Kind, name Key, field string, err error) {
	d.errs = append(d.errs, &DecodeError{Origin: o, Kind: kind, Name: name, Field: field, Err: err})
}

func (d *decoder) document(doc rawDoc) {
	if d.cache != nil {
		if c, ok := d.cache.docs[docKey{string(doc.data), doc.json}]; ok {
			d.reuse(doc, c.objs)
			d.next[c.key] = c // the key's string is the old one: no copy
			return
		}
		start, errs := len(d.objs), len(d.errs)
		defer func() {
			if len(d.errs) == errs {
				k := docKey{string(doc.data), doc.json}
				d.next[k] = cachedDoc{k, slices.Clone(d.objs[start:])}
			}
		}()
	}
	o := Origin{Source: d.source, Doc: doc.doc, Line: doc.line, Item: -1}
	// The YAML and JSON libraries are not expected to panic, but a panic on
	// hostile input must become an error, never a crash of the agent.
	defer func() {
		if r := recover(); r != nil {
			d.fail(o, "", Key{}, "", fmt.Errorf("decoding document: unexpected failure: %v", r))
		}
	}()
	js := doc.data
	if !doc.json {
		var err error
		js, err = yaml.YAMLToJSONStrict(doc.data)
		if err != nil {
			d.fail(o, "", Key{}, "", yamlError(err, doc.line))
			return
		}
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		return // empty document
	}
	d.object(o, js, true)
}

// head is what Decode reads before it knows an object's Go type.
type head struct {
	apiVersion, kind string
	name, namespace  string
}

func peek(js []byte) (head, error) {
	var h head
	var top map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &top); err != nil || top == nil {
		return h, errors.New("document is not a Kubernetes object (a mapping with apiVersion and kind)")
	}
	h.apiVersion, _ = top["apiVersion"].(string)
	h.kind, _ = top["kind"].(string)
	if md, ok := top["metadata"].(map[string]any); ok {
		h.name, _ = md["name"].(string)
		h.namespace, _ = md["namespace"].(string)
	}
	return h, nil
}

func (d *decoder) object(o Origin, js []byte, topLevel bool) {
	h, err := peek(js)
	if err != nil {
		d.fail(o, "", Key{}, "", err)
		return
	}
	kind := Kind(h.kind)
	name := Key{Namespace: h.namespace, Name: h.name}
	switch {
	case h.apiVersion == "":
		d.fail(o, kind, name, "apiVersion", errors.New("required"))
		return
	case h.kind == "":
		d.fail(o, kind, name, "kind", errors.New("required"))
		return
	case h.apiVersion == "v1" && h.kind == "List":
		if !topLevel {
			d.fail(o, kind, name, "", errors.New("a List inside a List is not supported"))
			return
		}
		d.list(o, js)
		return
	}
	info, ok := kinds[gvk{h.apiVersion, h.kind}]
	if !ok {
		d.fail(o, kind, name, "", unsupported(h.apiVersion, h.kind))
		return
	}
	obj := info.newObj()
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		d.fail(o, kind, name, "", err)
		return
	}
	if len(strict) > 0 {
		for _, e := range strict {
			d.fail(o, kind, name, "", e)
		}
		return
	}
	setAPIVersion(obj, info.apiVersion)

	if obj.GetName() == "" {
		msg := "required"
		if obj.GetGenerateName() != "" {
			msg = "required (generateName needs an API server to pick a name)"
		}
		d.fail(o, kind, name, "metadata.name", errors.New(msg))
		return
	}
	if errs := validation.IsDNS1123Subdomain(obj.GetName()); len(errs) > 0 {
		d.fail(o, kind, name, "metadata.name", fmt.Errorf("invalid name %q: %s", obj.GetName(), strings.Join(errs, "; ")))
		return
	}
	if info.namespaced {
		if obj.GetNamespace() == "" {
			obj.SetNamespace("default")
		}
		if errs := validation.IsDNS1123Label(obj.GetNamespace()); len(errs) > 0 {
			d.fail(o, kind, name, "metadata.namespace", fmt.Errorf("invalid namespace %q: %s", obj.GetNamespace(), strings.Join(errs, "; ")))
			return
		}
	} else {
		obj.SetNamespace("")
	}
	if s, ok := obj.(*corev1.Secret); ok {
		mergeStringData(s)
	}
	key := Key{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	id := objectID{info.kind, key}
	if prev, dup := d.seen[id]; dup {
		d.fail(o, info.kind, key, "", fmt.Errorf("duplicate object, first defined at %s", prev))
		return
	}
	d.seen[id] = o
	d.objs = append(d.objs, Object{Origin: o, Kind: info.kind, Key: key, Obj: obj, Hash: HashObject(obj)})
}

// list expands a v1 List into its items.
func (d *decoder) list(o Origin, js []byte) {
	var l struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]any    `json:"metadata,omitempty"`
		Items      []json.RawMessage `json:"items"`
	}
	strict, err := kjson.UnmarshalStrict(js, &l)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		d.fail(o, "List", Key{}, "", err)
		return
	}
	for i, item := range l.Items {
		io := o
		io.Item = i
		if len(bytes.TrimSpace(item)) == 0 || string(item) == "null" {
			d.fail(io, "", Key{}, "", errors.New("empty List item"))
			continue
		}
		d.object(io, item, false)
	}
}

func setAPIVersion(obj object, apiVersion string) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	group, version, _ := strings.Cut(apiVersion, "/")
	if version == "" {
		group, version = "", apiVersion
	}
	gvk.Group, gvk.Version = group, version
	obj.GetObjectKind().SetGroupVersionKind(gvk)
}

func mergeStringData(s *corev1.Secret) {
	if len(s.StringData) == 0 {
		return
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func unsupported(apiVersion, kind string) error {
	var versions []string
	for k := range kinds {
		if k.kind == kind {
			versions = append(versions, k.apiVersion)
		}
	}
	if len(versions) > 0 {
		sort.Strings(versions)
		return fmt.Errorf("unsupported apiVersion %q for kind %s (supported: %s)", apiVersion, kind, strings.Join(versions, ", "))
	}
	return fmt.Errorf("unsupported kind %q (apiVersion %q)", kind, apiVersion)
}

var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// yamlError turns a YAML library error into one whose line numbers count
// from the start of the stream rather than of the document.
func yamlError(err error, docLine int) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, convErr := strconv.Atoi(m[len("line "):])
		if convErr != nil {
			return m
		}
		return "line " + strconv.Itoa(n+docLine-1)
	})
	return errors.New(msg)
}
