package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/gateway/address"
	"github.com/nodemesh/nodemesh/internal/systemca"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// translateOffline runs what the agent's Apply runs before publishing —
// address assignment from a fresh pool, then the Gateway API translation —
// for one snapshot. systemCAs is the host's CA bundle, which the agent
// reads the same way (internal/systemca); nil refuses BackendTLSPolicies
// that trust it, as the agent does on a host without one.
func translateOffline(snap *input.Snapshot, pool netip.Prefix, ing gateway.IngressOptions, systemCAs []byte) *gateway.Result {
	want := append(address.OwnGateways(snap, gateway.ControllerName), gateway.IngressAddressRequests(snap, ing)...)
	addrs, problems := address.New(pool).Assign(want)
	ing.UseIngressAddresses(addrs)
	return gateway.Translate(snap, gateway.Options{ControllerName: gateway.ControllerName, Addresses: addrs, AddressProblems: problems, Ingress: ing, SystemCAs: systemCAs})
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// translateCmd runs the agent's translation offline and prints the result.
func translateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("translate", flag.ContinueOnError)
	var files stringList
	fs.Var(&files, "f", "YAML/JSON file or directory of them ('-' for stdin); repeatable")
	output := fs.String("o", "yaml", "output format: yaml or json")
	typ := fs.String("type", "all", "what to print: all, listeners, routes, clusters, endpoints, secrets, ir, status")
	pool := fs.String("address-pool", address.DefaultPool.String(), "prefix Gateway and Ingress addresses are assigned from")
	var ing gateway.IngressOptions
	ing.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("translate: at least one -f is required")
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("parsing --address-pool: %w", err)
	}
	objs, err := readObjects(files)
	if err != nil {
		return err
	}
	snap, err := input.Build(objs)
	if err != nil {
		return err
	}
	systemCAs, _, caErr := systemca.Load()
	if caErr != nil {
		fmt.Fprintf(stderr, "warning: BackendTLSPolicies trusting the system CAs are refused: %v\n", caErr)
	}
	res := translateOffline(snap, prefix, ing, systemCAs)
	reportProblems(stderr, res)

	var doc any
	switch *typ {
	case "ir":
		doc = res.Config
	case "status":
		doc = struct {
			GatewayClasses []gateway.GatewayClassStatus `json:"gatewayClasses,omitempty"`
			Gateways       []gateway.GatewayStatus      `json:"gateways,omitempty"`
			ListenerSets   []gateway.ListenerSetStatus  `json:"listenerSets,omitempty"`
			Routes         []gateway.RouteStatus        `json:"routes,omitempty"`
			Policies       []gateway.PolicyStatus       `json:"policies,omitempty"`
			Ingresses      []gateway.IngressStatus      `json:"ingresses,omitempty"`
		}{res.GatewayClasses, res.Gateways, res.ListenerSets, res.Routes, res.Policies, res.Ingresses}
	default:
		out, err := translator.Translate(res.Config)
		if err != nil {
			return err
		}
		for _, w := range out.Warnings {
			fmt.Fprintln(stderr, "warning:", w.String())
		}
		doc, err = envoyDoc(out, *typ)
		if err != nil {
			return err
		}
	}
	return render(stdout, doc, *output)
}

// maxFileSize bounds each file (and stdin) translate reads, as the agent
// bounds its config files.
const maxFileSize = file.DefaultMaxFileSize

// readObjects decodes every file named (directories: their *.yaml, *.yml
// and *.json files) and reports all decoding errors together.
func readObjects(paths []string) ([]input.Object, error) {
	var objs []input.Object
	var errs []error
	decode := func(name string, data []byte) {
		o, err := input.Decode(name, data)
		if err != nil {
			errs = append(errs, err)
			return
		}
		objs = append(objs, o...)
	}
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(io.LimitReader(os.Stdin, maxFileSize+1))
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			if len(data) > maxFileSize {
				return nil, fmt.Errorf("reading stdin: more than %d bytes", maxFileSize)
			}
			decode("stdin", data)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		names := []string{p}
		if fi.IsDir() {
			names = nil
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				switch strings.ToLower(filepath.Ext(e.Name())) {
				case ".yaml", ".yml", ".json":
					if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
						names = append(names, filepath.Join(p, e.Name()))
					}
				}
			}
			sort.Strings(names)
		}
		for _, n := range names {
			data, err := file.ReadFile(n, maxFileSize)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", n, err)
			}
			decode(n, data)
		}
	}
	return objs, errors.Join(errs...)
}

