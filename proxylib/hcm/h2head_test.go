package hcm

import (
	"net/http"
	"slices"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/header"
)

func TestViewH2Request(t *testing.T) {
	r := &http.Request{
		Method: "POST", Host: "svc.example:8443", RequestURI: "/a/b?c=d",
		Header: http.Header{"User-Agent": {"t"}, "X-Multi": {"1", "2"}, "Content-Type": {"application/grpc"}},
	}
	s := newStream(nil)
	for _, strip := range []bool{false, true} {
		s.viewH2Request(r, strip)
		rr := &s.rreq
		wantHost := "svc.example:8443"
		if strip {
			wantHost = "svc.example"
		}
		if string(rr.Method) != "POST" || string(rr.Authority) != wantHost || string(rr.Path) != "/a/b?c=d" {
			t.Fatalf("strip=%v: method %q authority %q path %q", strip, rr.Method, rr.Authority, rr.Path)
		}
		var got []string
		for _, f := range rr.Headers {
			got = append(got, string(f.Name)+": "+string(f.Value))
		}
		slices.Sort(got)
		want := []string{"content-type: application/grpc", "user-agent: t", "x-multi: 1", "x-multi: 2"}
		if !slices.Equal(got, want) {
			t.Fatalf("strip=%v: fields %q, want %q", strip, got, want)
		}
	}
	// A value grown in place (a filter appending to it) must not run
	// into the bytes after it.
	l := s.rreq.Headers
	before := string(s.rreq.Path)
	for i := range l {
		l[i].Value = append(l[i].Value, "-grown"...)
	}
	if string(s.rreq.Path) != before {
		t.Fatalf("growing a field value overwrote the path: %q", s.rreq.Path)
	}
	if n := testing.AllocsPerRun(100, func() { s.viewH2Request(r, true) }); n != 0 {
		t.Fatalf("a warm stream allocated %.1f times per request head, want 0", n)
	}
}

func TestSetH2Header(t *testing.T) {
	l := header.List{
		{Name: []byte("content-type"), Value: []byte("text/plain")},
		{Name: []byte("set-cookie"), Value: []byte("a=1")},
		{Name: []byte("x-one"), Value: []byte("1")},
		{Name: []byte("set-cookie"), Value: []byte("b=2")},
	}
	hdr := http.Header{"Server": {"kept"}}
	setH2Header(hdr, l)
	// Content-Type and Date are present with no value: the server library
	// then adds neither.
	want := http.Header{"Server": {"kept"}, "content-type": {"text/plain"}, "set-cookie": {"a=1", "b=2"}, "x-one": {"1"},
		"Content-Type": nil, "Date": nil}
	if len(hdr) != len(want) {
		t.Fatalf("header %q, want %q", hdr, want)
	}
	for k, vs := range want {
		if got, ok := hdr[k]; !ok || !slices.Equal(got, vs) {
			t.Fatalf("%s: %q, want %q (header %q)", k, hdr[k], vs, hdr)
		}
	}
	// Two allocations for all fields, one more for the repeated name.
	if n := testing.AllocsPerRun(100, func() { clear(hdr); setH2Header(hdr, l) }); n > 3 {
		t.Fatalf("%.1f allocations for %d fields, want at most 3", n, len(l))
	}
}
