package gateway

import (
	"crypto/tls"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// index holds the lookups translation needs, built once per Translate in
// time linear in the snapshot. Nothing is ever found by scanning a list.
type index struct {
	namespaceLabels map[string]map[string]string
	services        map[input.Key]*corev1.Service
	// slices maps a Service to the EndpointSlices labelled with its name.
	slices  map[input.Key][]*discoveryv1.EndpointSlice
	secrets map[input.Key]*corev1.Secret
	grants  map[grantKey]bool
	// nsSets caches the label sets namespace selectors see.
	nsSets map[string]labels.Set
	// certs caches the verdict on each TLS Secret: parsing a key pair is
	// the most expensive check translation makes.
	certs map[input.Key]error
	// tlsTargets holds the BackendTLSPolicy deciding each target,
	// tlsPolicies every policy with a Service target (snapshot order),
	// tlsBySvc those targeting each Service (backendtls.go); systemCAs
	// is the bundle they were evaluated with.
	tlsTargets map[tlsTarget]*backendTLS
	// configMaps hold CA bundles (BackendTLSPolicy, frontend validation).
	configMaps  map[input.Key]*corev1.ConfigMap
	tlsPolicies []*backendTLS
	tlsBySvc    map[input.Key][]*backendTLS
	systemCAs   []byte
}

func newIndex(in *input.Snapshot, systemCAs []byte) *index {
	ix := &index{
		namespaceLabels: make(map[string]map[string]string, len(in.Namespaces)),
		services:        make(map[input.Key]*corev1.Service, len(in.Services)),
		slices:          make(map[input.Key][]*discoveryv1.EndpointSlice, len(in.EndpointSlices)),
		secrets:         make(map[input.Key]*corev1.Secret, len(in.Secrets)),
		grants:          map[grantKey]bool{},
		certs:           map[input.Key]error{},
		nsSets:          map[string]labels.Set{},
		tlsBySvc:        map[input.Key][]*backendTLS{},
		systemCAs:       systemCAs,
	}
	for _, ns := range in.Namespaces {
		ix.namespaceLabels[ns.Name] = ns.Labels
	}
	for _, s := range in.Services {
		ix.services[keyOf(s)] = s
	}
	for _, es := range in.EndpointSlices {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		k := input.Key{Namespace: es.Namespace, Name: svc}
		ix.slices[k] = append(ix.slices[k], es)
	}
	for _, s := range in.Secrets {
		ix.secrets[keyOf(s)] = s
	}
	for _, g := range in.ReferenceGrants {
		ix.addGrant(g)
	}
	ix.configMaps = make(map[input.Key]*corev1.ConfigMap, len(in.ConfigMaps))
	for _, cm := range in.ConfigMaps {
		ix.configMaps[keyOf(cm)] = cm
	}
	ix.indexBackendTLS(in, systemCAs)
	return ix
}

type named interface {
	GetNamespace() string
	GetName() string
}

func keyOf(o named) input.Key { return input.Key{Namespace: o.GetNamespace(), Name: o.GetName()} }

// namespaceSet returns the labels a namespace selector sees. Kubernetes
// labels every namespace with kubernetes.io/metadata.name, so selectors may
// rely on it even when the snapshot has no Namespace object.
func (ix *index) namespaceSet(namespace string) labels.Set {
	if set, ok := ix.nsSets[namespace]; ok {
		return set
	}
	own := ix.namespaceLabels[namespace]
	set := make(labels.Set, len(own)+1)
	for k, v := range own {
		set[k] = v
	}
	set[corev1.LabelMetadataName] = namespace
	ix.nsSets[namespace] = set
	return set
}

// tlsSecret checks that a Secret can serve as a listener certificate: type
// kubernetes.io/tls with a tls.crt and tls.key that form a key pair.
func (ix *index) tlsSecret(k input.Key) (*corev1.Secret, error) {
	s := ix.secrets[k]
	if s == nil {
		return nil, fmt.Errorf("Secret %s not found", k)
	}
	if err, seen := ix.certs[k]; seen {
		return s, err
	}
	err := checkKeyPair(s)
	ix.certs[k] = err
	return s, err
}

func checkKeyPair(s *corev1.Secret) error {
	if s.Type != corev1.SecretTypeTLS {
		return fmt.Errorf("Secret %s/%s has type %q, want %q", s.Namespace, s.Name, s.Type, corev1.SecretTypeTLS)
	}
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		return fmt.Errorf("Secret %s/%s lacks %s or %s", s.Namespace, s.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		return fmt.Errorf("Secret %s/%s does not hold a usable certificate and key: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// group and kind helpers with the API's defaults.

func groupOr(g *gwv1.Group, def string) string {
	if g == nil {
		return def
	}
	return string(*g)
}

func kindOr(k *gwv1.Kind, def string) string {
	if k == nil {
		return def
	}
	return string(*k)
}

func namespaceOr(ns *gwv1.Namespace, def string) string {
	if ns == nil || *ns == "" {
		return def
	}
	return string(*ns)
}
