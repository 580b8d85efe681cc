package api

import (
	"embed"
	"io/fs"
	"sort"
)

// CRDs holds the CustomResourceDefinition manifests generated from the
// types of packages v1alpha1 and cilium/v2, one YAML file per kind under
// crds/.
//
//go:embed crds/*.yaml
var CRDs embed.FS

// CRDManifests returns every CRD manifest as one YAML stream, in file name
// order.
func CRDManifests() []byte {
	names, _ := fs.Glob(CRDs, "crds/*.yaml")
	sort.Strings(names)
	var out []byte
	for _, n := range names {
		b, _ := CRDs.ReadFile(n)
		out = append(out, "\n---\n"...)
		out = append(out, b...)
	}
	return out
}
