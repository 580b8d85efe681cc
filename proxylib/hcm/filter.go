package hcm

import (
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/proxylib/headermatch"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Response flags of local replies (Envoy's short names), as a bit set.
const (
	flagNR   uint32 = 1 << iota // no route
	flagNC                      // no cluster
	flagUH                      // no healthy upstream
	flagUF                      // upstream connection failure
	flagUC                      // upstream connection termination
	flagUT                      // upstream request timeout
	flagUPE                     // upstream protocol error
	flagRBAC                    // RBAC access denied
	flagNFCF                    // no filter config found
	flagDPE                     // downstream protocol error
	flagUO                      // upstream overflow (circuit breaker)
	flagSI                      // stream idle timeout
	flagUR                      // upstream remote reset (refused stream)
	flagURX                     // the retry limit was reached
)

var flagNames = map[string]uint32{"NR": flagNR, "NC": flagNC, "UH": flagUH, "UF": flagUF, "UC": flagUC,
	"UT": flagUT, "UPE": flagUPE, "RBAC": flagRBAC, "NFCF": flagNFCF, "DPE": flagDPE, "UO": flagUO,
	"SI": flagSI, "UR": flagUR, "URX": flagURX}

// Envoy's RBAC filter wording.
var (
	bodyRBACDenied   = []byte("RBAC: access denied")
	bodyNoFilterConf = []byte("Missing required filter config") // NFCF
)

// filter is a compiled HTTP filter before the router.
type filter struct {
	name   string
	static *rbac.Engine // static typed_config
	ecds   string       // discovered configuration name
	cors   bool         // the CORS filter (cors.go)
}

// replyMapper is a compiled local_reply_config mapper.
type replyMapper struct {
	byFlags bool
	flags   uint32
	op      resource.CompareOp
	value   uint32
	status  int
	body    []byte
	hasBody bool
}

func compileFilters(cfg *resource.HCM) ([]filter, []replyMapper) {
	var fs []filter
	for _, f := range cfg.Filters {
		cf := filter{name: f.Name}
		if f.Kind == resource.FilterCORS {
			cf.cors = true
		} else if f.Discovery != nil {
			cf.ecds = f.Discovery.Name
		} else {
			cf.static = rbac.New(f.RBAC)
		}
		fs = append(fs, cf)
	}
	var ms []replyMapper
	for _, m := range cfg.LocalReply {
		rm := replyMapper{byFlags: m.Flags != nil, op: m.StatusOp, value: m.StatusValue, status: m.StatusCode, body: m.Body, hasBody: m.HasBody}
		for n := range m.Flags {
			rm.flags |= flagNames[n]
		}
		ms = append(ms, rm)
	}
	return fs, ms
}

// runFilters evaluates the filters before the router, in order: RBAC
// filters judge the request, header match filters edit its headers (and
// never stop it). It returns outLocal with the reply set when one stops
// the request.
func (s *stream) runFilters() (outcome, bool) {
	for i := range s.h.filters {
		f := &s.h.filters[i]
		if f.cors {
			if out, stop := s.runCORS(f.name); stop {
				return out, true
			}
			continue
		}
		e := f.static
		if f.ecds != "" {
			fc := s.routing.Filters[f.ecds]
			if fc != nil && fc.HeaderMatch != nil {
				in := rbac.Input{Req: &s.rreq, Local: s.dst, Remote: s.remote, Identity: s.identity, IdentityOnly: s.identityOnly}
				fc.HeaderMatch.Apply(&in, s.headers, s.noteHeader)
				continue
			}
			if fc == nil || fc.RBAC == nil {
				// Envoy answers 500 when a discovered filter has no
				// configuration once warming gave up: fail closed.
				s.verdict, s.reason = l7meta.VerdictError, "no_filter_config"
				return s.localFlag(500, bodyNoFilterConf, "missing_config", flagNFCF), true
			}
			e = fc.RBAC
		}
		if !e.Enforcing() {
			continue
		}
		in := rbac.Input{Req: &s.rreq, Local: s.dst, Remote: s.remote, Peer: s.peerNames, Authenticated: s.mtls(),
			Identity: s.identity, IdentityOnly: s.identityOnly}
		ok, pol := e.Evaluate(&in)
		if !ok {
			s.verdict, s.reason, s.policy = l7meta.VerdictDropped, "rbac_access_denied", ""
			return s.localFlag(403, bodyRBACDenied, "rbac_access_denied_matched_policy[none]", flagRBAC), true
		}
		s.policy = pol
	}
	return outForward, false
}

func (s *stream) localFlag(code int, body []byte, details string, flag uint32) outcome {
	s.flags |= flag
	return s.local(code, body, details)
}

// mapLocal applies the connection manager's local reply mappers: the
// first whose flags intersect the reply's rewrites its status and body.
func (s *stream) mapLocal(code int, body []byte) (int, []byte) {
	if s.cors.preflight {
		return code, body // not a local reply Envoy maps: the CORS filter encodes it directly
	}
	for i := range s.h.mappers {
		m := &s.h.mappers[i]
		if m.byFlags && m.flags&s.flags == 0 || !m.byFlags && !m.op.Compare(uint32(code), m.value) {
			continue
		}
		if m.status != 0 {
			code = m.status
		}
		if m.hasBody {
			body = m.body
		}
		break
	}
	return code, body
}

// appendGRPCMessage percent-encodes a grpc-message value as gRPC requires
// (bytes outside printable ASCII, and '%').
func appendGRPCMessage(dst, msg []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range msg {
		if c < 0x20 || c > 0x7e || c == '%' {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// noteHeader keeps a header match record for the access log, as
// "name: value".
func (s *stream) noteHeader(r headermatch.Record) {
	if r.Missing {
		s.missingHeaders = append(s.missingHeaders, r.Name+": "+r.Value)
	} else {
		s.rejectedHeaders = append(s.rejectedHeaders, r.Name+": "+r.Value)
	}
}
