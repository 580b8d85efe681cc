package xdsclient

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/config"
	"github.com/nodemesh/nodemesh/proxylib/hcm"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Bounds of one fuzz input: the client decodes at most this many
// responses, from at most this many bytes.
const (
	fuzzMaxResponses = 24
	fuzzMaxInput     = 1 << 20
)

// FuzzResponses feeds a stream of xDS responses decoded from the fuzz
// input (a sequence of uvarint-length-prefixed DiscoveryResponse or, with
// delta, DeltaDiscoveryResponse messages; a chunk that is not one is what
// gRPC would refuse, and is skipped) through the client's protocol code
// and the proxy's real configuration store. After every response it
// requires: no panic; exactly one ACK or NACK first, for that type and
// nonce, a NACK exactly when the store rejected the update, carrying the
// store's error and (state of the world) the last accepted version; a
// rejected update changes nothing (same status, same routing snapshot);
// the store holds exactly the resources of the accepted responses; further
// requests subscribe what the store names. At the end the accepted
// configuration, given whole to a fresh store, must be accepted again:
// what the proxy runs always passes its own validation. Seeds are the xDS
// translator's golden outputs, delivered the way the agent's server does.
func FuzzResponses(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s.delta, s.data)
	}
	f.Fuzz(func(t *testing.T, delta bool, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		e := newFuzzEnv(t)
		defer e.close()
		if delta {
			e.runDelta(t, data)
		} else {
			e.runSotW(t, data)
		}
		e.checkFresh(t)
	})
}

