package policy

import "github.com/nodemesh/nodemesh/mesh/ir"

// irConfig validates proxy policy the way the agent will: inside a Config.
type irConfig struct {
	Policy  *ir.Policy
	Ingress *ir.IngressPolicy
}

func (c *irConfig) validate() error {
	return (&ir.Config{Policy: c.Policy, IngressPolicy: c.Ingress}).Validate()
}
