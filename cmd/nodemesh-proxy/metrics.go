package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/proxylib/hcm"
)

// defaultMetricsAddress is where the proxy serves /metrics: the port
// Cilium gives its Envoy's metrics, on loopback (see doc.go of
// internal/metrics).
const defaultMetricsAddress = "127.0.0.1:9964"

var (
	descRequests  = metrics.NewDesc("nodemesh_proxy_http_requests_total", "HTTP requests served, by protocol (http, grpc), response code class (1xx … 5xx, none) and verdict (forwarded, dropped by policy, error).", "protocol", "code_class", "verdict")
	descDuration  = metrics.NewDesc("nodemesh_proxy_http_request_duration_seconds", "How long HTTP requests took, from the request's headers to the end of the response.", "protocol")
	descCxActive  = metrics.NewDesc("nodemesh_proxy_upstream_cx_active", "Open upstream connections, by cluster.", "cluster")
	descCxOver    = metrics.NewDesc("nodemesh_proxy_upstream_cx_overflow_total", "Upstream connections refused by the cluster's max_connections circuit breaker.", "cluster")
	descRqActive  = metrics.NewDesc("nodemesh_proxy_upstream_rq_active", "Upstream requests in flight, by cluster.", "cluster")
	descRqPending = metrics.NewDesc("nodemesh_proxy_upstream_rq_pending_active", "Upstream requests waiting for a connection, by cluster.", "cluster")
	descRqPOver   = metrics.NewDesc("nodemesh_proxy_upstream_rq_pending_overflow_total", "Upstream requests refused by the cluster's max_pending_requests circuit breaker.", "cluster")
	descRetry     = metrics.NewDesc("nodemesh_proxy_upstream_rq_retry_total", "Upstream request retries, by cluster.", "cluster")
	descXDSConn   = metrics.NewDesc("nodemesh_proxy_xds_connected", "1 while the proxy's xDS stream to the agent is up.")
	descXDSStream = metrics.NewDesc("nodemesh_proxy_xds_streams_total", "xDS streams the proxy opened to the agent.")
	descXDSAcks   = metrics.NewDesc("nodemesh_proxy_xds_acks_total", "xDS responses the proxy accepted.")
	descXDSNacks  = metrics.NewDesc("nodemesh_proxy_xds_nacks_total", "xDS responses the proxy rejected.")
	descReady     = metrics.NewDesc("nodemesh_proxy_ready", "1 once the initial configuration is applied and warm (what /ready reports).")
)

// newProxyMetrics returns a registry with the Go and process collectors
// and the proxy's request and upstream metrics, read from p at every
// scrape, and with xds its xDS state (a worker has none).
func newProxyMetrics(p *proxylib.Proxy, xds bool) *prometheus.Registry {
	reg := metrics.NewRegistry()
	descs := []*prometheus.Desc{descRequests, descDuration, descCxActive, descCxOver, descRqActive, descRqPending, descRqPOver, descRetry}
	if xds {
		descs = append(descs, descXDSConn, descXDSStream, descXDSAcks, descXDSNacks, descReady)
	}
	reg.MustRegister(metrics.Func{
		Descs: descs,
		Read: func(ch chan<- prometheus.Metric) {
			counts, lat := p.RequestStats().Snapshot()
			for _, c := range counts {
				ch <- metrics.Counter(descRequests, float64(c.N), c.Protocol, c.CodeClass, c.Verdict)
			}
			for _, l := range lat {
				buckets := make(map[float64]uint64, len(hcm.LatencyBuckets))
				for i, le := range hcm.LatencyBuckets {
					buckets[le] = l.Buckets[i]
				}
				ch <- prometheus.MustNewConstHistogram(descDuration, l.Count, l.Sum.Seconds(), buckets, l.Protocol)
			}
			for name, s := range p.ClusterStats() {
				ch <- metrics.Gauge(descCxActive, float64(s.UpstreamCxActive), name)
				ch <- metrics.Counter(descCxOver, float64(s.UpstreamCxOverflow), name)
				ch <- metrics.Gauge(descRqActive, float64(s.UpstreamRqActive), name)
				ch <- metrics.Gauge(descRqPending, float64(s.UpstreamRqPendingActive), name)
				ch <- metrics.Counter(descRqPOver, float64(s.UpstreamRqPendingOverflow), name)
				ch <- metrics.Counter(descRetry, float64(s.UpstreamRqRetry), name)
			}
			if !xds {
				return
			}
			x := p.XDSStats()
			ch <- metrics.Gauge(descXDSConn, boolValue(x.Connected))
			ch <- metrics.Counter(descXDSStream, float64(x.Streams))
			ch <- metrics.Counter(descXDSAcks, float64(x.ACKs))
			ch <- metrics.Counter(descXDSNacks, float64(x.NACKs))
			ch <- metrics.Gauge(descReady, boolValue(p.Store().Ready()))
		},
	})
	return reg
}

// adminMetrics makes the admin endpoint serve the same metrics at Envoy's
// /stats/prometheus, where routes to the proxy's envoy-admin cluster lead
// (Cilium's Prometheus listener example).
func adminMetrics(log *slog.Logger, workers int) proxylib.Option {
	return proxylib.WithPrometheus(func(p *proxylib.Proxy) http.Handler {
		return metrics.Exposition(proxyGatherer(p, workers), log)
	})
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
