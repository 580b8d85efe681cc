package translator

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestCheckRoutesReportsTheFirstFailure: however many goroutines validate
// the routes of a translation, every route is checked and the error names
// the first failing route in build order, as a sequential check would.
func TestCheckRoutesReportsTheFirstFailure(t *testing.T) {
	for _, n := range []int{10, parallelCheckMin * 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			valid := func(i int) uncheckedRoute {
				return uncheckedRoute{rc: "rc", vhost: "vh", out: &routev3.Route{
					Name:   fmt.Sprintf("r%d", i),
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 404}},
				}}
			}
			b := &builder{}
			for i := range n {
				b.unchecked = append(b.unchecked, valid(i))
			}
			if err := b.checkRoutes(); err != nil {
				t.Fatalf("valid routes: %v", err)
			}
			if len(b.unchecked) != 0 {
				t.Fatal("checked routes are still pending")
			}
			// Two invalid routes (no match, which Envoy requires); the
			// earlier one is reported.
			for i := range n {
				r := valid(i)
				if i == n/2 || i == n-1 {
					r.out.Match = nil
				}
				b.unchecked = append(b.unchecked, r)
			}
			err := b.checkRoutes()
			if !errors.Is(err, ErrInvalidOutput) {
				t.Fatalf("invalid routes: error %v, want ErrInvalidOutput", err)
			}
			if want := fmt.Sprintf(`route "r%d"`, n/2); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
}
