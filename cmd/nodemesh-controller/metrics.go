package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodemesh/nodemesh/internal/metrics"
)

// defaultMetricsAddress is where the controller serves /metrics: the
// port of Cilium's operator, on loopback (the chart binds the Pod's
// address; see doc.go of internal/metrics).
const defaultMetricsAddress = "127.0.0.1:9963"

// controllerMetrics are the controller's own metrics.
type controllerMetrics struct {
	reg        *prometheus.Registry
	reconciles *prometheus.CounterVec
	duration   prometheus.Histogram
	leader     prometheus.Gauge
}

func newControllerMetrics() *controllerMetrics {
	m := &controllerMetrics{
		reg: metrics.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodemesh_controller_reconciles_total",
			Help: "Status reconciliations of GatewayClasses, Gateways, routes and Ingresses, by result (success, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nodemesh_controller_reconcile_duration_seconds",
			Help:    "How long one status reconciliation took (translation and status writes).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nodemesh_controller_leader",
			Help: "1 while this replica runs the controllers (holds the Lease, or runs without leader election).",
		}),
	}
	m.reconciles.WithLabelValues("success")
	m.reconciles.WithLabelValues("error")
	m.reg.MustRegister(m.reconciles, m.duration, m.leader)
	return m
}

// reconciled is the Gateway controller's WithReconciled.
func (m *controllerMetrics) reconciled(took time.Duration, err error) {
	m.duration.Observe(took.Seconds())
	if err != nil {
		m.reconciles.WithLabelValues("error").Inc()
		return
	}
	m.reconciles.WithLabelValues("success").Inc()
}
