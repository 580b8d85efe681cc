// Package nodereport is the node proxy status report (the NodeProxyStatus
// CRD of api/v1alpha1) from both sides: the Reporter that keeps one node's
// report in step with what that node's proxies acknowledged, and the
// decoding the controller (gateway/controller) uses to read every node's
// report and set Programmed across nodes.
//
// Data in and out: the Reporter reads the agent's status through a
// StatusSource function (each Gateway's Programmed condition, which already
// carries the proxies' ACK or NACK, and the proxies themselves), turns it
// into the report body (Summarize) and writes it only when it changed or
// the heartbeat is due. Taking a function rather than the agent keeps this
// package, which the controller also links, free of the agent's node-side
// dependencies (datapath, xDS server).
//
// It sits under gateway/ because the report is the Gateway status of one
// node: the controller is its reader, the agent (internal/agent, wired by
// cmd/nodemesh-agent) its writer. It imports no Envoy code and nothing of
// the composition root.
//
// With network policy the report also carries the node's policy state
// (AgentStatus.Policy: every policy's state there, the local endpoints, a
// datapath error), built by cmd/nodemesh-agent; `nodemesh status --nodes`
// reads it to show which nodes have not enforced a policy yet.
package nodereport
