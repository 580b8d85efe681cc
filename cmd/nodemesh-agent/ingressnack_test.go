package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// TestIngressRejectionEvent runs the Kubernetes mode for real (an API
// server, the agent, the xDS server and the builtin proxy) with an
// Ingress whose listener the proxy cannot bind (its address and port are
// held by another socket): the proxy's NACK, attributed to the Ingress by
// the listener's name, reaches that Ingress as a Warning Event with the
// proxy's error, once while the rejection stands.
func TestIngressRejectionEvent(t *testing.T) {
	kc := controlplane.ForTest(t, "standard")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	state, err := os.MkdirTemp("", "nm-ing")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// The dedicated Ingress's address (a pool of one), and something
	// else holding its port 80.
	const addr = "127.0.103.7"
	held, err := net.Listen("tcp", addr+":80")
	must(t, err)
	t.Cleanup(func() { held.Close() })

	srv := server.New(server.WithLogger(log))
	l, err := server.ListenUnix(filepath.Join(state, "xds.sock"))
	must(t, err)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	a, err := agent.New(agent.Config{Publisher: publish.New(srv), AddressPool: netip.MustParsePrefix(addr + "/32"), Logger: log})
	must(t, err)
	errc := make(chan error, 4)
	must(t, runKubernetes(ctx, log, a, kc.Kubeconfig, "node-1", "nodemesh.io/gateway-controller", false, errc))
	proxyDone := runProxy(ctx, t, state, "ing-test", log)
	t.Cleanup(func() {
		cancel()
		select {
		case <-proxyDone:
		case <-time.After(10 * time.Second):
			t.Error("the proxy did not stop within 10s")
		}
	})

	core, err := kubernetes.NewForConfig(kc.Config)
	must(t, err)
	_, err = core.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	must(t, err)
	class := "nodemesh"
	ingress := func(name string) *networkingv1.Ingress {
		return &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, DefaultBackend: &networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
		}
	}
	ing, err := core.NetworkingV1().Ingresses("default").Create(ctx, ingress("unbindable"), metav1.CreateOptions{})
	must(t, err)
	// The address, as the controller assigns it (agents read it from
	// the Ingress's status).
	ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: addr}}
	_, err = core.NetworkingV1().Ingresses("default").UpdateStatus(ctx, ing, metav1.UpdateOptions{})
	must(t, err)

	events := func(name string) []corev1.Event {
		t.Helper()
		list, err := core.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.kind": "Ingress", "involvedObject.name": name}.String()})
		must(t, err)
		return list.Items
	}
	var got corev1.Event
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-errc:
			t.Fatalf("the Kubernetes provider stopped: %v", err)
		default:
		}
		if evs := events("unbindable"); len(evs) > 0 {
			got = evs[0]
			break
		}
		if time.Now().After(deadline) {
			st := a.Status()
			t.Fatalf("no Event on the Ingress; agent status: ingresses %+v, rejections %+v, proxies %+v, versions %v, publish error %q, config errors %q",
				st.Ingresses, st.IngressRejections, st.Proxies, st.Versions, st.PublishError, st.ConfigErrors)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.Type != corev1.EventTypeWarning || got.Reason != reasonProxyRejected || !strings.Contains(got.Message, addr+":80") ||
		!strings.Contains(got.Message, "proxy ing-test rejected Listener") || got.Source.Host != "node-1" {
		t.Errorf("Event %s %s from %+v: %q; want a Warning ProxyRejected from node-1 naming the proxy and %s:80",
			got.Type, got.Reason, got.Source, got.Message, addr)
	}

	// The rejection stays, and is not reported again.
	time.Sleep(500 * time.Millisecond)
	if n := len(events("unbindable")); n != 1 {
		t.Errorf("%d Events on the Ingress, want 1", n)
	}
}
