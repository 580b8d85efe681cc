package http1

// checkHost applies RFC 9112 §3.2 to the request's Host: an HTTP/1.1
// request carries exactly one Host field, any request at most one, and its
// value must be a valid host (ValidHost, the check HTTP/2 requests pass
// too). For an absolute-form target the target's authority is the
// request's host (§3.2.2: a proxy ignores the Host field then), so the
// Host field is rewritten to it: routing, policy and the upstream request
// all see one host.
func (r *Request) checkHost(f *fieldState) error {
	if f.hosts > 1 || (f.hosts == 0 && r.Minor == 1) {
		return ErrBadHost
	}
	if f.hosts == 1 && !ValidHost(f.host) {
		return ErrBadHost
	}
	if r.Host == nil {
		r.Host = f.host
		return nil
	}
	if !ValidHost(r.Host) {
		return ErrBadTarget
	}
	if f.hosts == 1 {
		r.Headers[f.hostIdx].Value = r.Host
	}
	return nil
}
