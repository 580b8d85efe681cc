package resource

import (
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	datapathv1 "github.com/nodemesh/nodemesh/proxylib/api/datapath/v1"
)

// TestDecodeSourceIdentityPrincipal: the filter_state principal decodes
// only as the datapath source identity, matched exactly by a non-zero
// decimal; anything else is refused, naming the field.
func TestDecodeSourceIdentityPrincipal(t *testing.T) {
	prin := func(key string, sm *matcherv3.StringMatcher) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: key, Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: sm}}}}
	}
	exact := func(v string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
	}
	got, err := decodePrincipal(prin(datapathv1.SourceIdentityKey, exact("8")), nil, scopeHTTP, 0)
	if err != nil || got.Kind != PrinSourceIdentity || got.Identity != 8 {
		t.Fatalf("decoded %+v, %v; want the source identity 8", got, err)
	}
	for _, tc := range []struct {
		name string
		p    *rbacv3.Principal
		want string
	}{
		{"other key", prin("envoy.network.application_protocol", exact("8")), "key"},
		{"prefix", prin(datapathv1.SourceIdentityKey, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "8"}}), "string_match"},
		{"ignore case", prin(datapathv1.SourceIdentityKey, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "8"}, IgnoreCase: true}), "string_match"},
		{"zero", prin(datapathv1.SourceIdentityKey, exact("0")), "exact"},
		{"leading zero", prin(datapathv1.SourceIdentityKey, exact("08")), "exact"},
		{"not a number", prin(datapathv1.SourceIdentityKey, exact("ingress")), "exact"},
		{"too large", prin(datapathv1.SourceIdentityKey, exact("4294967296")), "exact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodePrincipal(tc.p, nil, scopeHTTP, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one naming %q", err, tc.want)
			}
		})
	}
}
