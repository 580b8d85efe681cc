package translator

import (
	"bytes"
	"slices"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Equality of IR objects for the Translator's reuse. Written out rather
// than reflect.DeepEqual: it runs over every route on every translation,
// and this is several times faster and allocation-free. Any field added to
// the IR must be added here (memo_test.go compares against a fresh
// translation of every golden input, which catches a forgotten field that
// a golden case exercises).

func equalCluster(a, b *ir.Cluster) bool {
	return a == b || a.Name == b.Name && a.Protocol == b.Protocol && a.LBPolicy == b.LBPolicy &&
		a.ConnectTimeout == b.ConnectTimeout && slices.Equal(a.Endpoints, b.Endpoints)
}

func equalSecret(a, b *ir.Secret) bool {
	return a == b || a.Name == b.Name && bytes.Equal(a.Certificate, b.Certificate) && bytes.Equal(a.PrivateKey, b.PrivateKey)
}

func equalTLS(a, b *ir.TLS) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Certificates, b.Certificates) && slices.Equal(a.ALPN, b.ALPN)
}

func equalVirtualHost(a, b *ir.VirtualHost) bool {
	if a == b {
		return true
	}
	return a.Name == b.Name && slices.Equal(a.Domains, b.Domains) && slices.EqualFunc(a.Routes, b.Routes, equalRoute)
}

func equalRoute(a, b *ir.Route) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Name == b.Name && a.Timeout == b.Timeout && a.BackendTimeout == b.BackendTimeout && equalMatch(&a.Match, &b.Match) &&
		slices.EqualFunc(a.Backends, b.Backends, equalBackend) &&
		equalRewrite(a.Rewrite, b.Rewrite) && equalRedirect(a.Redirect, b.Redirect) &&
		equalPtr(a.DirectResponse, b.DirectResponse) &&
		equalModifier(a.RequestHeaders, b.RequestHeaders) && equalModifier(a.ResponseHeaders, b.ResponseHeaders)
}

func equalMatch(a, b *ir.Match) bool {
	return equalPtr(a.Path, b.Path) && a.Method == b.Method && slices.Equal(a.Headers, b.Headers) && slices.Equal(a.Query, b.Query)
}

func equalBackend(a, b *ir.WeightedBackend) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Cluster == b.Cluster && a.Weight == b.Weight &&
		equalModifier(a.RequestHeaders, b.RequestHeaders) && equalModifier(a.ResponseHeaders, b.ResponseHeaders)
}

func equalModifier(a, b *ir.HeaderModifier) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Set, b.Set) && slices.Equal(a.Add, b.Add) && slices.Equal(a.Remove, b.Remove)
}

func equalRewrite(a, b *ir.Rewrite) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Hostname == b.Hostname && equalPtr(a.Path, b.Path)
}

func equalRedirect(a, b *ir.Redirect) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Scheme == b.Scheme && a.Hostname == b.Hostname && a.Port == b.Port && a.StatusCode == b.StatusCode && equalPtr(a.Path, b.Path)
}

// equalPtr compares pointers to comparable structs by value.
func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
