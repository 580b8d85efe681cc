package translator

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// redirect answers with a Location built from the request.
//
// How Envoy builds it (RedirectAction): the scheme is scheme_redirect or the
// request's; the host is host_redirect if set (replacing the request's host
// and port), else the request's Host, whose port is dropped when
// port_redirect is set, or when the scheme changes and the port was the
// default of the request's scheme; ":port_redirect" is appended whenever
// set, even when it is the scheme's default. The query is kept.
//
// The IR's rule is "Port is the final port, omitted from the Location when
// it is the default for the final scheme". Mapping:
//
//   - Port set, Hostname and Scheme set, Port the scheme's default: only
//     host_redirect, giving "https://host/…" exactly;
//   - Port set otherwise: port_redirect. With the request's host Envoy
//     cannot drop only the port, so a default port is written out
//     ("https://example.com:443/…", the same URL) rather than risk keeping
//     a non-default request port;
//   - Port 0: no port_redirect, so the request's port is kept — except that
//     a host_redirect carries no port (Envoy has no way to keep the
//     request's) and that Envoy drops a request port that was the default
//     of the old scheme. Producers set Port explicitly (Gateway API's port
//     defaulting always yields one), so neither case arises from them.
func (b *builder) redirect(r *ir.Route, out *routev3.Route) *problem {
	rd := r.Redirect
	ra := &routev3.RedirectAction{ResponseCode: redirectCode(rd.StatusCode)}
	if rd.Scheme != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.Scheme}
	}
	if rd.Hostname != "" {
		ra.HostRedirect = hostLiteral(rd.Hostname)
	}
	if rd.Port != 0 && !(rd.Hostname != "" && rd.Scheme != "" && rd.Port == defaultPort(rd.Scheme)) {
		ra.PortRedirect = rd.Port
	}
	if rd.Path != nil && rd.Path.Type == ir.ReplaceFullPath {
		if !protoText(rd.Path.Value) {
			return problemf("redirect.path.value", "path is not UTF-8 text without control bytes")
		}
		ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: rd.Path.Value}
	} else {
		pe, p := pathEditOf("redirect.path", rd.Path, r.Match.Path)
		if p != nil {
			return p
		}
		switch {
		case pe.regex != nil:
			ra.PathRewriteSpecifier = &routev3.RedirectAction_RegexRewrite{RegexRewrite: pe.regex}
		case pe.prefix != "":
			ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: pe.prefix}
		}
	}
	out.Action = &routev3.Route_Redirect{Redirect: ra}
	return nil
}

func defaultPort(scheme string) uint32 {
	if scheme == "https" {
		return 443
	}
	return 80
}

func redirectCode(status int) routev3.RedirectAction_RedirectResponseCode {
	switch status {
	case 302:
		return routev3.RedirectAction_FOUND
	case 303:
		return routev3.RedirectAction_SEE_OTHER
	case 307:
		return routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		return routev3.RedirectAction_PERMANENT_REDIRECT
	default:
		return routev3.RedirectAction_MOVED_PERMANENTLY
	}
}
