package server

import (
	"bytes"
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/nodemesh/nodemesh/xds/translator"
)

// TestWiredMarshalsAsTheResource: what the caches are given for a route
// configuration serializes, through go-control-plane's own marshalling,
// to exactly the bytes of the translator's resource, under its name.
func TestWiredMarshalsAsTheResource(t *testing.T) {
	res, err := translator.New().Translate(memoConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	rc := res.RouteConfigurations[0]
	served := servedAs(rc, res)
	if _, ok := served.(*wired); !ok {
		t.Fatalf("route configuration served as %T, want its serialized form", served)
	}
	got, err := cachev3.MarshalResource(served)
	if err != nil {
		t.Fatal(err)
	}
	want, err := cachev3.MarshalResource(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("served form marshals to %d bytes, the resource to %d", len(got), len(want))
	}
	if name := cachev3.GetResourceName(served); name != rc.Name {
		t.Fatalf("served form is named %q, want %q", name, rc.Name)
	}
	if c := servedAs(res.Clusters[0], res); c != res.Clusters[0] {
		t.Fatalf("a cluster is served as %T", c)
	}
}
