package kube

import (
	"encoding/json"
	"sort"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
)

// WithGatewayClassConfigs makes the provider watch the cilium.io/v2alpha1
// CiliumGatewayClassConfig kind (through dyn), the parameters a
// GatewayClass may name: translation accepts a class only with its
// parameters, so every agent and the controller must see them. The kind
// is optional, as the optional Gateway API kinds are (optional.go): until
// its CRD is served the snapshot has none, and a class naming one is
// InvalidParameters (not found), which fails closed.
func WithGatewayClassConfigs(dyn dynamic.Interface) Option {
	return func(p *Provider) { p.classConfigs = &classConfigWatch{dyn: dyn} }
}

// classConfigWatch is the CiliumGatewayClassConfig informer, created
// once discovery lists the kind.
type classConfigWatch struct {
	dyn      dynamic.Interface
	factory  dynamicinformer.DynamicSharedInformerFactory
	kind     *optionalKind
	inf      cache.SharedIndexInformer
	infOnce  sync.Once
	lastGood sync.Map // UID -> *ciliumv2alpha1.CiliumGatewayClassConfig
}

func (p *Provider) setupClassConfigs() {
	w := p.classConfigs
	w.factory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.dyn, 0, metav1.NamespaceAll, nil)
	create := func() cache.SharedIndexInformer {
		w.infOnce.Do(func() {
			w.inf = w.factory.ForResource(ciliumv2alpha1.CiliumGatewayClassConfigResource).Informer()
			_ = w.inf.SetTransform(func(obj any) (any, error) {
				u, ok := obj.(*unstructured.Unstructured)
				if !ok {
					return obj, nil // a tombstone
				}
				u.SetManagedFields(nil)
				js, err := u.MarshalJSON()
				if err != nil {
					return u, nil
				}
				var c ciliumv2alpha1.CiliumGatewayClassConfig
				if err := json.Unmarshal(js, &c); err != nil {
					// Kept as is; Snapshot keeps the last version that
					// decoded (or none). Failing the transform would stall
					// the informer.
					p.log.Warn("CiliumGatewayClassConfig does not decode", "namespace", u.GetNamespace(), "name", u.GetName(), "err", err)
					return u, nil
				}
				w.lastGood.Store(c.UID, &c)
				return &c, nil
			})
		})
		return w.inf
	}
	w.kind = &optionalKind{kind: ciliumv2alpha1.GatewayClassConfigKind, groupVersion: ciliumv2alpha1.SchemeGroupVersion.String(),
		resource: ciliumv2alpha1.CiliumGatewayClassConfigResource.Resource, informer: create,
		start: func(stop <-chan struct{}) { w.factory.Start(stop) }}
	p.optional.kinds = append(p.optional.kinds, w.kind)
}

// list returns the configs in the informer, by namespace/name; one whose
// current version does not decode is represented by its last good one.
func (w *classConfigWatch) list() []*ciliumv2alpha1.CiliumGatewayClassConfig {
	if !w.kind.watched.Load() {
		return nil
	}
	var out []*ciliumv2alpha1.CiliumGatewayClassConfig
	for _, obj := range w.inf.GetStore().List() {
		switch o := obj.(type) {
		case *ciliumv2alpha1.CiliumGatewayClassConfig:
			out = append(out, o)
		case *unstructured.Unstructured:
			if prev, ok := w.lastGood.Load(o.GetUID()); ok {
				out = append(out, prev.(*ciliumv2alpha1.CiliumGatewayClassConfig))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
