package translator

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// FuzzTranslate feeds IR documents (seeded from the golden inputs): any
// Config that passes ir.Config.Validate must translate without error into
// resources that all pass Envoy's validation, deterministically.
func FuzzTranslate(f *testing.F) {
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		f.Fatalf("no seeds (%v)", err)
	}
	for _, in := range ins {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := decodeIR(data)
		if err != nil || cfg.Validate() != nil {
			return
		}
		checkTranslates(t, cfg)
	})
}

// FuzzTranslateFields puts arbitrary strings and weights where YAML input
// rarely gets them (invalid UTF-8, control bytes, huge values): names,
// paths, header and query matches and edits, hostnames, bodies, SNI, ALPN.
func FuzzTranslateFields(f *testing.F) {
	f.Add("svc/default/a", "/path", "x-h", "value", "q", "example.com", "body", uint32(1), uint32(0))
	f.Add("a%\xff", "/a?b", "host", "50%", "", "*.Example.com", "\xff", uint32(4294967295), uint32(4294967295))
	f.Add("n", "/", "x", "\x00", "q\n", "::1", "", uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, name, path, header, value, query, host, body string, w1, w2 uint32) {
		checkTranslates(t, fieldsConfig(name, path, header, value, query, host, body, w1, w2))
	})
}

func checkTranslates(t *testing.T, cfg *ir.Config) {
	t.Helper()
	if cfg.Validate() != nil {
		return
	}
	res, err := Translate(cfg)
	if err != nil {
		t.Fatalf("valid IR did not translate: %v", err)
	}
	requireValid(t, res)
	again, err := Translate(cfg)
	if err != nil {
		t.Fatalf("second translation failed: %v", err)
	}
	requireEqual(t, res, again)
}

func fieldsConfig(name, path, header, value, query, host, body string, w1, w2 uint32) *ir.Config {
	mods := &ir.HeaderModifier{
		Set:    []ir.Header{{Name: header, Value: value}},
		Add:    []ir.Header{{Name: header, Value: value}},
		Remove: []string{header},
	}
	prefix := &ir.PathMatch{Type: ir.PathPrefix, Value: path}
	routes := []*ir.Route{
		{
			Name: name + "/exact",
			Match: ir.Match{
				Path:    &ir.PathMatch{Type: ir.PathExact, Value: path},
				Method:  header,
				Headers: []ir.HeaderMatch{{Name: header, Type: ir.MatchExact, Value: value}},
				Query:   []ir.QueryMatch{{Name: query, Type: ir.MatchExact, Value: value}},
			},
			Backends:        []*ir.WeightedBackend{{Cluster: name, Weight: w1, RequestHeaders: mods}, {Weight: w2}},
			RequestHeaders:  mods,
			ResponseHeaders: mods,
			Rewrite:         &ir.Rewrite{Hostname: host, Path: &ir.PathRewrite{Type: ir.ReplaceFullPath, Value: path}},
		},
		{
			Name:     name + "/prefix",
			Match:    ir.Match{Path: prefix},
			Backends: []*ir.WeightedBackend{{Cluster: name, Weight: w1}, {Cluster: name, Weight: w2, ResponseHeaders: mods}},
			Rewrite:  &ir.Rewrite{Path: &ir.PathRewrite{Type: ir.ReplacePrefixMatch, Value: path}},
		},
		{
			Name:     name + "/regex",
			Match:    ir.Match{Path: &ir.PathMatch{Type: ir.PathRegex, Value: regexp.QuoteMeta(path)}},
			Backends: []*ir.WeightedBackend{{Cluster: name, Weight: w2}},
		},
		{
			Name:     name + "/redirect",
			Match:    ir.Match{Path: prefix},
			Redirect: &ir.Redirect{Scheme: "https", Hostname: host, Port: w1 % 65536, StatusCode: 307, Path: &ir.PathRewrite{Type: ir.ReplacePrefixMatch, Value: path}},
		},
		{
			Name:            name + "/direct",
			DirectResponse:  &ir.DirectResponse{Status: 200, Body: body},
			ResponseHeaders: mods,
		},
	}
	return &ir.Config{
		Listeners: []*ir.Listener{{
			Name: name, Address: "127.0.0.1", Port: 443,
			Chains: []*ir.HTTPChain{{
				Name:        name,
				ServerNames: []string{host},
				TLS:         &ir.TLS{Certificates: []string{name}, ALPN: []string{value, query}},
				Routes: &ir.RouteTable{Name: name, VirtualHosts: []*ir.VirtualHost{
					{Name: name, Domains: []string{host}, Routes: routes},
					{Name: name + "/any", Domains: []string{"*"}, Routes: routes},
				}},
			}},
		}},
		Clusters: []*ir.Cluster{{Name: name, Protocol: ir.ProtocolH2C, LBPolicy: ir.LBLeastRequest,
			Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: 1, Ready: true}}}},
		Secrets: []*ir.Secret{{Name: name, Certificate: []byte(body + "c"), PrivateKey: []byte(value + "k")}},
	}
}
