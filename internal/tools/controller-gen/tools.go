//go:build tools

package controllergen

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
