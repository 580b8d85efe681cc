package ciliumidentity

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// Bounds on one CiliumIdentity's security-labels. An object over them is
// ignored (and never deleted by the collector); a Pod whose label set is
// over them gets no identity.
const (
	MaxLabels     = 1024
	MaxLabelBytes = 128 << 10
)

// ErrInvalid marks an object that is not a well-formed identity.
var ErrInvalid = errors.New("invalid CiliumIdentity")

// parseName reads an identity number from an object name: canonical
// decimal (no sign, no leading zero) inside the cluster range.
func parseName(name string) (model.Identity, error) {
	if name == "" || len(name) > 5 || (len(name) > 1 && name[0] == '0') || strings.TrimLeft(name, "0123456789") != "" {
		return 0, fmt.Errorf("%w: name %.64q is not a decimal identity number", ErrInvalid, name)
	}
	n, err := strconv.ParseUint(name, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: name %q: %v", ErrInvalid, name, err)
	}
	id := model.Identity(n)
	if id < identity.MinWorkload || id > identity.MaxWorkload {
		return 0, fmt.Errorf("%w: name %q is outside the cluster range %d-%d", ErrInvalid, name, identity.MinWorkload, identity.MaxWorkload)
	}
	return id, nil
}

// parseLabels reads security-labels ("source:key" → value) into a label
// set.
func parseLabels(m map[string]string) (identity.Labels, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: security-labels is empty", ErrInvalid)
	}
	if len(m) > MaxLabels {
		return nil, fmt.Errorf("%w: %d security-labels, more than %d", ErrInvalid, len(m), MaxLabels)
	}
	size := 0
	ls := make([]identity.Label, 0, len(m))
	for k, v := range m {
		size += len(k) + len(v)
		if size > MaxLabelBytes {
			return nil, fmt.Errorf("%w: security-labels exceed %d bytes", ErrInvalid, MaxLabelBytes)
		}
		src, key, ok := strings.Cut(k, ":")
		if !ok || src == "" || key == "" {
			return nil, fmt.Errorf("%w: security-label %.64q is not source:key", ErrInvalid, k)
		}
		ls = append(ls, identity.Label{Source: src, Key: key, Value: v})
	}
	return identity.NewLabels(ls...), nil
}

// checkLabels applies the same bounds to a label set about to be written.
func checkLabels(ls identity.Labels) error {
	_, err := parseLabels(securityLabels(ls))
	return err
}

// securityLabels renders a label set as Cilium writes security-labels.
func securityLabels(ls identity.Labels) map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Source+":"+l.Key] = l.Value
	}
	return m
}

// newObject is the CiliumIdentity for id and ls. As Cilium 1.18 does,
// only the namespace label is copied to the object's metadata (for
// `kubectl get ciliumidentities` and selector queries).
func newObject(id model.Identity, ls identity.Labels) *unstructured.Unstructured {
	ci := &ciliumv2.CiliumIdentity{
		TypeMeta:       metav1.TypeMeta{APIVersion: ciliumv2.SchemeGroupVersion.String(), Kind: "CiliumIdentity"},
		ObjectMeta:     metav1.ObjectMeta{Name: strconv.FormatUint(uint64(id), 10)},
		SecurityLabels: securityLabels(ls),
	}
	if ns, ok := ls.Lookup(identity.SourceK8s, identity.LabelNamespace); ok {
		ci.Labels = map[string]string{identity.LabelNamespace: ns}
	}
	u, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(ci)
	return &unstructured.Unstructured{Object: u}
}

// entry is what the informer keeps of an object: its metadata and, for a
// well-formed identity, the number and labels. Keeping only this bounds
// the memory a hostile object costs to its name.
type entry struct {
	metav1.ObjectMeta
	ID     model.Identity
	Labels identity.Labels
	// Err says why the object is not a usable identity (nil if it is).
	Err error
}

// GetObjectKind and DeepCopyObject make entry a runtime.Object, as the
// informer's store expects of what its transform returns.
func (e *entry) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject copies e; Labels are never modified after parsing, so
// they are shared.
func (e *entry) DeepCopyObject() runtime.Object {
	c := *e
	e.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// parseObject turns an object from the API server into an entry.
func parseObject(u *unstructured.Unstructured) *entry {
	e := &entry{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
		CreationTimestamp: u.GetCreationTimestamp(), DeletionTimestamp: u.GetDeletionTimestamp()}}
	id, err := parseName(u.GetName())
	if err != nil {
		e.Err = err
		return e
	}
	var ci ciliumv2.CiliumIdentity
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ci); err != nil {
		e.Err = fmt.Errorf("%w: decoding: %v", ErrInvalid, err)
		return e
	}
	ls, err := parseLabels(ci.SecurityLabels)
	if err != nil {
		e.Err = err
		return e
	}
	e.ID, e.Labels = id, ls
	return e
}

// candidate is where the search for a free number starts for ls: a hash
// of its canonical text, so agents allocating the same set concurrently
// try the same numbers in the same order and meet on one of them.
func candidate(ls identity.Labels) model.Identity {
	h := fnv.New64a()
	h.Write([]byte(ls.String()))
	size := uint64(identity.MaxWorkload-identity.MinWorkload) + 1
	return identity.MinWorkload + model.Identity(h.Sum64()%size)
}

// name is the object name of an identity.
func name(id model.Identity) string { return strconv.FormatUint(uint64(id), 10) }
