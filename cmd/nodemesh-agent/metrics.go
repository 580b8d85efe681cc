package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/flow/observer"
	"github.com/nodemesh/nodemesh/xds/accesslog"
	"github.com/nodemesh/nodemesh/xds/server"
)

// defaultMetricsAddress is where the agent serves /metrics: Cilium's
// agent port, on loopback (see doc.go of internal/metrics).
const defaultMetricsAddress = "127.0.0.1:9962"

// datapathCounters is what the metrics read of the datapath
// (*datapath.Datapath).
type datapathCounters interface {
	Counters() (map[datapath.CounterKey]datapath.Counter, error)
	LostEvents() (uint64, error)
}

// metricSources are the agent's parts the metrics read; nil ones (not
// enabled by the flags) export nothing.
type metricSources struct {
	xds      *server.Server
	flows    *flow.Store
	observer *observer.Server
	datapath datapathCounters
	auth     *authRuntime
	als      *accesslog.Service
	log      *slog.Logger
}

var (
	descXDSPushes   = metrics.NewDesc("nodemesh_xds_pushes_total", "xDS responses sent to the node's proxies, by resource type (CDS, EDS, LDS, RDS, SDS, ECDS).", "type")
	descXDSAcks     = metrics.NewDesc("nodemesh_xds_acks_total", "xDS responses the proxies accepted, by resource type.", "type")
	descXDSNacks    = metrics.NewDesc("nodemesh_xds_nacks_total", "xDS responses the proxies rejected, by resource type.", "type")
	descXDSStreams  = metrics.NewDesc("nodemesh_xds_streams_total", "xDS streams opened by proxies.")
	descXDSOpen     = metrics.NewDesc("nodemesh_xds_open_streams", "xDS streams open now.")
	descXDSRefused  = metrics.NewDesc("nodemesh_xds_streams_refused_total", "gRPC streams the xDS socket refused because the most it serves at once were open.")
	descXDSVersion  = metrics.NewDesc("nodemesh_xds_snapshot_version_info", "The version of each resource type the agent serves (value 1).", "type", "version")
	descXDSProxies  = metrics.NewDesc("nodemesh_xds_connected_proxies", "Proxies (node IDs) connected to the agent's xDS server.")
	descL7          = metrics.NewDesc("nodemesh_policy_l7_total", "L7 requests the proxies reported, by protocol and verdict (forwarded, denied, error).", "proxy_type", "rule")
	descHubble      = metrics.NewDesc("hubble_flows_processed_total", "Flows recorded, as Hubble counts them: type L7, Drop or Trace, subtype the L7 protocol or the drop reason, and verdict.", "type", "subtype", "verdict")
	descFlowsHeld   = metrics.NewDesc("nodemesh_flows_held", "Flows the agent's flow store holds now (of nodemesh_flows_capacity).")
	descFlowsCap    = metrics.NewDesc("nodemesh_flows_capacity", "How many flows the agent's flow store keeps.")
	descDrops       = metrics.NewDesc("nodemesh_drop_count_total", "Packets the datapath dropped, by reason and direction.", "reason", "direction")
	descDropBytes   = metrics.NewDesc("nodemesh_drop_bytes_total", "Bytes of the packets the datapath dropped, by reason and direction.", "reason", "direction")
	descFwd         = metrics.NewDesc("nodemesh_forward_count_total", "Packets the datapath passed (redirected to the proxy or not), by direction.", "direction")
	descFwdBytes    = metrics.NewDesc("nodemesh_forward_bytes_total", "Bytes of the packets the datapath passed, by direction.", "direction")
	descRedirects   = metrics.NewDesc("nodemesh_proxy_redirect_count_total", "Packets the datapath redirected to the node proxy (part of nodemesh_forward_count_total), by direction.", "direction")
	descLost        = metrics.NewDesc("nodemesh_datapath_events_lost_total", "Datapath events lost because the ring buffer was full.")
	descHandshakes  = metrics.NewDesc("nodemesh_auth_handshakes_total", "Mutual authentication handshakes between agents, by side (client, server) and result.", "side", "result")
	descAuthEvents  = metrics.NewDesc("nodemesh_auth_events_total", "Mutual authentication entries authenticated, failed, revoked, removed, expired …, by event.", "event")
	descWorkload    = metrics.NewDesc("nodemesh_auth_workload_api_requests_total", "SPIFFE Workload API requests, by result.", "result")
	descHubbleAct   = metrics.NewDesc("nodemesh_hubble_streams", "Hubble GetFlows streams being served now.")
	descHubbleStr   = metrics.NewDesc("nodemesh_hubble_streams_total", "Hubble GetFlows streams, by result: served, refused (too many at once) or cut_off (the client stopped reading).", "result")
	descHubbleFlows = metrics.NewDesc("nodemesh_hubble_flows_sent_total", "Flows sent to Hubble clients.")
	descALSEntries  = metrics.NewDesc("nodemesh_accesslog_entries_total", "Access-log entries the proxies reported, by result: flow (recorded) or skipped (unusable).", "result")
	descALSCut      = metrics.NewDesc("nodemesh_accesslog_truncated_entries_total", "Recorded access-log entries whose strings or lists were cut to the agent's bounds.")
)

