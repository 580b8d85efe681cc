// Package metrics serves Prometheus metrics for nodemesh's binaries
// (nodemesh-agent, nodemesh-proxy, nodemesh-controller) on GET /metrics,
// with github.com/prometheus/client_golang.
//
// # Data in and out
//
// The libraries keep plain counters (atomics and tables: xds/server
// Counters, mesh/flow Store.Counts, datapath Counters, proxylib/hcm
// RequestStats, the auth packages' Stats, mesh/flow/observer Stats) and
// do not link client_golang; each binary's metrics.go turns them into
// metrics at scrape time through a Func collector, so a scrape reads the
// live values and counting costs the hot paths one atomic add. Durations
// (translations, reconciliations) are histograms fed by a callback the
// binary installs (agent.Config.Applied, controller.WithReconciled).
//
// # Decisions
//
//   - Addresses: --metrics-address, default on loopback at the ports
//     Cilium uses for the same roles, so port plans and firewall rules
//     carry over: agent 127.0.0.1:9962 (cilium-agent), controller
//     127.0.0.1:9963 (cilium-operator), builtin proxy 127.0.0.1:9964
//     (Cilium's Envoy metrics). Loopback by default because agent and
//     proxy run in the host's network namespace: exposing them to the
//     network is the chart's decision (agent/proxy/controller
//     .prometheus.enabled and .port bind the Pod's or node's addresses and
//     annotate the Pods with prometheus.io/scrape and prometheus.io/port).
//     An empty address turns metrics off. A default address that is
//     already taken (several agents of a demo or test in one namespace)
//     turns metrics off with a warning; an address given explicitly that
//     cannot be bound fails the start.
//   - Names follow Prometheus conventions (base units, _total counters)
//     and, where a Cilium or Envoy metric means the same, its name with
//     the nodemesh_ prefix: nodemesh_drop_count_total{reason,direction}
//     is cilium_drop_count_total, nodemesh_policy_l7_total{rule,
//     proxy_type} is cilium_policy_l7_total,
//     nodemesh_proxy_upstream_cx_active{cluster} is Envoy's
//     envoy_cluster_upstream_cx_active. hubble_flows_processed_total
//     keeps Hubble's own name and labels (type, subtype, verdict), since
//     the agent serves Hubble's API and Hubble dashboards key on it.
//   - Labels are bounded: only values from fixed sets (resource types,
//     verdicts, response code classes, the datapath's reason codes, the
//     auth packages' fixed result names) or from the configuration the
//     agent itself produced (cluster names). Nothing a client sends —
//     paths, hosts, header values, Pod names — becomes a label value; a
//     reporter's unknown verdict or protocol is counted as OTHER/other.
//   - The endpoint is bounded like any other: read-header and write
//     timeouts, 16 KiB of headers, at most 4 scrapes at once.
//   - Every binary also exports the Go runtime (go_*) and process
//     (process_*) collectors.
//
// # Metrics
//
// nodemesh-agent: nodemesh_translations_total{result},
// nodemesh_translation_duration_seconds; nodemesh_xds_pushes_total,
// nodemesh_xds_acks_total, nodemesh_xds_nacks_total{type},
// nodemesh_xds_snapshot_version_info{type,version},
// nodemesh_xds_streams_total, nodemesh_xds_open_streams,
// nodemesh_xds_streams_refused_total,
// nodemesh_xds_connected_proxies; nodemesh_policy_l7_total{proxy_type,
// rule}, hubble_flows_processed_total{type,subtype,verdict},
// nodemesh_flows_held, nodemesh_flows_capacity,
// nodemesh_accesslog_entries_total{result},
// nodemesh_accesslog_truncated_entries_total; with --datapath
// nodemesh_drop_count_total and nodemesh_drop_bytes_total{reason,
// direction}, nodemesh_forward_count_total and
// nodemesh_forward_bytes_total{direction},
// nodemesh_proxy_redirect_count_total{direction},
// nodemesh_datapath_events_lost_total; with --mutual-auth
// nodemesh_auth_handshakes_total{side,result},
// nodemesh_auth_events_total{event},
// nodemesh_auth_workload_api_requests_total{result}; with Hubble
// nodemesh_hubble_streams, nodemesh_hubble_streams_total{result},
// nodemesh_hubble_flows_sent_total.
//
// nodemesh-proxy: nodemesh_proxy_http_requests_total{protocol,
// code_class,verdict}, nodemesh_proxy_http_request_duration_seconds
// {protocol}; nodemesh_proxy_upstream_cx_active,
// nodemesh_proxy_upstream_cx_overflow_total, nodemesh_proxy_upstream_rq_active,
// nodemesh_proxy_upstream_rq_pending_active,
// nodemesh_proxy_upstream_rq_pending_overflow_total,
// nodemesh_proxy_upstream_rq_retry_total{cluster};
// nodemesh_proxy_xds_connected, nodemesh_proxy_xds_streams_total,
// nodemesh_proxy_xds_acks_total, nodemesh_proxy_xds_nacks_total,
// nodemesh_proxy_ready.
//
// nodemesh-controller: nodemesh_controller_reconciles_total{result},
// nodemesh_controller_reconcile_duration_seconds,
// nodemesh_controller_leader.
package metrics
