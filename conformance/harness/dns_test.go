package main

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t testing.TB, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWhoamiZones(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Corefile")
	conf := ".:53 {\n    forward . 8.8.8.8 9.9.9.9\n    log\n    errors\n}\nfoo.bar.com:53 {\n  whoami\n}\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	zones, port, err := whoamiZones(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(zones, []string{"foo.bar.com."}) || port != "53" {
		t.Fatalf("zones %v port %s", zones, port)
	}
}

func TestAnswer(t *testing.T) {
	from := &net.UDPAddr{IP: net.ParseIP("10.248.0.9"), Port: 5353}
	zones := []string{"foo.bar.com."}
	for name, want := range map[string]dnsmessage.RCode{
		"foo.bar.com.":    dnsmessage.RCodeSuccess,
		"x.foo.bar.com.":  dnsmessage.RCodeSuccess,
		"example.com.":    dnsmessage.RCodeRefused, // never forwarded
		"barfoo.bar.com.": dnsmessage.RCodeRefused,
	} {
		resp, err := answer(query(t, name), from, zones)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("%s: unpacking answer: %v", name, err)
		}
		if m.Header.ID != 7 || !m.Header.Response || m.Header.RCode != want {
			t.Fatalf("%s: header %+v, want rcode %v", name, m.Header, want)
		}
		if want == dnsmessage.RCodeSuccess {
			if len(m.Additionals) != 1 || m.Additionals[0].Body.(*dnsmessage.AResource).A != [4]byte{10, 248, 0, 9} {
				t.Fatalf("%s: additionals %+v", name, m.Additionals)
			}
		}
	}
}

// FuzzAnswer feeds arbitrary datagrams to the stand-in: it must never
// panic, and whatever it answers must be a well-formed DNS message.
func FuzzAnswer(f *testing.F) {
	f.Add(query(f, "foo.bar.com."))
	f.Add(query(f, "example.com."))
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1})
	from := &net.UDPAddr{IP: net.ParseIP("10.248.0.9"), Port: 5353}
	f.Fuzz(func(t *testing.T, q []byte) {
		resp, err := answer(q, from, []string{"foo.bar.com."})
		if err != nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("answer is not a DNS message: %v", err)
		}
	})
}
