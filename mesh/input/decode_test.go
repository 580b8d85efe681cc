package input

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

type decoded struct {
	Origin string
	Kind   Kind
	Key    string
	APIVer string
}

func summarize(objs []Object) []decoded {
	var out []decoded
	for _, o := range objs {
		out = append(out, decoded{o.Origin.String(), o.Kind, keyString(o.Key), o.Obj.GetObjectKind().GroupVersionKind().GroupVersion().String()})
	}
	return out
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeStreams(t *testing.T) {
	tests := []struct {
		file string
		want []decoded
	}{
		{"mixed.yaml", []decoded{
			{"mixed.yaml:4 (document 1)", KindGatewayClass, "nodemesh", "gateway.networking.k8s.io/v1"},
			{"mixed.yaml:12 (document 2)", KindGateway, "default/eg", "gateway.networking.k8s.io/v1"},
			{"mixed.yaml:25 (document 4)", KindHTTPRoute, "apps/web", "gateway.networking.k8s.io/v1"},
			{"mixed.yaml:40 (document 5)", KindReferenceGrant, "default/allow-apps", "gateway.networking.k8s.io/v1"},
			{"mixed.yaml:53 (document 6)", KindService, "apps/web", "v1"},
			{"mixed.yaml:65 (document 7)", KindEndpointSlice, "apps/web-abc", "discovery.k8s.io/v1"},
			{"mixed.yaml:81 (document 8)", KindSecret, "default/tls", "v1"},
			{"mixed.yaml:91 (document 9)", KindNamespace, "apps", "v1"},
		}},
		{"stream.json", []decoded{
			{"stream.json:1 (document 1)", KindNamespace, "a", "v1"},
			{"stream.json:2 (document 2, items[0])", KindNamespace, "b", "v1"},
			{"stream.json:2 (document 2, items[1])", KindService, "b/s", "v1"},
		}},
		{"list.yaml", []decoded{
			{"list.yaml:1 (document 1, items[0])", KindHTTPRoute, "default/r1", "gateway.networking.k8s.io/v1"},
			{"list.yaml:1 (document 1, items[1])", KindService, "default/s1", "v1"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			objs, err := Decode(tc.file, readTestdata(t, tc.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, summarize(objs)); diff != "" {
				t.Errorf("decoded objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeNormalizes(t *testing.T) {
	objs, err := Decode("mixed.yaml", readTestdata(t, "mixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *gwv1.GatewayClass:
			if v.Namespace != "" {
				t.Errorf("cluster-scoped GatewayClass kept namespace %q", v.Namespace)
			}
			if v.APIVersion != "gateway.networking.k8s.io/v1" || v.Kind != "GatewayClass" {
				t.Errorf("GatewayClass TypeMeta = %v, want v1 GatewayClass", v.TypeMeta)
			}
		case *gwv1.HTTPRoute:
			if v.CreationTimestamp.IsZero() {
				t.Error("HTTPRoute creationTimestamp was not decoded")
			}
			if got := v.Spec.Rules[0].BackendRefs[0].Name; got != "web" {
				t.Errorf("backendRef name = %q", got)
			}
		case *corev1.Secret:
			if string(v.Data["tls.crt"]) != "cert" || string(v.Data["tls.key"]) != "key" {
				t.Errorf("Secret data = %q, want data and stringData merged", v.Data)
			}
			if v.StringData != nil {
				t.Error("stringData kept after merge")
			}
		}
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# only a comment\n", "---\n---\n", "\xef\xbb\xbf---\n# x\n"} {
		objs, err := Decode("empty.yaml", []byte(in))
		if err != nil || len(objs) != 0 {
			t.Errorf("Decode(%q) = %d objects, %v; want none and no error", in, len(objs), err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
	tests := []struct {
		name string
		in   string
		want []string // each must appear in one of the joined errors, in order
	}{
		{"unknown field", svc + "spec:\n  portz: []\n", []string{`bad.yaml:1 (document 1): Service s: unknown field "spec.portz"`}},
		{"duplicate field", svc + "spec: {}\nspec: {}\n", []string{`bad.yaml:1 (document 1): `, `"spec" already set`}},
		{"case-sensitive field", svc + "Spec: {}\n", []string{`Service s: unknown field "Spec"`}},
		{"wrong type", svc + "spec:\n  ports:\n  - port: eighty\n", []string{`Service s: `, `spec.ports.port`}},
		{"missing name", "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\n", []string{`bad.yaml:1 (document 1): Service: metadata.name: required`}},
		{"generateName", "apiVersion: v1\nkind: Service\nmetadata:\n  generateName: x-\n", []string{`metadata.name: required (generateName`}},
		{"invalid name", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: A/B\n", []string{`Secret A/B: metadata.name: invalid name "A/B"`}},
		{"invalid namespace", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  namespace: x.y\n", []string{`metadata.namespace: invalid namespace "x.y"`}},
		{"missing apiVersion", "kind: Service\nmetadata:\n  name: s\n", []string{`Service s: apiVersion: required`}},
		{"missing kind", "apiVersion: v1\nmetadata:\n  name: s\n", []string{`kind: required`}},
		{"unknown kind", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n", []string{`Deployment d: unsupported kind "Deployment" (apiVersion "apps/v1")`}},
		{"unknown version", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: HTTPRoute\nmetadata:\n  name: r\n", []string{`unsupported apiVersion "gateway.networking.k8s.io/v1alpha2" for kind HTTPRoute (supported: gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1beta1)`}},
		{"not an object", "- a\n- b\n", []string{`bad.yaml:1 (document 1): document is not a Kubernetes object`}},
		{"scalar", "hello\n", []string{`document is not a Kubernetes object`}},
		{"malformed yaml", svc + "---\n" + svc + "spec: [\n", []string{`bad.yaml:6 (document 2): yaml: line 10:`}},
		{"duplicate object", svc + "---\n" + svc, []string{`bad.yaml:6 (document 2): Service default/s: duplicate object, first defined at bad.yaml:1 (document 1)`}},
		{"several problems", svc + "spec: {x: 1}\n---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: p}\n", []string{`document 1): Service s: unknown field "spec.x"`, `bad.yaml:7 (document 2): PersistentVolume p: unsupported kind`}},
		{"nested list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n", []string{`(document 1, items[0]): List: a List inside a List is not supported`}},
		{"separator with content", svc + "--- foo\n", []string{`bad.yaml:5 (document 2): content after the document separator`}},
		{"bad json stream", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}` + "\n{\"kind\": ", []string{`bad.yaml:2 (document 2): reading JSON`}},
		{"bad base64", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: '!!!'\n", []string{`Secret s: `, `illegal base64`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Decode("bad.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Decode succeeded with %d objects, want error", len(objs))
			}
			if objs != nil {
				t.Errorf("Decode returned %d objects with an error; want none", len(objs))
			}
			msg := err.Error()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q does not contain %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %T does not wrap a *DecodeError", err)
			}
		})
	}
}

func TestDecodeErrorFields(t *testing.T) {
	_, err := Decode("f.yaml", []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: ns\n"))
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a *DecodeError", err)
	}
	want := DecodeError{Origin: Origin{Source: "f.yaml", Doc: 1, Line: 1, Item: -1}, Kind: KindSecret, Name: Key{Namespace: "ns"}, Field: "metadata.name"}
	got := *de
	got.Err = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeError (-want +got):\n%s", diff)
	}
}

// TestDecodeAlphaL4Routes: the experimental channel's alpha L4 route
// versions decode into the v1 types and are stored as v1; a version the
// API never served for a kind stays refused.
func TestDecodeAlphaL4Routes(t *testing.T) {
	const tlsSpec = "spec:\n  parentRefs:\n  - name: gw\n  hostnames: [\"a.example.com\"]\n  rules:\n  - backendRefs:\n    - name: s\n      port: 443\n"
	const l4Spec = "spec:\n  parentRefs:\n  - name: gw\n  rules:\n  - backendRefs:\n    - name: s\n      port: 53\n"
	for _, tc := range []struct{ in, kind string }{
		{"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata:\n  name: r\n" + tlsSpec, "TLSRoute"},
		{"apiVersion: gateway.networking.k8s.io/v1alpha3\nkind: TLSRoute\nmetadata:\n  name: r\n" + tlsSpec, "TLSRoute"},
		{"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata:\n  name: r\n" + l4Spec, "TCPRoute"},
		{"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata:\n  name: r\n" + l4Spec, "UDPRoute"},
	} {
		objs, err := Decode("alpha.yaml", []byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if len(objs) != 1 {
			t.Fatalf("%s: %d objects, want 1", tc.in, len(objs))
		}
		gvk := objs[0].Obj.GetObjectKind().GroupVersionKind()
		if gvk.GroupVersion().String() != "gateway.networking.k8s.io/v1" || gvk.Kind != tc.kind {
			t.Errorf("%s decoded as %v, want v1 %s", tc.kind, gvk, tc.kind)
		}
		var parents int
		switch v := objs[0].Obj.(type) {
		case *gwv1.TLSRoute:
			parents = len(v.Spec.ParentRefs)
			if len(v.Spec.Hostnames) != 1 || len(v.Spec.Rules) != 1 {
				t.Errorf("TLSRoute spec lost fields: %+v", v.Spec)
			}
		case *gwv1.TCPRoute:
			parents = len(v.Spec.ParentRefs)
		case *gwv1.UDPRoute:
			parents = len(v.Spec.ParentRefs)
		default:
			t.Fatalf("%s decoded into %T", tc.kind, v)
		}
		if parents != 1 {
			t.Errorf("%s: %d parentRefs, want 1", tc.kind, parents)
		}
	}
	if _, err := Decode("alpha.yaml", []byte("apiVersion: gateway.networking.k8s.io/v1alpha3\nkind: TCPRoute\nmetadata:\n  name: r\n"+l4Spec)); err == nil {
		t.Error("TCPRoute v1alpha3 (never served) decoded without an error")
	}
}

// TestDecodeListenerSet: a v1 ListenerSet decodes strictly into the
// snapshot's ListenerSets; the experimental channel's old group version
// (gateway.networking.x-k8s.io XListenerSet) is not this kind.
func TestDecodeListenerSet(t *testing.T) {
	const in = "apiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata:\n  name: ls\n  namespace: team\nspec:\n  parentRef:\n    name: gw\n    namespace: default\n  listeners:\n  - name: web\n    port: 80\n    protocol: HTTP\n    hostname: a.example.com\n"
	objs, err := Decode("ls.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.ListenerSets) != 1 {
		t.Fatalf("%d ListenerSets in the snapshot, want 1", len(snap.ListenerSets))
	}
	ls := snap.ListenerSets[0]
	if ls.Namespace != "team" || string(ls.Spec.ParentRef.Name) != "gw" || len(ls.Spec.Listeners) != 1 || ls.Spec.Listeners[0].Port != 80 {
		t.Errorf("ListenerSet decoded as %+v", ls)
	}
	if _, err := Decode("ls.yaml", []byte(strings.Replace(in, "    port: 80\n", "    port: 80\n    bogus: 1\n", 1))); err == nil {
		t.Error("an unknown ListenerSet field decoded without an error")
	}
	if _, err := Decode("ls.yaml", []byte(strings.Replace(in, "gateway.networking.k8s.io/v1", "gateway.networking.x-k8s.io/v1alpha1", 1))); err == nil {
		t.Error("an x-k8s.io ListenerSet decoded without an error")
	}
}
