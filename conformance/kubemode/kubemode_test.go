package kubemode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/conformance/internal/taint"
	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/gateway/controller"
	"github.com/nodemesh/nodemesh/gateway/nodereport"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/echo"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
	"github.com/nodemesh/nodemesh/xds/server"
)

type node struct {
	pub  *taint.Publisher
	core kubernetes.Interface
	gw   gwclient.Interface
	bed  *testbed.Bed
}

// startNode runs, in this process, what one node and the control plane
// run in Kubernetes mode: provider → agent → xDS server → builtin proxy,
// the node's status reporter, and nodemesh-controller.
func startNode(t *testing.T, pool netip.Prefix) *node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	cluster := controlplane.ForTest(t, "standard")
	bed, err := testbed.Create(testbed.Config{Workloads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bed.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	core, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gwclient.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nm-kube")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv := server.New(server.WithLogger(log))
	l, err := server.ListenUnix(dir + "/xds.sock")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	pub := taint.New(srv)
	a, err := agent.New(agent.Config{Publisher: pub, Addresses: kube.StatusAddresses{}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stops []chan error
	run := func(f func() error) {
		done := make(chan error, 1)
		stops = append(stops, done)
		go func() { done <- f() }()
	}
	t.Cleanup(func() {
		cancel()
		for _, d := range stops {
			select {
			case err := <-d:
				if err != nil {
					t.Errorf("component exited with %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("component did not stop")
			}
		}
	})
	prov := kube.New(core, gw, kube.WithLogger(log))
	run(func() error {
		return prov.Watch(ctx, func(s *input.Snapshot) { _ = a.Apply(ctx, s, nil) })
	})
	status := func() nodereport.AgentStatus {
		st := a.Status()
		return nodereport.AgentStatus{Gateways: st.Gateways, Proxies: st.Proxies, PublishError: st.PublishError}
	}
	rep := nodereport.NewReporter(dyn, core, "node-1", gateway.ControllerName, status, nodereport.WithReporterLogger(log), nodereport.WithReportIntervals(50*time.Millisecond, 30*time.Second))
	run(func() error { rep.Run(ctx); return nil })
	ctrl, err := controller.New(core, gw, dyn, pool, controller.WithLogger(log), controller.WithResync(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	run(func() error { return ctrl.Run(ctx) })
	// The proxy runs inside the bed's node namespace, where the backends'
	// addresses are routed (EndpointSlices may not hold loopback
	// addresses, so backends live in workload namespaces).
	bin := dir + "/nodemesh-proxy"
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nodemesh/nodemesh/cmd/nodemesh-proxy").CombinedOutput(); err != nil {
		t.Fatalf("building nodemesh-proxy: %v\n%s", err, out)
	}
	proxy := exec.Command("ip", "netns", "exec", bed.Node.Name, bin,
		"--xds-address=unix://"+dir+"/xds.sock", "--node-id=proxy-1", "--admin-address=", "--drain-timeout=1s", "--log-level=warn")
	proxy.Stdout, proxy.Stderr = os.Stderr, os.Stderr
	proxy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	run(func() error {
		<-ctx.Done()
		_ = proxy.Process.Signal(syscall.SIGTERM)
		_ = proxy.Wait()
		return nil
	})
	return &node{pub: pub, core: core, gw: gw, bed: bed}
}

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func programmed(g *gwv1.Gateway) *metav1.Condition {
	return meta.FindStatusCondition(g.Status.Conditions, string(gwv1.GatewayConditionProgrammed))
}

// TestKubernetesModeEndToEnd: objects on the API server become traffic
// through the proxy; Programmed turns True only once the proxy ACKed; a
// NACK reaches the Gateway condition with the proxy's message while the
// last good configuration keeps serving; deleting the Gateway removes its
// listener and frees its address.
func TestKubernetesModeEndToEnd(t *testing.T) {
	pool := netip.MustParsePrefix("127.0.71.0/24")
	n := startNode(t, pool)
	ctx := context.Background()
	ns := "default"

	// A backend in a workload namespace, published through a Service and
	// a hand-made EndpointSlice (no kube-controller-manager runs here).
	w := n.bed.Workloads[0]
	l, err := w.Listen("tcp", net.JoinHostPort(w.IPv4.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: echo.Handler("v1")}
	go backend.Serve(l)
	t.Cleanup(func() { backend.Close() })
	bport := int32(l.Addr().(*net.TCPAddr).Port)
	if _, err := n.core.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	portName := "http"
	if _, err := n.core.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{discoveryv1.LabelServiceName: "echo"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{w.IPv4.String()}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &bport}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	gws := n.gw.GatewayV1().Gateways(ns)
	if _, err := n.gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nodemesh"},
		Spec: gwv1.GatewayClassSpec{ControllerName: gateway.ControllerName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	if _, err := gws.Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "nodemesh",
		Listeners:        []gwv1.Listener{{Name: "http", Port: gwv1.PortNumber(port), Protocol: gwv1.HTTPProtocolType}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	route := func(header string) *gwv1.HTTPRoute {
		return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web"}}},
			Rules: []gwv1.HTTPRouteRule{{
				Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterResponseHeaderModifier,
					ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X-Route", Value: header}}}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{
					Name: "echo", Port: ptr(gwv1.PortNumber(80))}}}},
			}},
		}}
	}
	routes := n.gw.GatewayV1().HTTPRoutes(ns)
	if _, err := routes.Create(ctx, route("one"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var addr string
	eventually(t, "Gateway programmed", func() error {
		g, err := gws.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := programmed(g); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Programmed %+v", c)
		}
		addr = g.Status.Addresses[0].Value
		return nil
	})
	if addr != "127.0.71.1" {
		t.Fatalf("address %s, want the pool's first", addr)
	}
	url := "http://" + net.JoinHostPort(addr, strconv.Itoa(port)) + "/"
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: n.bed.Node.Dial, DisableKeepAlives: true}}
	get := func() (int, string, error) {
		c := client
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Route"), nil
	}
	eventually(t, "traffic through the proxy", func() error {
		code, h, err := get()
		if err != nil || code != 200 || h != "one" {
			return fmt.Errorf("%d %q %v", code, h, err)
		}
		return nil
	})

	// The proxy rejects the next listener update: the Gateway says so,
	// with the proxy's message, on the API server.
	n.pub.Armed.Store(true)
	update := func(header string) {
		eventually(t, "route update", func() error {
			r, err := routes.Get(ctx, "r", metav1.GetOptions{})
			if err != nil {
				return err
			}
			r.Spec = route(header).Spec
			_, err = routes.Update(ctx, r, metav1.UpdateOptions{})
			return err
		})
	}
	update("two")
	eventually(t, "NACK on the Gateway", func() error {
		g, err := gws.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := programmed(g)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Invalid" {
			return fmt.Errorf("Programmed %+v", c)
		}
		if !strings.Contains(c.Message, "node node-1") || !strings.Contains(c.Message, "tracing") {
			return fmt.Errorf("message %q lacks the node or the proxy's error", c.Message)
		}
		return nil
	})
	// The listener keeps serving its last good configuration.
	if code, _, err := get(); err != nil || code != 200 {
		t.Fatalf("after NACK: %d %v", code, err)
	}

	// A control plane the proxy understands again converges.
	n.pub.Armed.Store(false)
	update("three")
	eventually(t, "programmed after recovery", func() error {
		g, err := gws.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := programmed(g); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Programmed %+v", c)
		}
		code, h, err := get()
		if err != nil || code != 200 || h != "three" {
			return fmt.Errorf("%d %q %v", code, h, err)
		}
		return nil
	})

	// Deleting the Gateway removes its listener and frees its address.
	if err := gws.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listener removed", func() error {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := n.bed.Node.Dial(dctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return fmt.Errorf("%s still accepts connections", addr)
		}
		return nil
	})
	port2 := freePort(t)
	if _, err := gws.Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "next"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "nodemesh",
		Listeners:        []gwv1.Listener{{Name: "http", Port: gwv1.PortNumber(port2), Protocol: gwv1.HTTPProtocolType}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "address reused", func() error {
		g, err := gws.Get(ctx, "next", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != addr {
			return fmt.Errorf("addresses %+v", g.Status.Addresses)
		}
		if c := programmed(g); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Programmed %+v", c)
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }
