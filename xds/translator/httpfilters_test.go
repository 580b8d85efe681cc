package translator

import (
	"strings"
	"testing"
)

func TestHTTPFilterOrder(t *testing.T) {
	named := func(role httpFilterRole, hop httpFilterHop, name string) httpFilter {
		return discoveredFilter(role, hop, name, rbacTypeURL)
	}
	router := routerFilter(nil)
	for _, tc := range []struct {
		name string
		in   []httpFilter
		want string
	}{
		{"router alone", []httpFilter{router}, filterRouter},
		{"router given first still runs last",
			[]httpFilter{router, named(roleRBAC, hopListener, "rbac")},
			"rbac " + filterRouter},
		{"hop by hop, RBAC before header match within a hop",
			[]httpFilter{
				named(roleHeaderMatch, hopDestination, "dst-hm"),
				router,
				named(roleRBAC, hopDestination, "dst-rbac"),
				named(roleHeaderMatch, hopListener, "hm"),
				named(roleRBAC, hopListener, "rbac"),
			},
			"rbac hm dst-rbac dst-hm " + filterRouter},
		{"same hop and role keep their order",
			[]httpFilter{named(roleRBAC, hopListener, "b"), named(roleRBAC, hopListener, "a")},
			"b a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range httpFilters(tc.in) {
				got = append(got, f.GetName())
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("order %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}
