package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// recorder is a dataplane.Publisher that keeps what it was given; the real
// xDS server is exercised by the end-to-end tests in conformance/e2e.
type recorder struct {
	mu      sync.Mutex
	configs []*ir.Config
	fail    error
	proxies []dataplane.Proxy
	changed chan struct{}
	asked   int // Proxies calls
}

func (r *recorder) Publish(_ context.Context, cfg *ir.Config) (dataplane.Publication, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return dataplane.Publication{}, r.fail
	}
	r.configs = append(r.configs, cfg)
	return dataplane.Publication{Versions: map[string]string{"Listener": "v" + string(rune('0'+len(r.configs)))}, Changed: true}, nil
}

func (r *recorder) Proxies() []dataplane.Proxy {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	return r.proxies
}

func (r *recorder) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// setProxies replaces what the proxies say, as an xDS server's table
// changes when they answer, and wakes the Changed waiters.
func (r *recorder) setProxies(ps []dataplane.Proxy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proxies = ps
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

func quickstart(t *testing.T) *input.Snapshot {
	t.Helper()
	files, _ := filepath.Glob("../../examples/quickstart/*.yaml")
	var objs []input.Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := input.Decode(filepath.Base(f), data)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func programmed(t *testing.T, st *api.Status) (string, string) {
	t.Helper()
	if len(st.Gateways) != 1 {
		t.Fatalf("gateways = %d, want 1", len(st.Gateways))
	}
	c := meta.FindStatusCondition(st.Gateways[0].Status.Conditions, "Programmed")
	if c == nil {
		t.Fatal("no Programmed condition")
	}
	return string(c.Status), c.Reason
}

func TestApplyPublishesAndOverlaysProxyState(t *testing.T) {
	pub := &recorder{}
	a, err := New(Config{Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), quickstart(t), nil); err != nil {
		t.Fatal(err)
	}
	if len(pub.configs) != 1 || len(pub.configs[0].Listeners) != 1 {
		t.Fatalf("published %d configs; want 1 with one listener", len(pub.configs))
	}
	if l := pub.configs[0].Listeners[0]; l.Address != "127.0.100.1" || l.Port != 8080 {
		t.Errorf("listener %s:%d, want the address the Gateway asked for, 127.0.100.1:8080", l.Address, l.Port)
	}
	if s, r := programmed(t, a.Status()); s != "False" || r != "Pending" {
		t.Errorf("without proxies Programmed = %s/%s, want False/Pending", s, r)
	}
	pub.setProxies([]dataplane.Proxy{{Node: "n", Connected: true, Types: []dataplane.TypeState{{Type: "Listener", Acked: "v1"}}}})
	if s, r := programmed(t, a.Status()); s != "True" || r != "Programmed" {
		t.Errorf("after ACK Programmed = %s/%s, want True/Programmed", s, r)
	}

	// A publish failure keeps reporting the serving configuration.
	pub.fail = errors.New("boom")
	err = a.Apply(context.Background(), &input.Snapshot{}, []string{"x.yaml: bad"})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Apply error = %v, want boom", err)
	}
	st := a.Status()
	if st.PublishError == "" || len(st.Gateways) != 1 || st.Generation != 2 || len(st.ConfigErrors) != 1 {
		t.Errorf("status after failed publish = %+v; want previous gateways, generation 2, the error and the config error", st)
	}
}

// The datapath the agent drives implements the agent's interfaces.
var (
	_ Datapath          = (*datapath.Datapath)(nil)
	_ InterfaceResolver = (*datapath.RouteInterfaces)(nil)
)

func (r *recorder) askedTimes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked
}
