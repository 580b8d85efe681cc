package model

import "testing"

// The reserved numbers are Cilium's: policies, flows and CiliumIdentity
// objects carry them across both systems, so none may move.
func TestReservedIdentitiesAreCiliums(t *testing.T) {
	want := map[string]Identity{
		"host": 1, "world": 2, "unmanaged": 3, "health": 4, "init": 5,
		"remote-node": 6, "kube-apiserver": 7, "ingress": 8,
	}
	got := Reserved()
	if len(got) != len(want) {
		t.Fatalf("Reserved() = %v, want %d identities", got, len(want))
	}
	for i, id := range got {
		if i > 0 && got[i-1] >= id {
			t.Errorf("Reserved() not in numeric order: %v", got)
		}
		name, ok := ReservedName(id)
		if !ok || want[name] != id {
			t.Errorf("ReservedName(%d) = %q, %v", id, name, ok)
		}
		if back, ok := ReservedByName(name); !ok || back != id {
			t.Errorf("ReservedByName(%q) = %d, %v; want %d", name, back, ok, id)
		}
		if !id.IsReserved() || id.String() != "reserved:"+name {
			t.Errorf("identity %d: IsReserved %v, String %q", id, id.IsReserved(), id)
		}
	}
	for _, id := range []Identity{IdentityAny, 9, 256, MaxMarkIdentity} {
		if id.IsReserved() {
			t.Errorf("identity %d counted as reserved", id)
		}
	}
	if _, ok := ReservedByName("cluster"); ok {
		t.Error("an unknown name resolved to a reserved identity")
	}
	if IdentityAny.String() != "any" || Identity(1234).String() != "1234" {
		t.Errorf("String: %q, %q", IdentityAny, Identity(1234))
	}
}
