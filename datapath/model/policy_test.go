package model

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyValidateNamesTheEntryAndField(t *testing.T) {
	ok := PolicyEntry{Subject: 10, Remote: 20, Direction: Ingress, Proto: ProtoTCP, Port: 80, Verdict: Allow}
	for _, tc := range []struct {
		name  string
		entry PolicyEntry
		want  string
	}{
		{"no subject", func() PolicyEntry { e := ok; e.Subject = 0; return e }(), "subject"},
		{"no direction", func() PolicyEntry { e := ok; e.Direction = 0; return e }(), "direction"},
		{"port without protocol", func() PolicyEntry { e := ok; e.Proto = 0; return e }(), "port"},
		{"unknown verdict", func() PolicyEntry { e := ok; e.Verdict = 9; return e }(), "verdict"},
		{"redirect without port", func() PolicyEntry { e := ok; e.Verdict = Redirect; return e }(), "proxyPort"},
		{"redirect of UDP", func() PolicyEntry {
			e := ok
			e.Verdict, e.ProxyPort, e.Proto = Redirect, 1, ProtoUDP
			return e
		}(), "proto"},
		{"proxy port on allow", func() PolicyEntry { e := ok; e.ProxyPort = 1; return e }(), "proxyPort"},
		{"auth on deny", func() PolicyEntry { e := ok; e.Verdict, e.Auth = Deny, AuthSPIFFE; return e }(), "auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Policy{Entries: []PolicyEntry{ok, tc.entry}}.Validate()
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), "entries[1]") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidPolicy naming entries[1] and %q", err, tc.want)
			}
		})
	}
	dup := ok
	dup.Verdict = Deny
	if err := (Policy{Entries: []PolicyEntry{ok, dup}}).Validate(); err == nil || !strings.Contains(err.Error(), "same key as entries[0]") {
		t.Fatalf("duplicate key: %v", err)
	}
	if err := (Policy{Enforce: map[Identity]Enforcement{0: EnforceIngress}}).Validate(); err == nil {
		t.Fatal("enforcement of identity 0 accepted")
	}
	if err := (Policy{Enforce: map[Identity]Enforcement{5: 4}}).Validate(); err == nil {
		t.Fatal("unknown enforcement flag accepted")
	}
	if err := (Policy{Enforce: map[Identity]Enforcement{10: EnforceIngress}, Entries: []PolicyEntry{ok}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDecidePrecedence(t *testing.T) {
	row := func(remote Identity, proto uint8, port uint16, v Verdict) PolicyEntry {
		e := PolicyEntry{Subject: 10, Remote: remote, Direction: Egress, Proto: proto, Port: port, Verdict: v}
		if v == Redirect {
			e.ProxyPort = 15001
		}
		return e
	}
	q := Query{Subject: 10, Remote: 20, Direction: Egress, Proto: ProtoTCP, Port: 80}
	enf := map[Identity]Enforcement{10: EnforceEgress}
	for _, tc := range []struct {
		name string
		rows []PolicyEntry
		want Verdict
		why  Reason
	}{
		{"no rows", nil, Deny, DropPolicy},
		{"L3 allow", []PolicyEntry{row(20, 0, 0, Allow)}, Allow, ReasonForwarded},
		{"port beats identity", []PolicyEntry{row(20, 0, 0, Allow), row(0, ProtoTCP, 80, Redirect)}, Redirect, ReasonRedirected},
		{"identity breaks a tie", []PolicyEntry{row(0, ProtoTCP, 80, Allow), row(20, ProtoTCP, 80, Redirect)}, Redirect, ReasonRedirected},
		{"deny anywhere wins", []PolicyEntry{row(20, ProtoTCP, 80, Allow), row(0, 0, 0, Deny)}, Deny, DropPolicyDeny},
		{"other port's deny does not", []PolicyEntry{row(20, ProtoTCP, 0, Allow), row(20, ProtoTCP, 22, Deny)}, Allow, ReasonForwarded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Policy{Enforce: enf, Entries: tc.rows}.Index().Decide(q)
			if d.Verdict != tc.want || d.Reason != tc.why {
				t.Fatalf("Decide = %+v, want %s (%s)", d, tc.want, tc.why)
			}
		})
	}
	if d := (Policy{Entries: []PolicyEntry{row(0, 0, 0, Deny)}}).Index().Decide(q); d.Verdict != Allow {
		t.Fatalf("rows of an unenforced identity applied: %+v", d)
	}
}