// newAgentMetrics returns a registry with the Go and process collectors,
// everything src has, and the translation histogram; observeApply is the
// agent's Config.Applied.
func newAgentMetrics(src *metricSources) (*prometheus.Registry, func(took float64, failed bool)) {
	reg := metrics.NewRegistry()
	translations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nodemesh_translations_total", Help: "Translations of the user's configuration into proxy configuration and their publication, by result (success, error).",
	}, []string{"result"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nodemesh_translation_duration_seconds", Help: "How long one translation and its publication took.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	translations.WithLabelValues("success")
	translations.WithLabelValues("error")
	reg.MustRegister(translations, duration, metrics.Func{
		Descs: []*prometheus.Desc{descXDSPushes, descXDSAcks, descXDSNacks, descXDSStreams, descXDSOpen, descXDSRefused, descXDSVersion, descXDSProxies,
			descL7, descHubble, descFlowsHeld, descFlowsCap, descDrops, descDropBytes, descFwd, descFwdBytes, descRedirects, descLost,
			descHandshakes, descAuthEvents, descWorkload, descHubbleAct, descHubbleStr, descHubbleFlows,
			descALSEntries, descALSCut},
		Read: src.collect,
	})
	return reg, func(took float64, failed bool) {
		duration.Observe(took)
		if failed {
			translations.WithLabelValues("error").Inc()
		} else {
			translations.WithLabelValues("success").Inc()
		}
	}
}

func (src *metricSources) collect(ch chan<- prometheus.Metric) {
	if src.xds != nil {
		c := src.xds.Counters()
		for _, t := range c.Types {
			ch <- metrics.Counter(descXDSPushes, float64(t.Pushes), t.Short)
			ch <- metrics.Counter(descXDSAcks, float64(t.Acks), t.Short)
			ch <- metrics.Counter(descXDSNacks, float64(t.Nacks), t.Short)
			if t.Version != "" {
				ch <- metrics.Gauge(descXDSVersion, 1, t.Short, t.Version)
			}
		}
		ch <- metrics.Counter(descXDSStreams, float64(c.Streams))
		ch <- metrics.Gauge(descXDSOpen, float64(c.OpenStreams))
		ch <- metrics.Counter(descXDSRefused, float64(c.Refused))
		connected := 0
		for _, n := range src.xds.Status() {
			if n.Connected {
				connected++
			}
		}
		ch <- metrics.Gauge(descXDSProxies, float64(connected))
	}
	if src.flows != nil {
		src.collectFlows(ch)
	}
	if src.datapath != nil {
		src.collectDatapath(ch)
	}
	if src.auth != nil {
		for side, stats := range map[string]map[string]uint64{"client": src.auth.client.Stats(), "server": src.auth.server.Stats()} {
			for result, n := range stats {
				ch <- metrics.Counter(descHandshakes, float64(n), side, result)
			}
		}
		for ev, n := range src.auth.mgr.Stats() {
			ch <- metrics.Counter(descAuthEvents, float64(n), ev)
		}
		if src.auth.wl != nil {
			for result, n := range src.auth.wl.Stats() {
				ch <- metrics.Counter(descWorkload, float64(n), result)
			}
		}
	}
	if src.als != nil {
		st := src.als.Stats()
		ch <- metrics.Counter(descALSEntries, float64(st.Flows), "flow")
		ch <- metrics.Counter(descALSEntries, float64(st.Skipped), "skipped")
		ch <- metrics.Counter(descALSCut, float64(st.Truncated))
	}
	if src.observer != nil {
		st := src.observer.Stats()
		ch <- metrics.Gauge(descHubbleAct, float64(st.ActiveStreams))
		ch <- metrics.Counter(descHubbleStr, float64(st.Streams), "served")
		ch <- metrics.Counter(descHubbleStr, float64(st.Refused), "refused")
		ch <- metrics.Counter(descHubbleStr, float64(st.SlowClients), "cut_off")
		ch <- metrics.Counter(descHubbleFlows, float64(st.FlowsSent))
	}
}

