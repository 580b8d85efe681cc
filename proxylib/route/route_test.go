package route

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

func vh(name string, domains ...string) *resource.VirtualHost {
	return &resource.VirtualHost{Name: name, Domains: domains, Routes: []*resource.Route{{Name: name, PathKind: resource.PathPrefix, PathValue: "/"}}}
}

func TestVirtualHostSelection(t *testing.T) {
	tbl := New(&resource.RouteConfig{Name: "rc", VirtualHosts: []*resource.VirtualHost{
		vh("exact", "foo.example.com"),
		vh("suffix-long", "*.bar.example.com"),
		vh("suffix", "*.example.com"),
		vh("suffix-dash", "*-api.example.org"),
		vh("prefix", "foo.*"),
		vh("prefix-long", "foo.bar.*"),
		vh("port", "ported.example:8080"),
		vh("default", "*"),
	}})
	cases := map[string]string{
		"foo.example.com":      "exact",
		"FOO.Example.COM":      "exact",
		"a.bar.example.com":    "suffix-long",
		"a.b.example.com":      "suffix",
		"example.com":          "default",
		".example.com":         "default",
		"x-api.example.org":    "suffix-dash",
		"foo.other":            "prefix",
		"foo.bar.baz":          "prefix-long",
		"ported.example:8080":  "port",
		"ported.example":       "default",
		"a.example.com:8080":   "default",
		"foo.example.com:8080": "prefix",
		"":                     "default",
	}
	for host, want := range cases {
		got := tbl.VirtualHost([]byte(host))
		if got == nil || got.Name != want {
			t.Errorf("host %q: got %v, want %s", host, got, want)
		}
	}
	// ignore_port_in_host_matching: the port never takes part in
	// selection, IPv6 brackets stay.
	noPort := New(&resource.RouteConfig{Name: "rc", IgnorePort: true, VirtualHosts: []*resource.VirtualHost{
		vh("exact", "foo.example.com"),
		vh("suffix", "*.example.com"),
		vh("v6", "[::1]"),
		vh("default", "*"),
	}})
	for host, want := range map[string]string{
		"foo.example.com:8080": "exact",
		"foo.example.com":      "exact",
		"a.example.com:80":     "suffix",
		"[::1]:8080":           "v6",
		"[::1]":                "v6",
		"foo.example.com:":     "default",
		"other:1":              "default",
	} {
		if got := noPort.VirtualHost([]byte(host)); got == nil || got.Name != want {
			t.Errorf("ignoring ports, host %q: got %v, want %s", host, got, want)
		}
	}
	empty := New(&resource.RouteConfig{Name: "e", VirtualHosts: []*resource.VirtualHost{vh("only", "only.example")}})
	if empty.VirtualHost([]byte("other")) != nil {
		t.Error("unmatched host selected a virtual host")
	}
}

func rt(name string, kind resource.PathKind, v string) *resource.Route {
	r := &resource.Route{Name: name, PathKind: kind, PathValue: v}
	if kind == resource.PathRegex {
		r.PathRegex = regexp.MustCompile("^(?:" + v + ")$")
	}
	return r
}

