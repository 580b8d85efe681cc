package lab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// TestLabGAMMA steers a Service with GAMMA routes on two nodes: clients
// in the Service's namespace (app, node-1) and in another (shop, node-2)
// call echo by name. The producer route (app) sends every request to v1
// with x-gamma: producer added; the consumer route (shop) sends /x to v2.
// Each affects only its clients: app's client gets v1 and the header on
// every path, shop's client gets v2 without the header on /x, and on other
// paths a 404: shop's route replaced the Service for shop's clients
// (GEP-1294) and the producer route is not theirs. A GRPCRoute on
// grpc-echo pins every call
// of one connection to grpc-1. The routes' status names the Service as
// parent.
func TestLabGAMMA(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	if l.Nodes[0].Cgroup == "" {
		if os.Getenv(controlplane.IntegrationEnv) == "1" {
			t.Fatal("no cgroup v2 hierarchy for the lab's Pods: Services cannot be redirected at the socket")
		}
		t.Skip("no cgroup v2 hierarchy on this machine: Services cannot be redirected at the socket")
	}
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/gamma.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitServices(ctx, *s, l.Client, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/gamma-routes.yaml"}); err != nil {
		t.Fatal(err)
	}

	// get runs curl in a client Pod and returns the status, the backend
	// (x-echo-backend) and whether the backend saw x-gamma.
	type result struct {
		code, backend string
		header        bool
	}
	get := func(ns, path string) result {
		argv, err := s.ExecArgv(ctx, ns, "client", "", []string{"curl", "-sS", "--max-time", "10",
			"-w", "\n%{http_code} %header{x-echo-backend}", "http://echo.app.svc.cluster.local" + path})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := run(t, argv, "")
		out = strings.TrimRight(out, "\n")
		i := strings.LastIndexByte(out, '\n')
		f := strings.Fields(out[i+1:])
		for len(f) < 2 {
			f = append(f, "")
		}
		return result{f[0], f[1], strings.Contains(out[:max(i, 0)], `"x-gamma"`)}
	}
	want := func(ns, path, backend string, header bool) func() error {
		return func() error {
			r := get(ns, path)
			if r.code != "200" || !strings.HasPrefix(r.backend, backend) || r.header != header {
				return fmt.Errorf("%s %s: %+v, want 200 from %s with x-gamma %v", ns, path, r, backend, header)
			}
			return nil
		}
	}
	eventually(t, "app's client on the producer route", 2*time.Minute, want("app", "/", "echo-v1-", true))
	eventually(t, "shop's client on the consumer route", 2*time.Minute, want("shop", "/x", "echo-v2-", false))
	for range 5 {
		for _, check := range []func() error{
			want("app", "/", "echo-v1-", true), want("app", "/x", "echo-v1-", true), want("shop", "/x/y", "echo-v2-", false),
		} {
			if err := check(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// shop's other paths: no route of shop's chain matches them, so the
	// proxy answers 404 rather than falling back to the Service.
	if r := get("shop", "/"); r.code != "404" || r.backend != "" || r.header {
		t.Fatalf("shop /: %+v, want the proxy's 404 (no route of shop's matches)", r)
	}

	t.Run("GRPCRoute", func(t *testing.T) {
		svc, err := l.Client.CoreV1().Services("app").Get(ctx, "grpc-echo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		// Three connections: without the route each lands on one backend
		// at random, so all three on grpc-1 by chance is 1 in 8.
		eventually(t, "every call of three connections on grpc-1", 2*time.Minute, func() error {
			for range 3 {
				full, err := s.ExecArgv(ctx, "app", "client", "", []string{"env", grpcClientEnv + "=" + svc.Spec.ClusterIP + ":50051",
					self, "-test.run=^TestLabGRPCClient$", "-test.count=1", "-test.v"})
				if err != nil {
					t.Fatal(err)
				}
				out, code := run(t, full, "")
				if code != 0 {
					return fmt.Errorf("gRPC client failed (%d):\n%s", code, out)
				}
				if n := strings.Count(out, "backend grpc-1\n"); n != 100 {
					return fmt.Errorf("%d of 100 calls on grpc-1:\n%s", n, out)
				}
			}
			return nil
		})
	})

	t.Run("status", func(t *testing.T) {
		gw, err := gwclient.NewForConfig(l.Config)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the consumer route accepted by its Service parent", time.Minute, func() error {
			r, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "consumer", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, p := range r.Status.Parents {
				if p.ParentRef.Kind != nil && *p.ParentRef.Kind == "Service" && string(p.ParentRef.Name) == "echo" &&
					len(p.Conditions) > 0 && p.Conditions[0].Type == "Accepted" && p.Conditions[0].Status == metav1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("status %+v", r.Status.Parents)
		})
	})
}
