//go:build tools

package kube

import _ "sigs.k8s.io/gateway-api/conformance/echo-basic"
