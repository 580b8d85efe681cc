package v2

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/randfill"
)

// TestDeepCopy fills every field at random, copies, and requires an equal
// value that shares no pointer, slice or map with the original. The deep
// copies are generated; this catches a type or field added without
// regenerating them (the stale copy would share the new field's memory)
// and a kind missing from the list AddToScheme registers.
func TestDeepCopy(t *testing.T) {
	f := randfill.NewWithSeed(1).NilChance(0.1).NumElements(1, 3).Funcs(
		// ObjectMeta is Kubernetes' own; its fill only has to be plausible.
		func(m *metav1.ObjectMeta, c randfill.Continue) {
			c.Fill(&m.Name)
			c.Fill(&m.Labels)
		},
		func(r *runtime.RawExtension, c randfill.Continue) {
			r.Raw = []byte(`{"a":1}`)
		},
	)
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	kinds := s.KnownTypes(SchemeGroupVersion)
	// Every kind of the package, lists included; the meta kinds
	// AddToGroupVersion registers are Kubernetes' own.
	want := []string{
		"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy",
		"CiliumIdentity", "CiliumEnvoyConfig", "CiliumClusterwideEnvoyConfig",
	}
	for _, k := range want {
		for _, kind := range []string{k, k + "List"} {
			if _, ok := kinds[kind]; !ok {
				t.Errorf("AddToScheme does not register %s", kind)
			}
		}
	}
	for i := 0; i < 40; i++ {
		for _, k := range want {
			for _, kind := range []string{k, k + "List"} {
				o, err := s.New(SchemeGroupVersion.WithKind(kind))
				if err != nil {
					t.Fatal(err)
				}
				f.Fill(o)
				c := o.DeepCopyObject()
				if !reflect.DeepEqual(o, c) {
					t.Fatalf("%T: copy differs from the original", o)
				}
				shared := map[uintptr]string{}
				collect(reflect.ValueOf(o), "", shared, nil)
				collect(reflect.ValueOf(c), "", nil, func(p uintptr, path string) {
					if orig, ok := shared[p]; ok {
						t.Fatalf("%T: copy shares memory with the original at %s (original %s)", o, path, orig)
					}
				})
			}
		}
	}
}

// collect walks v and records (or reports) the address of every pointer,
// non-empty slice and map.
func collect(v reflect.Value, path string, into map[uintptr]string, report func(uintptr, string)) {
	note := func(p uintptr) {
		if into != nil {
			into[p] = path
		} else {
			report(p, path)
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer {
			note(v.Pointer())
		}
		collect(v.Elem(), path+"*", into, report)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				collect(v.Field(i), path+"."+v.Type().Field(i).Name, into, report)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return
		}
		note(v.Pointer())
		for i := 0; i < v.Len(); i++ {
			collect(v.Index(i), path+"[]", into, report)
		}
	case reflect.Map:
		if v.Len() == 0 {
			return
		}
		note(v.Pointer())
		for _, k := range v.MapKeys() {
			collect(v.MapIndex(k), path+"{}", into, report)
		}
	}
}
