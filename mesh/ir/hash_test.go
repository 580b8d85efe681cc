package ir

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// hashFixtures are fully populated IR objects: no nil pointer, no empty
// slice, so every field is reached.
func hashFixtures() (*Route, *VirtualHost, *RouteTable, *Listener, *Cluster, *Secret, *Policy) {
	mods := &HeaderModifier{Set: []Header{{Name: "a", Value: "b"}}, Add: []Header{{Name: "c", Value: "d"}}, Remove: []string{"e"}}
	route := &Route{
		Name: "r",
		Match: Match{
			Path:    &PathMatch{Type: PathPrefix, Value: "/p"},
			Method:  "GET",
			Headers: []HeaderMatch{{Name: "h", Type: MatchExact, Value: "v"}},
			Query:   []QueryMatch{{Name: "q", Type: MatchRegex, Value: "v"}},
		},
		Backends:        []*WeightedBackend{{Cluster: "c", Weight: 1, RequestHeaders: mods, ResponseHeaders: mods}},
		Rewrite:         &Rewrite{Hostname: "h", Path: &PathRewrite{Type: ReplacePrefixMatch, Value: "/x"}},
		Redirect:        &Redirect{Scheme: "https", Hostname: "h", Port: 1, Path: &PathRewrite{Type: ReplaceFullPath, Value: "/y"}, StatusCode: 301},
		DirectResponse:  &DirectResponse{Status: 200, Body: "b"},
		RequestHeaders:  mods,
		ResponseHeaders: mods,
		Timeout:         time.Second,
		BackendTimeout:  time.Millisecond,
		CORS: &CORSPolicy{AllowOrigins: []OriginMatch{{Type: MatchRegex, Value: "o"}}, AllowMethods: []string{"GET"},
			AllowHeaders: []string{"x"}, ExposeHeaders: []string{"y"}, MaxAge: time.Second, AllowCredentials: true},
		Retry:   &RetryPolicy{Codes: []int{500}, Attempts: 2, Backoff: time.Millisecond},
		Mirrors: []*Mirror{{Cluster: "c", Numerator: 1, Denominator: 3}},
	}
	vh := &VirtualHost{Name: "v", Domains: []string{"d"}, Routes: []*Route{route}}
	rt := &RouteTable{Name: "t", VirtualHosts: []*VirtualHost{vh}}
	l := &Listener{Name: "l", Address: "127.0.0.1", Port: 80, Chains: []*HTTPChain{{
		Name: "c", ServerNames: []string{"s"}, SourcePrefixes: []string{"10.0.0.0/8"}, TLS: &TLS{Certificates: []string{"s"}, ALPN: []string{"h2"}, ClientCA: []byte("ca"), AllowUnverifiedClients: true},
		Routes: &RouteTable{Name: "t"}, CORS: true,
	}}, UDP: &UDPProxy{Cluster: "u"}, TCPChains: []*TCPChain{{Name: "p", ServerNames: []string{"s2"}, TLS: &TLS{Certificates: []string{"s3"}, ALPN: []string{"x"}, ClientCA: []byte("ca2"), AllowUnverifiedClients: true}, Backends: []*WeightedBackend{{Cluster: "c", Weight: 2, RequestHeaders: mods, ResponseHeaders: mods}}}},
		OriginalSourceMark: 0xa00}
	cluster := &Cluster{Name: "c", Protocol: ProtocolH2C, LBPolicy: LBRandom, ConnectTimeout: time.Second,
		Endpoints:   []Endpoint{{Address: "127.0.0.1", Port: 1, Ready: true, Weight: 2}},
		UpstreamTLS: &UpstreamTLS{SNI: "a", TrustedCA: []byte("ca"), SubjectAltNames: []SubjectAltName{{Type: SANURI, Value: "u"}}, ClientCertificate: "s"}}
	secret := &Secret{Name: "s", Certificate: []byte("c"), PrivateKey: []byte("k")}
	peers := PeerSet{Any: true, Terms: []AddressTerm{{Prefix: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}, Identities: []uint32{8}}
	pol := &Policy{
		Listeners: []*PolicyListener{{Name: "policy/ingress/http", Direction: PolicyIngress, Protocol: L7HTTP, Address: "0.0.0.0", Port: 1, OriginalSource: true, ConntrackMap: "/sys/fs/bpf/ct"}},
		HTTP: []*HTTPPolicy{{Name: "h", Direction: PolicyIngress, Port: 80, Endpoints: []string{"10.0.0.1/32"}, Peers: peers,
			Request: &HTTPRequestRule{Method: "GET", Path: "/", Host: "h", Headers: []HeaderRequirement{{Name: "x", Value: "y", Present: true}},
				HeaderActions: []HeaderAction{{Name: "a", Value: "b", Mismatch: MismatchAdd, Secret: true}}}}},
		Kafka: []*KafkaPolicy{{Name: "k", Direction: PolicyEgress, Port: 9092, Endpoints: []string{"10.0.0.1/32"}, Peers: peers,
			Request: &KafkaRequestRule{APIKeys: []int16{1}, APIVersion: 2, HasAPIVersion: true, ClientID: "c", Topic: "t"}}},
	}
	return route, vh, rt, l, cluster, secret, pol
}

// TestHashSeesEveryField changes every field of fully populated IR
// objects, one at a time — each leaf, each pointer set to nil, each list
// emptied — and requires the hash to change: a field added to the IR but
// not to hash.go fails here.
func TestHashSeesEveryField(t *testing.T) {
	route, vh, rt, l, cluster, secret, pol := hashFixtures()
	var h Hashes
	check(t, route, func(r *Route) Hash { return h.Route(r) })
	check(t, vh, func(v *VirtualHost) Hash { return h.VirtualHost(v) })
	check(t, rt, func(v *RouteTable) Hash { return h.RouteTable(v) })
	check(t, cluster, func(c *Cluster) Hash {
		s, e := h.Cluster(c)
		for i := range s {
			s[i] ^= e[i]
		}
		return s
	})
	// The endpoints' hash covers the name and the endpoints, the settings'
	// hash every other field.
	onlyEndpoints := func(names []string) bool { return len(names) > 0 && names[0] != "Endpoints" && names[0] != "Name" }
	checkSkipping(t, cluster, func(c *Cluster) Hash { _, e := h.Cluster(c); return e }, onlyEndpoints)
	checkSkipping(t, cluster, func(c *Cluster) Hash { s, _ := h.Cluster(c); return s }, func(names []string) bool { return len(names) > 0 && names[0] == "Endpoints" })
	check(t, secret, func(s *Secret) Hash { return h.Secret(s) })
	check(t, pol.Listeners[0], func(l *PolicyListener) Hash { return h.PolicyListener(l) })
	check(t, pol.HTTP[0], func(p *HTTPPolicy) Hash { return h.HTTPPolicy(p) })
	check(t, pol.Kafka[0], func(p *KafkaPolicy) Hash { return h.KafkaPolicy(p) })
	// A listener's hash covers its chains' route table by name only.
	skipTables := func(path []string) bool {
		return len(path) > 2 && path[len(path)-2] == "Routes" && path[len(path)-1] != "Name"
	}
	checkSkipping(t, l, func(l *Listener) Hash { return h.Listener(l) }, skipTables)
}

// TestHashesRemember: an object's hash is computed once and kept while
// the object is asked for, and a changed copy gets a hash of its own.
func TestHashesRemember(t *testing.T) {
	route, vh, _, _, _, _, _ := hashFixtures()
	var h Hashes
	h.Next()
	first := h.VirtualHost(vh)
	if _, ok := h.routes.cur[route]; !ok {
		t.Fatal("the route's hash was not remembered")
	}
	h.Next()
	if got := h.VirtualHost(vh); got != first {
		t.Fatal("the same object hashed differently")
	}
	h.Next()
	h.Route(&Route{Name: "other"})
	h.VirtualHost(&VirtualHost{Name: "other"})
	h.Next()
	if _, ok := h.vhosts.get(vh); ok {
		t.Fatal("an object not asked for since the previous Next is still remembered")
	}
	other := *vh
	other.Routes = []*Route{{Name: "r2", DirectResponse: &DirectResponse{Status: 200}}}
	if h.VirtualHost(&other) == first {
		t.Fatal("a different virtual host has the same hash")
	}
	// Content, not identity: a deep copy hashes the same.
	if got := h.VirtualHost(clone(t, vh)); got != first {
		t.Fatal("an equal copy hashed differently")
	}
}

// TestHashIsUnambiguous: moving bytes between adjacent fields, or an item
// between lists, changes the hash.
func TestHashIsUnambiguous(t *testing.T) {
	var h Hashes
	pairs := []struct{ a, b *Route }{
		{&Route{Name: "ab", Match: Match{Method: "c"}}, &Route{Name: "a", Match: Match{Method: "bc"}}},
		{&Route{RequestHeaders: &HeaderModifier{Remove: []string{"x"}}}, &Route{ResponseHeaders: &HeaderModifier{Remove: []string{"x"}}}},
		{&Route{RequestHeaders: &HeaderModifier{Set: []Header{{Name: "a"}}}}, &Route{RequestHeaders: &HeaderModifier{Add: []Header{{Name: "a"}}}}},
		{&Route{Backends: []*WeightedBackend{{Cluster: "a"}, {Cluster: "b"}}}, &Route{Backends: []*WeightedBackend{{Cluster: "ab"}}}},
	}
	for i, p := range pairs {
		if h.Route(p.a) == h.Route(p.b) {
			t.Errorf("pair %d: different routes share a hash", i)
		}
	}
	if s, e := h.Cluster(&Cluster{Name: "x"}); s == h.Secret(&Secret{Name: "x"}) || s == e {
		t.Error("objects of different types share a hash")
	}
}

func check[T any](t *testing.T, v *T, hash func(*T) Hash) {
	t.Helper()
	checkSkipping(t, v, hash, func([]string) bool { return false })
}

// checkSkipping mutates every field of a copy of v in turn, except those
// skip names, and requires hash to change (and not to change for an
// unmodified copy).
func checkSkipping[T any](t *testing.T, v *T, hash func(*T) Hash, skip func(names []string) bool) {
	t.Helper()
	want := hash(v)
	if hash(clone(t, v)) != want {
		t.Fatalf("%T: an identical copy hashes differently", v)
	}
	mutations := 0
	var walk func(path []int, names []string)
	walk = func(path []int, names []string) {
		if skip(names) {
			return
		}
		c := clone(t, v)
		f := at(reflect.ValueOf(c).Elem(), path)
		switch f.Kind() {
		case reflect.Struct:
			for i := range f.NumField() {
				walk(append(append([]int(nil), path...), i), append(append([]string(nil), names...), f.Type().Field(i).Name))
			}
			return
		case reflect.Pointer:
			if f.IsNil() {
				t.Fatalf("%T: leave no nil pointer at %v in the fixture", v, names)
			}
			mutations++
			{
				c := clone(t, v)
				at(reflect.ValueOf(c).Elem(), path).SetZero()
				if hash(c) == want {
					t.Errorf("%T: setting %v to nil goes unnoticed", v, names)
				}
			}
			walk(append(append([]int(nil), path...), -1), names)
			return
		case reflect.Slice:
			if f.Len() == 0 {
				t.Fatalf("%T: leave no empty slice at %v in the fixture", v, names)
			}
			mutations++
			{
				c := clone(t, v)
				g := at(reflect.ValueOf(c).Elem(), path)
				g.Set(reflect.AppendSlice(g, g.Slice(0, 1)))
				if hash(c) == want {
					t.Errorf("%T: a repeated item in %v goes unnoticed", v, names)
				}
			}
			if f.Type().Elem().Kind() == reflect.Uint8 {
				return
			}
			walk(append(append([]int(nil), path...), -2), names)
			return
		}
		mutations++
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Int16, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Uint32:
			f.SetUint(f.Uint() + 1)
		case reflect.Bool:
			f.SetBool(!f.Bool())
		default:
			t.Fatalf("%T: unhandled kind %v at %v", v, f.Kind(), names)
		}
		if hash(c) == want {
			t.Errorf("%T: changing %v goes unnoticed", v, names)
		}
	}
	walk(nil, nil)
	if mutations == 0 {
		t.Fatalf("%T: nothing mutated", v)
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

// TestHashesShareRouteLists hashes virtual hosts whose route lists hold
// the same routes as an earlier one's (which Hashes takes over), or
// start alike and differ further on, or are the same list after a Next:
// each must hash as it does alone.
func TestHashesShareRouteLists(t *testing.T) {
	routes := make([]*Route, 5)
	for i := range routes {
		routes[i] = &Route{Name: string(rune('a' + i)), DirectResponse: &DirectResponse{Status: 200}}
	}
	other := &Route{Name: "other", DirectResponse: &DirectResponse{Status: 404}}
	differs := slices.Clone(routes)
	differs[3] = other
	withNil := slices.Clone(routes)
	withNil[2] = nil
	vhs := []*VirtualHost{
		{Name: "http", Domains: []string{"d"}, Routes: routes},
		{Name: "https", Domains: []string{"d"}, Routes: slices.Clone(routes)},
		{Name: "differs", Domains: []string{"d"}, Routes: differs},
		{Name: "shorter", Domains: []string{"d"}, Routes: routes[:4]},
		{Name: "nil", Domains: []string{"d"}, Routes: withNil},
		{Name: "nil again", Domains: []string{"d"}, Routes: slices.Clone(withNil)},
		{Name: "empty", Domains: []string{"d"}},
	}
	alone := func(vh *VirtualHost) (Hash, Hash, []Hash) {
		var h Hashes
		return h.VirtualHost(vh), h.RouteList(vh), h.VirtualHostRoutes(vh)
	}
	var h Hashes
	for round := range 2 {
		for _, vh := range vhs {
			want, wantList, wantRoutes := alone(vh)
			if got := h.VirtualHost(vh); got != want {
				t.Errorf("round %d, %s: hash %s, alone %s", round, vh.Name, got, want)
			}
			if got := h.RouteList(vh); got != wantList {
				t.Errorf("round %d, %s: list hash %s, alone %s", round, vh.Name, got, wantList)
			}
			if got := h.VirtualHostRoutes(vh); !slices.Equal(got, wantRoutes) {
				t.Errorf("round %d, %s: route hashes %v, alone %v", round, vh.Name, got, wantRoutes)
			}
		}
		h.Next()
		// New virtual host objects over the same lists.
		for i, vh := range vhs {
			cp := *vh
			vhs[i] = &cp
		}
	}
	if h.RouteList(vhs[0]) == h.RouteList(vhs[2]) || h.RouteList(vhs[0]) == h.RouteList(vhs[3]) {
		t.Error("different route lists hash alike")
	}
}
