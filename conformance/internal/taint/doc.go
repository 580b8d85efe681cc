// Package taint provides a publisher for tests that need a proxy to reject
// an update: it publishes like xds/publish, but once armed it adds a field
// the builtin proxy does not implement (HCM tracing) to every listener —
// the stand-in for a control plane newer than its proxy. ArmedFilters does
// the same to the L7 policy's RBAC filter configurations (ECDS), with a
// shadow_rules_stat_prefix.
package taint
