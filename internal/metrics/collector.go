package metrics

import "github.com/prometheus/client_golang/prometheus"

// Func is a collector whose metrics are read from their source at every
// scrape: nodemesh's packages keep plain counters (atomics, tables), and
// only the binaries turn them into Prometheus metrics, so the libraries do
// not link client_golang. Descs must list every descriptor collect uses.
type Func struct {
	Descs []*prometheus.Desc
	Read  func(ch chan<- prometheus.Metric)
}

var _ prometheus.Collector = Func{}

// Describe sends Descs.
func (f Func) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range f.Descs {
		ch <- d
	}
}

// Collect calls f.Read.
func (f Func) Collect(ch chan<- prometheus.Metric) { f.Read(ch) }

// NewDesc is prometheus.NewDesc without constant labels.
func NewDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Counter, Gauge: shorthands for constant metrics of a collector.
func Counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func Gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
