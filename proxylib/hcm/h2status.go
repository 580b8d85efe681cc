package hcm

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// errBadStatus is an HTTP/2 upstream response whose :status is no
// status code: an upstream protocol error (classify).
var errBadStatus = errors.New("upstream HTTP/2 response with an invalid :status")

// roundTripH2 sends req over pool's h2c transport. The transport takes
// any integer as :status; a response whose code is not three digits of
// 100 or more is refused here, as an HTTP/1.1 status line outside that
// range is by package http1, so no client receives a status such as 0.
func roundTripH2(pool *upstream.Pool, req *http.Request) (*http.Response, error) {
	resp, err := pool.H2().RoundTrip(req)
	if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 999) {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %d", errBadStatus, resp.StatusCode)
	}
	return resp, err
}
