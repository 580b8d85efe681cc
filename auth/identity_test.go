package auth

import (
	"errors"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("spiffe.cilium")

func TestIdentityOf(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want Identity
	}{
		{"spiffe://spiffe.cilium/identity/1", 1},
		{"spiffe://spiffe.cilium/identity/4294967295", 4294967295},
		{"spiffe://spiffe.cilium/identity/4294967296", 0},
		{"spiffe://spiffe.cilium/identity/0", 0},
		{"spiffe://spiffe.cilium/identity/042", 0},
		{"spiffe://spiffe.cilium/identity/42/x", 0},
		{"spiffe://spiffe.cilium/identities/42", 0},
		{"spiffe://spiffe.cilium/ns/default/sa/x", 0},
		{"spiffe://other.example/identity/42", 0},
	} {
		id := spiffeid.RequireFromString(tc.id)
		got, err := IdentityOf(td, id)
		if tc.want == 0 {
			if !errors.Is(err, ErrNotIdentity) {
				t.Errorf("IdentityOf(%s) = %d, %v; want ErrNotIdentity", tc.id, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("IdentityOf(%s) = %d, %v; want %d", tc.id, got, err, tc.want)
		}
		back, err := SPIFFEID(td, got)
		if err != nil || back != id {
			t.Errorf("SPIFFEID(%d) = %s, %v; want %s", got, back, err, id)
		}
	}
	if _, err := SPIFFEID(td, 0); err == nil {
		t.Error("SPIFFEID(0) succeeded")
	}
}

func TestServerName(t *testing.T) {
	if got := ServerName(td, 4711); got != "4711.spiffe.cilium" {
		t.Errorf("ServerName = %s", got)
	}
	for _, bad := range []string{"", "spiffe.cilium", ".spiffe.cilium", "0.spiffe.cilium", "01.spiffe.cilium",
		"4711.other.example", "4711.spiffe.cilium.", "x4711.spiffe.cilium", "4711.4711.spiffe.cilium", "99999999999.spiffe.cilium"} {
		if id, err := IdentityOfServerName(td, bad); !errors.Is(err, ErrNotIdentity) {
			t.Errorf("IdentityOfServerName(%q) = %d, %v; want ErrNotIdentity", bad, id, err)
		}
	}
}

// FuzzIdentityOfServerName: the server name comes from the network. A
// name that parses is exactly the canonical name of its identity.
func FuzzIdentityOfServerName(f *testing.F) {
	for _, s := range []string{"4711.spiffe.cilium", "0.spiffe.cilium", "4294967296.spiffe.cilium", "", "\x00.spiffe.cilium"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, err := IdentityOfServerName(td, name)
		if err != nil {
			return
		}
		if id == 0 || ServerName(td, id) != name {
			t.Fatalf("%q parsed as %d, whose name is %q", name, id, ServerName(td, id))
		}
	})
}

func TestNotifierCoalesces(t *testing.T) {
	var n Notifier
	ch, cancel := n.Subscribe()
	n.Notify()
	n.Notify() // never blocks on a full slot
	<-ch
	select {
	case <-ch:
		t.Error("two notifications queued; want one slot")
	default:
	}
	cancel()
	n.Notify()
	select {
	case <-ch:
		t.Error("notified after cancel")
	default:
	}
}
