package suite

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

// TestGatewayAPIConformance is the upstream suite with its default
// options, taken from the command-line flags.
func TestGatewayAPIConformance(t *testing.T) {
	conformance.RunConformanceWithOptions(t, conformance.DefaultOptions(t))
}