func TestRouteMatching(t *testing.T) {
	hdr := func(r *resource.Route, m resource.HeaderMatch) *resource.Route {
		r.Headers = append(r.Headers, m)
		return r
	}
	exactVal := func(s string) resource.StringMatch { return resource.StringMatch{Exact: s} }
	routes := []*resource.Route{
		hdr(rt("method", resource.PathPrefix, "/m"), resource.HeaderMatch{Name: ":method", Kind: resource.HeaderString, String: exactVal("POST")}),
		hdr(rt("joined", resource.PathPrefix, "/j"), resource.HeaderMatch{Name: "x-v", Kind: resource.HeaderString, String: exactVal("a,b")}),
		hdr(rt("absent-inverted", resource.PathPrefix, "/inv"), resource.HeaderMatch{Name: "x-missing", Kind: resource.HeaderString, String: exactVal("z"), Invert: true}),
		hdr(rt("not-present", resource.PathPrefix, "/np"), resource.HeaderMatch{Name: "x-missing", Kind: resource.HeaderPresent, Present: false}),
		rt("exact", resource.PathExact, "/exact"),
		rt("regex", resource.PathRegex, "/re/[0-9]+"),
		rt("sep", resource.PathSeparatedPrefix, "/sep"),
		{Name: "query", PathKind: resource.PathPrefix, PathValue: "/q", Query: []resource.QueryMatch{{Name: "a b", String: &resource.StringMatch{Exact: "x/y"}}}},
		{Name: "query-present", PathKind: resource.PathPrefix, PathValue: "/qp", Query: []resource.QueryMatch{{Name: "flag"}}},
		rt("prefix", resource.PathPrefix, "/p"),
	}
	tbl := New(&resource.RouteConfig{Name: "rc", VirtualHosts: []*resource.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: routes}}})
	type req struct {
		method, path string
		headers      []string
	}
	cases := []struct {
		req  req
		want string
	}{
		{req{"POST", "/m", nil}, "method"},
		{req{"GET", "/m", nil}, "-"},
		{req{"GET", "/j", []string{"x-v", "a", "x-v", "b"}}, "joined"},
		{req{"GET", "/j", []string{"x-v", "a"}}, "-"},
		{req{"GET", "/inv", nil}, "-"},
		{req{"GET", "/inv", []string{"x-missing", "y"}}, "absent-inverted"},
		{req{"GET", "/inv", []string{"x-missing", "z"}}, "-"},
		{req{"GET", "/np", nil}, "not-present"},
		{req{"GET", "/np", []string{"x-missing", "1"}}, "-"},
		{req{"GET", "/exact?x=1", nil}, "exact"},
		{req{"GET", "/exact/", nil}, "-"},
		{req{"GET", "/re/123?q", nil}, "regex"},
		{req{"GET", "/re/12a", nil}, "-"},
		{req{"GET", "/sep", nil}, "sep"},
		{req{"GET", "/sep/x", nil}, "sep"},
		{req{"GET", "/sepx", nil}, "-"},
		{req{"GET", "/q?z=1&a+b=x%2Fy", nil}, "query"},
		{req{"GET", "/q?a%20b=x/y&a+b=other", nil}, "query"},
		{req{"GET", "/q?a+b=other&a+b=x/y", nil}, "-"},
		{req{"GET", "/qp?flag", nil}, "query-present"},
		{req{"GET", "/qp?flags=1", nil}, "-"},
		{req{"GET", "/pre", nil}, "prefix"},
	}
	for _, tc := range cases {
		r := &Request{Method: []byte(tc.req.method), Path: []byte(tc.req.path), Authority: []byte("h")}
		for i := 0; i < len(tc.req.headers); i += 2 {
			r.Headers.Add([]byte(tc.req.headers[i]), []byte(tc.req.headers[i+1]))
		}
		_, got := tbl.Match(r)
		name := "-"
		if got != nil {
			name = got.Name
		}
		if name != tc.want {
			t.Errorf("%s %s %v: got %s, want %s", tc.req.method, tc.req.path, tc.req.headers, name, tc.want)
		}
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	var vhosts []*resource.VirtualHost
	for i := 0; i < 100; i++ {
		v := &resource.VirtualHost{Name: fmt.Sprint(i), Domains: []string{fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("*.svc%d.example.org", i)}}
		for j := 0; j < 10; j++ {
			v.Routes = append(v.Routes, rt("r", resource.PathPrefix, fmt.Sprintf("/api/v%d/", j)))
		}
		v.Routes = append(v.Routes, hdr2(rt("h", resource.PathPrefix, "/"), "x-tenant", "blue"))
		vhosts = append(vhosts, v)
	}
	tbl := New(&resource.RouteConfig{Name: "rc", VirtualHosts: vhosts})
	r := &Request{Method: []byte("GET"), Authority: []byte("Svc57.example.com"), Path: []byte("/other?x=1")}
	r.Headers = header.List{{Name: []byte("user-agent"), Value: []byte("wrk")}, {Name: []byte("x-tenant"), Value: []byte("blue")}}
	b.ReportAllocs()
	for b.Loop() {
		if _, got := tbl.Match(r); got == nil {
			b.Fatal("no match")
		}
	}
}

func hdr2(r *resource.Route, name, value string) *resource.Route {
	r.Headers = append(r.Headers, resource.HeaderMatch{Name: name, Kind: resource.HeaderString, String: resource.StringMatch{Exact: value}})
	return r
}