// l7Rules are Cilium's rule values of cilium_policy_l7_total.
var l7Rules = map[string]string{flow.Forwarded: "forwarded", flow.Dropped: "denied", flow.Error: "error"}

func (src *metricSources) collectFlows(ch chan<- prometheus.Metric) {
	held, capacity, _ := src.flows.Stats()
	ch <- metrics.Gauge(descFlowsHeld, float64(held))
	ch <- metrics.Gauge(descFlowsCap, float64(capacity))
	l7 := map[[2]string]uint64{}
	hubble := map[[3]string]uint64{}
	for _, c := range src.flows.Counts() {
		switch {
		case c.Kind == flow.KindL7:
			if rule, ok := l7Rules[c.Verdict]; ok {
				l7[[2]string{c.Protocol, rule}] += c.N
			}
			hubble[[3]string{"L7", c.Protocol, c.Verdict}] += c.N
		case c.Verdict == flow.Dropped:
			hubble[[3]string{"Drop", c.Reason, c.Verdict}] += c.N
		default:
			hubble[[3]string{"Trace", c.Reason, c.Verdict}] += c.N
		}
	}
	for k, n := range l7 {
		ch <- metrics.Counter(descL7, float64(n), k[0], k[1])
	}
	for k, n := range hubble {
		ch <- metrics.Counter(descHubble, float64(n), k[0], k[1], k[2])
	}
}

func (src *metricSources) collectDatapath(ch chan<- prometheus.Metric) {
	counters, err := src.datapath.Counters()
	if err != nil {
		// The scrape carries the rest; the error shows in the log.
		src.log.Warn("reading the datapath counters for metrics", "error", err)
	}
	fwd := map[string]datapath.Counter{}
	for k, c := range counters {
		dir := k.Direction.String()
		switch {
		case k.Reason.IsDrop():
			ch <- metrics.Counter(descDrops, float64(c.Packets), k.Reason.String(), dir)
			ch <- metrics.Counter(descDropBytes, float64(c.Bytes), k.Reason.String(), dir)
		default:
			f := fwd[dir]
			f.Packets += c.Packets
			f.Bytes += c.Bytes
			fwd[dir] = f
			if k.Reason == model.ReasonRedirected {
				ch <- metrics.Counter(descRedirects, float64(c.Packets), dir)
			}
		}
	}
	for dir, c := range fwd {
		ch <- metrics.Counter(descFwd, float64(c.Packets), dir)
		ch <- metrics.Counter(descFwdBytes, float64(c.Bytes), dir)
	}
	if n, err := src.datapath.LostEvents(); err == nil {
		ch <- metrics.Counter(descLost, float64(n))
	} else {
		src.log.Warn("reading the datapath's lost events for metrics", "error", err)
	}
}
