package translator

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestEqualSeesEveryField changes every leaf field of fully populated IR
// objects, one at a time, and requires the hand-written equality to notice:
// a field added to the IR but not to equal.go fails here.
func TestEqualSeesEveryField(t *testing.T) {
	mods := &ir.HeaderModifier{Set: []ir.Header{{Name: "a", Value: "b"}}, Add: []ir.Header{{Name: "c", Value: "d"}}, Remove: []string{"e"}}
	route := &ir.Route{
		Name: "r",
		Match: ir.Match{
			Path:    &ir.PathMatch{Type: ir.PathPrefix, Value: "/p"},
			Method:  "GET",
			Headers: []ir.HeaderMatch{{Name: "h", Type: ir.MatchExact, Value: "v"}},
			Query:   []ir.QueryMatch{{Name: "q", Type: ir.MatchRegex, Value: "v"}},
		},
		Backends:        []*ir.WeightedBackend{{Cluster: "c", Weight: 1, RequestHeaders: mods, ResponseHeaders: mods}},
		Rewrite:         &ir.Rewrite{Hostname: "h", Path: &ir.PathRewrite{Type: ir.ReplacePrefixMatch, Value: "/x"}},
		Redirect:        &ir.Redirect{Scheme: "https", Hostname: "h", Port: 1, Path: &ir.PathRewrite{Type: ir.ReplaceFullPath, Value: "/y"}, StatusCode: 301},
		DirectResponse:  &ir.DirectResponse{Status: 200, Body: "b"},
		RequestHeaders:  mods,
		ResponseHeaders: mods,
		Timeout:         time.Second,
		BackendTimeout:  time.Millisecond,
	}
	vh := &ir.VirtualHost{Name: "v", Domains: []string{"d"}, Routes: []*ir.Route{route}}
	cluster := &ir.Cluster{Name: "c", Protocol: ir.ProtocolH2C, LBPolicy: ir.LBRandom, ConnectTimeout: time.Second,
		Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: 1, Ready: true}}}
	secret := &ir.Secret{Name: "s", Certificate: []byte("c"), PrivateKey: []byte("k")}
	tls := &ir.TLS{Certificates: []string{"s"}, ALPN: []string{"h2"}}

	check(t, vh, func(a, b *ir.VirtualHost) bool { return equalVirtualHost(a, b) })
	check(t, cluster, func(a, b *ir.Cluster) bool { return equalCluster(a, b) })
	check(t, secret, func(a, b *ir.Secret) bool { return equalSecret(a, b) })
	check(t, tls, func(a, b *ir.TLS) bool { return equalTLS(a, b) })
}

// check mutates every leaf of a copy of v in turn and requires eq to report
// the difference (and to report equality for an unmodified copy).
func check[T any](t *testing.T, v *T, eq func(a, b *T) bool) {
	t.Helper()
	if !eq(v, clone(t, v)) {
		t.Fatalf("%T: an identical copy compares unequal", v)
	}
	leaves := 0
	var walk func(path []int)
	walk = func(path []int) {
		c := clone(t, v)
		f := at(reflect.ValueOf(c).Elem(), path)
		switch f.Kind() {
		case reflect.Struct:
			for i := range f.NumField() {
				walk(append(append([]int(nil), path...), i))
			}
			return
		case reflect.Pointer:
			if f.IsNil() {
				t.Fatalf("%T: leave no nil pointer at %v in the fixture", v, path)
			}
			walk(append(append([]int(nil), path...), -1))
			return
		case reflect.Slice:
			if f.Len() == 0 {
				t.Fatalf("%T: leave no empty slice at %v in the fixture", v, path)
			}
			if f.Type().Elem().Kind() != reflect.Uint8 {
				walk(append(append([]int(nil), path...), -2))
			}
		}
		leaves++
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Uint32:
			f.SetUint(f.Uint() + 1)
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Slice:
			f.Set(reflect.AppendSlice(f, f.Slice(0, 1)))
		default:
			t.Fatalf("%T: unhandled kind %v at %v", v, f.Kind(), path)
		}
		if eq(v, c) {
			t.Errorf("%T: changing the field at %v goes unnoticed", v, path)
		}
	}
	walk(nil)
	if leaves == 0 {
		t.Fatalf("%T: no fields", v)
	}
}

// at follows a path of field indexes (-1: pointer target, -2: first
// element).
func at(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		switch i {
		case -1:
			v = v.Elem()
		case -2:
			v = v.Index(0)
		default:
			v = v.Field(i)
		}
	}
	return v
}

func clone[T any](t *testing.T, v *T) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}
