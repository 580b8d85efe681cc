// Package api is the agent's local API as its clients see it: the JSON
// documents the agent serves on its Unix socket (Status, the flows stream)
// and the client functions the CLI (`nodemesh status`, `nodemesh flows`)
// and tests use to read them.
//
// It exists so that a client of the agent does not link the agent: it
// imports the status types of the stages (gateway, mesh/policy,
// mesh/dataplane, mesh/flow) and the standard library, never the agent
// loop, the xDS server or the datapath. The server side (routes, socket
// handling) lives in internal/agent, which fills these types.
//
// Endpoints, all GET, on a Unix socket (mode 0660):
//
//	/v1/status   Status as JSON
//	/v1/flows    flows as JSON lines, oldest first (FlowQuery as parameters)
//	/healthz     200 once the first configuration was applied
package api
