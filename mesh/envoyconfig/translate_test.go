package envoyconfig

import (
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// goodResources are a minimal listener with its route configuration, for
// bad-input cases to break one piece at a time.
const goodResources = `
  - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
    name: l
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          rds: {route_config_name: r}
          http_filters: [{name: envoy.filters.http.router}]
  - "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
    name: r
    virtual_hosts: [{name: r, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: default/svc}}]}]
  - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
    name: default/svc
    type: EDS
`

const svcYAML = `
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec: {clusterIP: 10.96.0.50, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: team}
spec: {clusterIP: 10.96.0.51, ports: [{name: http, port: 80}]}
`

func cec(ns, name, spec string) string {
	return "---\napiVersion: cilium.io/v2\nkind: CiliumEnvoyConfig\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n" + spec
}

// TestBadInput: each case's config is refused with its reason and a
// message naming the problem, and the good config beside it keeps being
// translated.
func TestBadInput(t *testing.T) {
	good := cec("default", "good", "  services: [{name: svc}]\n  resources:"+goodResources)
	cases := []struct {
		name, spec, reason, msg string
	}{
		{"unknown type", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.core.v3.Address}\n",
			ReasonInvalid, `resources[0]: type "type.googleapis.com/envoy.config.core.v3.Address" is not a Listener`},
		{"unknown field", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, no_such_field: 1}\n",
			ReasonInvalid, `resources[0]: decoding:`},
		{"unresolvable extension", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener, name: l, filter_chains: [{filters: [{name: x, typed_config: {\"@type\": type.googleapis.com/no.Such}}]}]}\n",
			ReasonInvalid, `resources[0]: decoding:`},
		{"fails Envoy validation", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, type: STATIC, connect_timeout: -1s}\n",
			ReasonInvalid, `resources[0] (Cluster "c"): invalid Cluster.ConnectTimeout`},
		{"unsupported by the proxy", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, type: STRICT_DNS}\n",
			ReasonUnsupported, `resources[0] (Cluster "c"): the builtin proxy cannot run it: cluster "cec/default/bad/c": type: STRICT_DNS not supported by nodemesh-proxy`},
		{"EDS name of no Service listed", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: default/nope, type: EDS}\n",
			ReasonInvalid, `Service default/nope is in neither spec.services nor spec.backendServices`},
		{"another namespace's Service", "  services: [{name: other, namespace: team}]\n  resources:" + goodResources,
			ReasonInvalid, `spec.services[0]: Service team/other is in another namespace than the CiliumEnvoyConfig`},
		{"no such listener", "  services: [{name: svc, listener: nope}]\n  resources:" + goodResources,
			ReasonInvalid, `spec.services[0]: listener "nope" is not among the config's resources`},
		{"Service already redirected", "  services: [{name: svc}]\n  resources:" + goodResources,
			ReasonConflict, `Service default/svc port 80 is already redirected by CiliumEnvoyConfig default/good`},
		{"socket of a Gateway", "  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener, name: l, address: {socket_address: {address: 127.0.50.1, port_value: 80}}, filter_chains: [{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: c}}]}]}\n",
			ReasonConflict, `127.0.50.1:80 is already bound by Gateway default/eg`},
		{"two resources of one name", "  resources:" + goodResources + "  - {\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration, name: r}\n",
			ReasonInvalid, `resources[3]: a second RouteConfiguration named "r"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Configs claim Service ports in name order; the one that
			// redirects a Service already redirected must come second.
			name := "bad"
			if strings.Contains(tc.msg, "already redirected") {
				name = "zbad"
			}
			tc.msg = strings.Replace(tc.msg, "cec/default/bad/", "cec/default/"+name+"/", 1)
			res := Translate(snapshotOf(t, tc.name, []byte(svcYAML+good+"\n"+cec("default", name, tc.spec))), testOptions())
			var bad, ok *Status
			for i := range res.Statuses {
				switch res.Statuses[i].Name {
				case name:
					bad = &res.Statuses[i]
				case "good":
					ok = &res.Statuses[i]
				}
			}
			if bad == nil || ok == nil {
				t.Fatalf("statuses %+v", res.Statuses)
			}
			if bad.Valid || bad.Reason != tc.reason || !strings.Contains(bad.Message, tc.msg) {
				t.Fatalf("got %+v\nwant reason %s and a message containing %q", *bad, tc.reason, tc.msg)
			}
			if !ok.Valid {
				t.Fatalf("the good config was refused: %+v", *ok)
			}
			for _, r := range res.Resources {
				if strings.HasPrefix(r.Name, ir.EnvoyConfigNamePrefix+"default/"+name+"/") {
					t.Errorf("refused config still emitted %s", r.Name)
				}
			}
			if err := (&ir.Config{Resources: res.Resources}).Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A refused config that names a Service makes that Service's traffic
// fail: its redirect is Refused, never dropped (which would let the
// traffic bypass the proxy the user put in its path).
func TestRefusedConfigRedirectsNothingButBlocks(t *testing.T) {
	bad := cec("default", "bad", "  services: [{name: svc}]\n  resources:\n  - {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, type: STRICT_DNS}\n")
	res := Translate(snapshotOf(t, "refused", []byte(svcYAML+bad)), testOptions())
	if len(res.Redirects) != 1 {
		t.Fatalf("redirects %+v", res.Redirects)
	}
	rd := res.Redirects[0]
	if !rd.Refused || rd.Listener != "" || rd.Bind.IsValid() || len(rd.Ports) != 1 || rd.Ports[0] != 80 {
		t.Fatalf("redirect %+v, want port 80 refused", rd)
	}
}

func TestNodeSelector(t *testing.T) {
	spec := func(sel string) string {
		return "---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideEnvoyConfig\nmetadata: {name: c}\nspec:\n  nodeSelector: " + sel +
			"\n  services: [{name: svc}]\n  resources:" + goodResources
	}
	for _, tc := range []struct {
		sel    string
		reason string
	}{
		{"{matchLabels: {role: worker}}", ReasonAccepted},
		{"{matchLabels: {role: infra}}", ReasonNotSelected},
		{"{matchExpressions: [{key: role, operator: In, values: [worker, infra]}]}", ReasonAccepted},
		{"{matchExpressions: [{key: role, operator: Sideways}]}", ReasonInvalid},
	} {
		res := Translate(snapshotOf(t, tc.sel, []byte(svcYAML+spec(tc.sel))), testOptions())
		if got := res.Statuses[0].Reason; got != tc.reason {
			t.Errorf("%s: %s (%s), want %s", tc.sel, got, res.Statuses[0].Message, tc.reason)
		}
		if tc.reason != ReasonAccepted && (len(res.Resources) > 0 || len(res.Redirects) > 0) {
			t.Errorf("%s: not selected, yet %d resources and %d redirects", tc.sel, len(res.Resources), len(res.Redirects))
		}
	}
}

// On a node that cannot redirect Services (no datapath Service table) a
// config with spec.services is refused as NotRedirected, its resources
// withheld; one without spec.services (backendServices only, a listener
// with its own address) still serves; an lb-l7 Service is refused the
// same way and gets no listener.
func TestCannotRedirect(t *testing.T) {
	redirecting := cec("default", "redirecting", "  services: [{name: svc}]\n  resources:"+goodResources)
	backendOnly := cec("default", "backend-only", "  backendServices: [{name: svc}]\n  resources:"+goodResources)
	lbl7 := `
---
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: default, annotations: {service.cilium.io/lb-l7: enabled}}
spec: {clusterIP: 10.96.0.52, ports: [{name: grpc, port: 50051}]}
`
	opts := testOptions()
	opts.CannotRedirect = true
	res := Translate(snapshotOf(t, "cannot-redirect", []byte(svcYAML+lbl7+redirecting+backendOnly)), opts)
	byName := map[string]Status{}
	for _, st := range res.Statuses {
		byName[st.Name] = st
	}
	if st := byName["redirecting"]; st.Valid || st.Reason != ReasonNotRedirected || !strings.Contains(st.Message, "--datapath-cgroup") {
		t.Fatalf("redirecting config: %+v, want refused as NotRedirected", st)
	}
	if st := byName["backend-only"]; !st.Valid || st.Reason != ReasonAccepted {
		t.Fatalf("backend-only config: %+v, want accepted", st)
	}
	if st := byName["grpc"]; st.Valid || st.Reason != ReasonNotRedirected {
		t.Fatalf("lb-l7 Service: %+v, want refused as NotRedirected", st)
	}
	for _, r := range res.Resources {
		if strings.HasPrefix(r.Name, ir.EnvoyConfigNamePrefix+"default/redirecting/") || strings.HasPrefix(r.Name, ir.ServiceLBNamePrefix) {
			t.Errorf("refused config still emitted %s", r.Name)
		}
	}
}