// reportProblems prints every condition that is not healthy, so a user
// translating offline sees what the agent would put in status.
func reportProblems(w io.Writer, res *gateway.Result) {
	bad := func(kind, name string, conds []metav1.Condition) {
		for _, c := range conds {
			healthy := c.Status == metav1.ConditionTrue
			if c.Type == "Conflicted" {
				healthy = c.Status == metav1.ConditionFalse
			}
			if !healthy {
				fmt.Fprintf(w, "%s %s: %s=%s (%s): %s\n", kind, name, c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
	for _, g := range res.Gateways {
		bad("Gateway", g.Key.String(), g.Status.Conditions)
		for _, l := range g.Status.Listeners {
			bad("Gateway", g.Key.String()+" listener "+string(l.Name), l.Conditions)
		}
	}
	for _, ls := range res.ListenerSets {
		bad("ListenerSet", ls.Key.String(), ls.Status.Conditions)
		for _, l := range ls.Status.Listeners {
			bad("ListenerSet", ls.Key.String()+" listener "+string(l.Name), l.Conditions)
		}
	}
	for _, r := range res.Routes {
		for _, p := range r.Status.Parents {
			bad(string(r.Kind), r.Key.String()+" parent "+string(p.ParentRef.Name), p.Conditions)
		}
	}
	for _, p := range res.Policies {
		for _, a := range p.Status.Ancestors {
			bad(string(p.Kind), p.Key.String()+" ancestor "+string(a.AncestorRef.Name), a.Conditions)
		}
	}
	for _, ing := range res.Ingresses {
		for _, p := range ing.Problems {
			fmt.Fprintln(w, p)
		}
	}
}

type envoyOutput struct {
	Listeners []json.RawMessage `json:"listeners,omitempty"`
	Routes    []json.RawMessage `json:"routes,omitempty"`
	Clusters  []json.RawMessage `json:"clusters,omitempty"`
	Endpoints []json.RawMessage `json:"endpoints,omitempty"`
	Secrets   []json.RawMessage `json:"secrets,omitempty"`
}

func envoyDoc(r *translator.Resources, typ string) (any, error) {
	var out envoyOutput
	var err error
	add := func(dst *[]json.RawMessage, m proto.Message) {
		if err != nil {
			return
		}
		var a *anypb.Any
		if a, err = anypb.New(m); err != nil {
			return
		}
		var b []byte
		if b, err = (protojson.MarshalOptions{UseProtoNames: true}).Marshal(a); err == nil {
			*dst = append(*dst, b)
		}
	}
	want := func(t string) bool { return typ == "all" || typ == t }
	switch typ {
	case "all", "listeners", "routes", "clusters", "endpoints", "secrets":
	default:
		return nil, fmt.Errorf("unknown --type %q", typ)
	}
	if want("listeners") {
		for _, m := range r.Listeners {
			add(&out.Listeners, m)
		}
	}
	if want("routes") {
		for _, m := range r.RouteConfigurations {
			add(&out.Routes, m)
		}
	}
	if want("clusters") {
		for _, m := range r.Clusters {
			add(&out.Clusters, m)
		}
	}
	if want("endpoints") {
		for _, m := range r.ClusterLoadAssignments {
			add(&out.Endpoints, m)
		}
	}
	if want("secrets") {
		for _, m := range r.Secrets {
			add(&out.Secrets, redacted(m))
		}
	}
	return out, err
}

// redacted hides private keys, as Envoy's config dump does.
func redacted(s *tlsv3.Secret) *tlsv3.Secret {
	c := proto.Clone(s).(*tlsv3.Secret)
	if tc := c.GetTlsCertificate(); tc != nil && tc.PrivateKey != nil {
		tc.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
	}
	return c
}

func render(w io.Writer, doc any, format string) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	switch format {
	case "json":
		_, err = fmt.Fprintf(w, "%s\n", b)
	case "yaml":
		var y []byte
		if y, err = yaml.JSONToYAML(b); err == nil {
			_, err = w.Write(y)
		}
	default:
		err = fmt.Errorf("unknown output format %q (yaml or json)", format)
	}
	return err
}