// chunks splits the fuzz input into at most fuzzMaxResponses messages.
func chunks(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 && len(out) < fuzzMaxResponses {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			break
		}
		out = append(out, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return out
}

// allTypes are the types the store accepts, in the order a fresh store
// receives the accepted configuration.
var allTypes = []string{resource.ExtensionConfigType, resource.ClusterType, resource.EndpointType,
	resource.SecretType, resource.RouteType, resource.ListenerType}

// recorder hands updates to the real store and remembers their outcome.
type recorder struct {
	*config.Store
	calls int
	last  error
}

func (r *recorder) Update(typeURL, version string, res []*anypb.Any, removed []string, full bool) error {
	r.calls++
	r.last = r.Store.Update(typeURL, version, res, removed, full)
	return r.last
}

// fuzzEnv is one proxy's configuration side, as proxylib.New wires it, but
// with one socket per listener and without access-log senders (they would
// dial the clusters the input names).
type fuzzEnv struct {
	rt    *hcm.Runtime
	lm    *listener.Manager
	um    *upstream.Manager
	store *config.Store
	rec   *recorder
	c     *Client
	// accepted is what the accepted responses hold: type → name → resource.
	accepted map[string]map[string]*anypb.Any
	version  map[string]string // state of the world: last accepted version
	// acks and nacks count the answers; nackErrs keeps the NACK details.
	acks, nacks int
	nackErrs    []string
}

func newFuzzEnv(t *testing.T) *fuzzEnv {
	e := &fuzzEnv{accepted: map[string]map[string]*anypb.Any{}, version: map[string]string{}}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.rt = hcm.NewRuntime("127.0.0.1", logger)
	e.um = upstream.NewManager(nil)
	e.lm = listener.New(func(n string) *tls.Certificate { return e.store.Cert(n) }, listener.WithSockets(1),
		listener.WithDrainTimeout(time.Millisecond), listener.WithLogger(logger))
	e.store = config.New(e.rt, e.lm, e.um, config.WithLogger(logger))
	e.rec = &recorder{Store: e.store}
	c, err := New("unix:///nonexistent", "fuzz", e.rec, WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	for _, typ := range allTypes {
		e.accepted[typ] = map[string]*anypb.Any{}
	}
	return e
}

func (e *fuzzEnv) close() {
	e.store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e.lm.Close(ctx)
	e.um.Close()
}

func (e *fuzzEnv) runSotW(t *testing.T, data []byte) {
	sess := e.c.newSotW()
	sess.start()
	for i, b := range chunks(data) {
		var resp discoveryv3.DiscoveryResponse
		if proto.Unmarshal(b, &resp) != nil {
			continue
		}
		pinListeners(resp.GetResources())
		typ := resp.GetTypeUrl()
		before, routing, calls := e.store.Status(), e.rt.Load(), e.rec.calls
		reqs := sess.handle(&resp)
		if len(reqs) == 0 {
			t.Fatalf("response %d (%s): no ACK or NACK", i, typ)
		}
		ack := reqs[0]
		if ack.GetTypeUrl() != typ || ack.GetResponseNonce() != resp.GetNonce() {
			t.Fatalf("response %d: answered type %q nonce %q, want %q %q", i, ack.GetTypeUrl(), ack.GetResponseNonce(), typ, resp.GetNonce())
		}
		nacked := e.checkAnswer(t, i, typ, ack.GetErrorDetail().GetMessage(), ack.GetErrorDetail() != nil, calls, before, routing)
		switch {
		case nacked && ack.GetVersionInfo() != e.version[typ]:
			t.Fatalf("response %d (%s): NACK carries version %q, want the last accepted %q", i, typ, ack.GetVersionInfo(), e.version[typ])
		case !nacked && ack.GetVersionInfo() != resp.GetVersionInfo():
			t.Fatalf("response %d (%s): ACK carries version %q, want %q", i, typ, ack.GetVersionInfo(), resp.GetVersionInfo())
		case !nacked:
			e.version[typ] = resp.GetVersionInfo()
			full := slices.Contains(wildcardTypes, typ)
			e.accept(t, i, typ, resp.GetResources(), nil, full)
		}
		e.checkStore(t, i)
		checkSubscriptions(t, e, i, reqs[1:], func(r *discoveryv3.DiscoveryRequest) (string, []string) {
			return r.GetTypeUrl(), r.GetResourceNames()
		})
	}
}

func (e *fuzzEnv) runDelta(t *testing.T, data []byte) {
	sess := e.c.newDelta()
	sess.start()
	for i, b := range chunks(data) {
		var resp discoveryv3.DeltaDiscoveryResponse
		if proto.Unmarshal(b, &resp) != nil {
			continue
		}
		var anys []*anypb.Any
		for _, r := range resp.GetResources() {
			if r.GetResource() != nil {
				anys = append(anys, r.GetResource())
			}
		}
		pinListeners(anys)
		typ := resp.GetTypeUrl()
		before, routing, calls := e.store.Status(), e.rt.Load(), e.rec.calls
		reqs := sess.handle(&resp)
		if len(reqs) == 0 {
			t.Fatalf("response %d (%s): no ACK or NACK", i, typ)
		}
		ack := reqs[0]
		if ack.GetTypeUrl() != typ || ack.GetResponseNonce() != resp.GetNonce() {
			t.Fatalf("response %d: answered type %q nonce %q, want %q %q", i, ack.GetTypeUrl(), ack.GetResponseNonce(), typ, resp.GetNonce())
		}
		if !e.checkAnswer(t, i, typ, ack.GetErrorDetail().GetMessage(), ack.GetErrorDetail() != nil, calls, before, routing) {
			removed := slices.Clone(resp.GetRemovedResources())
			for _, r := range resp.GetResources() {
				if r.GetResource() == nil {
					removed = append(removed, r.GetName())
				}
			}
			e.accept(t, i, typ, anys, removed, false)
		}
		e.checkStore(t, i)
		checkSubscriptions(t, e, i, reqs[1:], func(r *discoveryv3.DeltaDiscoveryRequest) (string, []string) {
			return r.GetTypeUrl(), nil
		})
	}
}

// checkAnswer checks the ACK or NACK of response i against what the store
// did, and that a NACKed update changed nothing. It reports a NACK.
func (e *fuzzEnv) checkAnswer(t *testing.T, i int, typ, detail string, nacked bool, calls int, before config.Status, routing *hcm.Routing) bool {
	t.Helper()
	if !slices.Contains(allTypes, typ) {
		if !nacked || e.rec.calls != calls {
			t.Fatalf("response %d: unsupported type %q was not NACKed without touching the store", i, typ)
		}
		e.nacks++
		e.nackErrs = append(e.nackErrs, detail)
		return true
	}
	if e.rec.calls != calls+1 {
		t.Fatalf("response %d (%s): the store saw %d updates, want 1", i, typ, e.rec.calls-calls)
	}
	if nacked != (e.rec.last != nil) {
		t.Fatalf("response %d (%s): NACK=%v but the store returned %v", i, typ, nacked, e.rec.last)
	}
	if !nacked {
		e.acks++
		return false
	}
	e.nacks++
	e.nackErrs = append(e.nackErrs, detail)
	if detail != e.rec.last.Error() {
		t.Fatalf("response %d (%s): NACK detail %q, want the store's error %q", i, typ, detail, e.rec.last)
	}
	after := e.store.Status()
	if e.rt.Load() != routing || !sameResources(before, after) || after.Ready != before.Ready {
		t.Fatalf("response %d (%s): a rejected update changed the configuration:\nbefore %+v\nafter  %+v", i, typ, before, after)
	}
	return true
}

// sameResources compares what a status says is applied (not when, nor the
// last NACK).
func sameResources(a, b config.Status) bool {
	if len(a.Types) != len(b.Types) || !slices.Equal(a.Listeners, b.Listeners) {
		return false
	}
	for i := range a.Types {
		if a.Types[i].TypeURL != b.Types[i].TypeURL || a.Types[i].Version != b.Types[i].Version ||
			!slices.Equal(a.Types[i].Names, b.Types[i].Names) {
			return false
		}
	}
	return true
}

// accept records the resources of an accepted response. Each must decode
// on its own with the proxy's decoder: it is part of what the proxy runs.
func (e *fuzzEnv) accept(t *testing.T, i int, typ string, res []*anypb.Any, removed []string, full bool) {
	t.Helper()
	set := e.accepted[typ]
	if full {
		set = map[string]*anypb.Any{}
		e.accepted[typ] = set
	}
	for _, n := range removed {
		delete(set, n)
	}
	for _, a := range res {
		name, err := decodedName(typ, a)
		if err != nil {
			t.Fatalf("response %d (%s): accepted a resource the proxy's decoder rejects: %v", i, typ, err)
		}
		set[name] = a
	}
}

func decodedName(typ string, a *anypb.Any) (string, error) {
	switch typ {
	case resource.ListenerType:
		v, err := resource.DecodeListener(a)
		if err != nil {
			return "", err
		}
		return v.Name, nil
	case resource.RouteType:
		v, err := resource.DecodeRouteConfig(a)
		if err != nil {
			return "", err
		}
		return v.Name, nil
	case resource.ClusterType:
		v, err := resource.DecodeCluster(a)
		if err != nil {
			return "", err
		}
		return v.Name, nil
	case resource.EndpointType:
		v, err := resource.DecodeEndpoints(a)
		if err != nil {
			return "", err
		}
		return v.ClusterName, nil
	case resource.SecretType:
		v, err := resource.DecodeSecret(a)
		if err != nil {
			return "", err
		}
		return v.Name, nil
	case resource.ExtensionConfigType:
		v, err := resource.DecodeExtension(a)
		if err != nil {
			return "", err
		}
		return v.Name, nil
	}
	return "", fmt.Errorf("unsupported type %q", typ)
}

// checkStore requires the store to hold exactly the accepted resources.
func (e *fuzzEnv) checkStore(t *testing.T, i int) {
	t.Helper()
	for _, ts := range e.store.Status().Types {
		want := make([]string, 0, len(e.accepted[ts.TypeURL]))
		for n := range e.accepted[ts.TypeURL] {
			want = append(want, n)
		}
		sort.Strings(want)
		if !slices.Equal(ts.Names, want) {
			t.Fatalf("after response %d the store holds %s %q, the accepted responses %q", i, ts.TypeURL, ts.Names, want)
		}
	}
}

// checkSubscriptions requires requests after the answer to be for named
// types and (state of the world) to name what the store asks for.
func checkSubscriptions[R any](t *testing.T, e *fuzzEnv, i int, reqs []R, names func(R) (string, []string)) {
	t.Helper()
	for _, r := range reqs {
		typ, got := names(r)
		if !slices.Contains(namedTypes, typ) {
			t.Fatalf("after response %d: subscription request for %q, not a named type", i, typ)
		}
		if want := e.store.Names(typ); got != nil && !slices.Equal(got, want) {
			t.Fatalf("after response %d: subscribes %s %q, the store needs %q", i, typ, got, want)
		}
	}
}

// checkFresh gives everything accepted to a new store, whole: it must
// accept it.
func (e *fuzzEnv) checkFresh(t *testing.T) {
	t.Helper()
	f := newFuzzEnv(t)
	defer f.close()
	for _, typ := range allTypes {
		names := make([]string, 0, len(e.accepted[typ]))
		for n := range e.accepted[typ] {
			names = append(names, n)
		}
		sort.Strings(names)
		res := make([]*anypb.Any, len(names))
		for i, n := range names {
			res[i] = e.accepted[typ][n]
		}
		if err := f.store.Update(typ, "fresh", res, nil, true); err != nil {
			t.Fatalf("the accepted %s do not pass the proxy's validation on their own: %v", typ, err)
		}
	}
}

// pinListeners moves every listener that decodes to an address of its own
// on 127.77.0.0/16 with port 0, so that the fuzzer binds nothing but
// ephemeral loopback ports. Equal original addresses map to equal ones,
// so duplicate-address checks still see duplicates. A UDP listener keeps
// its port: the proxy refuses port 0 there (a UDP listener on an
// ephemeral port could never be reached), and the address is loopback.
func pinListeners(res []*anypb.Any) {
	for _, a := range res {
		if a.GetTypeUrl() != resource.ListenerType {
			continue
		}
		var l listenerv3.Listener
		if proto.Unmarshal(a.GetValue(), &l) != nil {
			continue
		}
		sa := l.GetAddress().GetSocketAddress()
		if sa == nil {
			continue
		}
		h := fnv.New32a()
		fmt.Fprintf(h, "%s|%d|%s", sa.GetAddress(), sa.GetPortValue(), sa.GetNamedPort())
		v := h.Sum32()
		sa.Address = netip.AddrFrom4([4]byte{127, 77, byte(v >> 8), byte(v)}).String()
		if sa.GetProtocol() != corev3.SocketAddress_UDP {
			sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: 0}
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&l)
		if err == nil {
			a.Value = b
		}
	}
}
