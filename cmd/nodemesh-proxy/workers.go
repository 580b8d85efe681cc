package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/proxylib"
)

// maxWorkers bounds --workers: one process per core of the largest nodes.
const maxWorkers = 256

// workerIndexEnv tells a worker its index, for its log lines.
const workerIndexEnv = "NODEMESH_PROXY_WORKER"

// workerCommand runs this binary again as worker i, with the parent's
// flags (a later --worker wins over nothing: the flag package keeps the
// last value) and its standard output and error.
func workerCommand(i int) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, append(append([]string{}, os.Args[1:]...), "--worker")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), workerIndexEnv+"="+strconv.Itoa(i))
	return cmd
}

// writeWorkerMetrics writes a worker's metrics (requests, upstreams, Go
// runtime and process; no xDS state: the parent owns the stream) in the
// text format the parent parses.
func writeWorkerMetrics(p *proxylib.Proxy, w io.Writer) error {
	mfs, err := newProxyMetrics(p, false).Gather()
	if err != nil {
		return fmt.Errorf("gathering worker metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encoding worker metrics: %w", err)
		}
	}
	return nil
}

// proxyGatherer is what /metrics serves: in a single process the proxy's
// registry; with workers every process's metrics, each series labelled
// worker="<index>" (0 is the parent, which also reports the xDS state).
// Per-worker series rather than sums: Go runtime and process metrics do
// not add up, and a skewed spread over the workers is worth seeing;
// sum without(worker) gives the node's totals.
func proxyGatherer(p *proxylib.Proxy, workers int) prometheus.Gatherer {
	if workers <= 1 {
		return newProxyMetrics(p, true)
	}
	own := prometheus.NewRegistry()
	prometheus.WrapRegistererWith(prometheus.Labels{workerLabel: "0"}, own).MustRegister(newProxyMetrics(p, true))
	return prometheus.Gatherers{own, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var out []*dto.MetricFamily
		for _, wm := range p.WorkerMetrics() {
			mfs, err := labelled(wm.Text, strconv.Itoa(wm.Index))
			if err != nil {
				return nil, fmt.Errorf("worker %d: %w", wm.Index, err)
			}
			out = append(out, mfs...)
		}
		return out, nil
	})}
}

const workerLabel = "worker"

// labelled parses a worker's text exposition and adds worker=index to
// every series.
func labelled(text []byte, index string) ([]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		for _, m := range mf.Metric {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(workerLabel), Value: proto.String(index)})
		}
		out = append(out, mf)
	}
	return out, nil
}
