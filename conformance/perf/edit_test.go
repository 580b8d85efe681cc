package perf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
	"github.com/nodemesh/nodemesh/proxylib"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// The edit benchmark runs standalone mode for real, in one process: the
// agent fed by the folder provider, the xDS server on a Unix socket and
// the builtin proxy as its delta xDS client, serving the scenario's
// Gateway on loopback. Each edit rewrites one HTTPRoute in the folder
// (write to a temporary file, then rename over the old one, as editors
// and kubectl-style tools do) and is timed until the proxy acknowledged
// the configuration holding it: inotify, the provider's debounce,
// decoding, translation, the xDS push and the proxy's apply included.

const (
	editRoutes = 1000
	edits      = 50
	warmEdits  = 5
)

// editPool keeps the benchmark's Gateway apart from tests using loopback
// addresses at the same time.
var editPool = netip.MustParsePrefix("127.0.103.0/24")

func BenchmarkEditToAck(b *testing.B) {
	for _, layout := range []string{"one-file", "file-per-object"} {
		b.Run(fmt.Sprintf("httproutes=%d/%s", editRoutes, layout), func(b *testing.B) {
			f := newFolder(b, editRoutes, layout == "one-file", freePorts(b, 2))
			env := startStandalone(b, f.dir)
			var took []time.Duration
			for i := range warmEdits + edits {
				d := env.edit(b, f, i)
				if i >= warmEdits {
					took = append(took, d)
				}
			}
			slices.Sort(took)
			var sum time.Duration
			for _, d := range took {
				sum += d
			}
			b.ReportMetric(float64(sum.Nanoseconds())/float64(len(took)), "ns/op")
			b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
			b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// folder is the scenario as files: one multi-document file, or one file
// per object.
type folder struct {
	dir    string
	one    bool
	docs   []string // YAML of every object, in order
	routes []int    // index in docs of HTTPRoute r
	names  []string // file name of every object (file per object)
	snapN  int      // the scenario's size
}

func newFolder(b *testing.B, n int, one bool, ports []gwv1.PortNumber) *folder {
	snap := scenario(n)
	// Listen where nothing else on loopback does.
	gw := snap.Gateways[0].DeepCopy()
	for i := range gw.Spec.Listeners {
		gw.Spec.Listeners[i].Port = ports[i]
	}
	snap.Gateways[0] = gw
	f := &folder{dir: b.TempDir(), one: one, snapN: n}
	add := func(o runtime.Object, name string) int {
		y, err := yaml.Marshal(o)
		if err != nil {
			b.Fatal(err)
		}
		f.docs = append(f.docs, string(y))
		f.names = append(f.names, name)
		return len(f.docs) - 1
	}
	for _, o := range snap.GatewayClasses {
		add(o, "gatewayclass-"+o.Name+".yaml")
	}
	for _, o := range snap.Gateways {
		add(o, "gateway-"+o.Name+".yaml")
	}
	for _, o := range snap.Secrets {
		add(o, "secret-"+o.Name+".yaml")
	}
	for _, o := range snap.Services {
		add(o, "service-"+o.Namespace+"-"+o.Name+".yaml")
	}
	for _, o := range snap.EndpointSlices {
		add(o, "endpointslice-"+o.Namespace+"-"+o.Name+".yaml")
	}
	f.routes = make([]int, n)
	for _, o := range snap.HTTPRoutes {
		var r int
		fmt.Sscanf(o.Name, "route-%d", &r)
		f.routes[r] = add(o, "httproute-"+o.Namespace+"-"+o.Name+".yaml")
	}
	if one {
		f.write(b, "config.yaml", strings.Join(f.docs, "---\n"))
	} else {
		for i, d := range f.docs {
			f.write(b, f.names[i], d)
		}
	}
	return f
}

// write replaces a file whole: a reader sees the old or the new version.
func (f *folder) write(b *testing.B, name, content string) {
	tmp := filepath.Join(f.dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.dir, name)); err != nil {
		b.Fatal(err)
	}
}

// editRoute rewrites HTTPRoute r with a new header value, and returns the
// file to write and its content.
func (f *folder) editRoute(b *testing.B, r int, tag string) (string, string) {
	y, err := yaml.Marshal(scenarioRoute(r, scenarioServices(f.snapN), tag))
	if err != nil {
		b.Fatal(err)
	}
	i := f.routes[r]
	f.docs[i] = string(y)
	if f.one {
		return "config.yaml", strings.Join(f.docs, "---\n")
	}
	return f.names[i], f.docs[i]
}

// standalone is the agent, xDS server and proxy of one benchmark.
type standalone struct {
	pub       *publish.Publisher
	published chan struct{}
}

// signalling tells the benchmark about every publication that changed
// something.
type signalling struct {
	*publish.Publisher
	ch chan struct{}
}

func (s signalling) Publish(ctx context.Context, cfg *ir.Config) (dataplane.Publication, error) {
	p, err := s.Publisher.Publish(ctx, cfg)
	if err == nil && p.Changed {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return p, err
}

func startStandalone(b *testing.B, dir string) *standalone {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	state, err := os.MkdirTemp("", "nm-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(state) })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	srv := server.New(server.WithLogger(log))
	sock := filepath.Join(state, "xds.sock")
	l, err := server.ListenUnix(sock)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Stop(time.Second) })
	env := &standalone{pub: publish.New(srv), published: make(chan struct{}, 1)}
	a, err := agent.New(agent.Config{Publisher: signalling{env.pub, env.published}, AddressPool: editPool, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	prov := file.New(dir, file.WithLogger(log))
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := prov.Watch(ctx, func(r *file.Result) { _ = a.Apply(ctx, r.Snapshot, r.Errors) }); err != nil {
			b.Error(err)
		}
	}()
	p, err := proxylib.New(proxylib.WithXDSAddress("unix://"+sock), proxylib.WithNodeID("bench"), proxylib.WithDelta(true),
		proxylib.WithAdminAddress(""), proxylib.WithDrainTimeout(time.Second), proxylib.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer wg.Done()
		if err := p.Run(ctx); err != nil {
			b.Error(err)
		}
	}()
	// The first configuration reaches the proxy.
	env.waitPublished(b)
	waitCtx, done := context.WithTimeout(ctx, time.Minute)
	defer done()
	// Waits on the server's change events (a proxy binding its node is
	// one), never polls.
	for {
		changed := env.pub.Changed()
		if len(env.pub.Proxies()) > 0 {
			break
		}
		select {
		case <-waitCtx.Done():
			b.Fatal("the proxy did not connect")
		case <-changed:
		}
	}
	if err := env.pub.WaitForAck(waitCtx); err != nil {
		b.Fatal(err)
	}
	return env
}

func (env *standalone) waitPublished(b *testing.B) {
	select {
	case <-env.published:
	case <-time.After(time.Minute):
		b.Fatal("nothing was published within a minute")
	}
}

// edit makes edit i and returns how long it took to reach the proxy.
func (env *standalone) edit(b *testing.B, f *folder, i int) time.Duration {
	// Spread edits over routes, so over virtual hosts.
	name, content := f.editRoute(b, (i*37)%f.snapN, fmt.Sprintf("edit-%d", i))
	select {
	case <-env.published: // left over from an earlier rescan
	default:
	}
	start := time.Now()
	f.write(b, name, content)
	env.waitPublished(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.pub.WaitForAck(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// freePorts returns ports nothing listens on at the Gateway's address.
func freePorts(b *testing.B, n int) []gwv1.PortNumber {
	var ports []gwv1.PortNumber
	for range n {
		l, err := net.Listen("tcp", editPool.Addr().Next().String()+":0")
		if err != nil {
			b.Fatal(err)
		}
		ports = append(ports, gwv1.PortNumber(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	return ports
}
