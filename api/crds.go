package api

import "embed"

// CRDs holds the CustomResourceDefinition manifests of nodemesh's own
// types, one YAML file each under crds/.
//
//go:embed crds/*.yaml
var CRDs embed.FS
