package api

// controller-gen writes zz_generated.deepcopy.go next to the types and one
// CRD manifest per kind into crds/. The manifests are removed first, so a
// kind that no longer exists leaves no stale file behind.
//go:generate sh -c "rm -f crds/*.yaml"
//go:generate controller-gen object paths=./... crd:crdVersions=v1 output:crd:dir=./crds
