package policy

import "github.com/nodemesh/nodemesh/mesh/ir"

// irConfig validates an L7 policy the way the agent will: inside a Config.
type irConfig struct{ Policy *ir.Policy }

func (c *irConfig) validate() error { return (&ir.Config{Policy: c.Policy}).Validate() }
