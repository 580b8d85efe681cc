package ir

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// Hash is the content hash of an IR object (see "Change detection" in
// doc.go): SHA-256, truncated to 128 bits, of an unambiguous encoding of
// the object's fields. Equal content gives equal hashes, in any process;
// different content gives different hashes (a collision would need a
// SHA-256 collision on purpose, or luck of one in 2^64 by accident).
type Hash [16]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// What each hash covers. An object's hash covers its own fields and, for
// the objects it holds that have a hash of their own, their hashes:
//   - Route: every field.
//   - VirtualHost: name, domains and its routes' hashes in order; and
//     apart, its route list: the routes' hashes in order (RouteList).
//   - RouteTable: name and its virtual hosts' hashes in order.
//   - Listener: name, address, port and its chains (name, server names,
//     TLS, and the name of the route table; a table is hashed on its own,
//     so a route change leaves its listener's hash alone), and its TCP
//     chains whole.
//   - Cluster: two hashes, its settings (every field but the endpoints)
//     and its endpoints (name and endpoints), since proxies receive them
//     apart and endpoints change far more often.
//   - Secret, PolicyListener, HTTPPolicy, KafkaPolicy: every field.
//
// Each encoding starts with a tag naming the type, so objects of
// different types never share a hash.
const (
	tagRoute byte = iota + 1
	tagVirtualHost
	tagRouteTable
	tagListener
	tagCluster
	tagEndpoints
	tagSecret
	tagPolicyListener
	tagHTTPPolicy
	tagKafkaPolicy
	tagRouteList
)

// encoder writes an object's fields into a buffer that is hashed once at
// the end. Strings and lists are length-prefixed, optional parts carry a
// presence byte, so no two contents share an encoding.
type encoder struct{ buf []byte }

func (e *encoder) start(tag byte) { e.buf = append(e.buf[:0], tag) }

func (e *encoder) sum() Hash {
	full := sha256.Sum256(e.buf)
	return Hash(full[:16])
}

func (e *encoder) str(s string) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) bytes(b []byte) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(b)))
	e.buf = append(e.buf, b...)
}

func (e *encoder) uint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

func (e *encoder) int(v int64) { e.buf = binary.AppendVarint(e.buf, v) }

func (e *encoder) dur(d time.Duration) { e.int(int64(d)) }

func (e *encoder) bool(b bool) {
	if b {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// present writes whether an optional part is there and reports it.
func (e *encoder) present(ok bool) bool {
	e.bool(ok)
	return ok
}

func (e *encoder) strs(s []string) {
	e.uint(uint64(len(s)))
	for _, x := range s {
		e.str(x)
	}
}

func (e *encoder) hash(h Hash) { e.buf = append(e.buf, h[:]...) }

func (e *encoder) route(r *Route) {
	e.start(tagRoute)
	e.str(r.Name)
	m := &r.Match
	if e.present(m.Path != nil) {
		e.str(string(m.Path.Type))
		e.str(m.Path.Value)
	}
	e.str(m.Method)
	e.uint(uint64(len(m.Headers)))
	for _, h := range m.Headers {
		e.str(h.Name)
		e.str(string(h.Type))
		e.str(h.Value)
	}
	e.uint(uint64(len(m.Query)))
	for _, q := range m.Query {
		e.str(q.Name)
		e.str(string(q.Type))
		e.str(q.Value)
	}
	e.uint(uint64(len(r.Backends)))
	for _, b := range r.Backends {
		if e.present(b != nil) {
			e.str(b.Cluster)
			e.uint(uint64(b.Weight))
			e.modifier(b.RequestHeaders)
			e.modifier(b.ResponseHeaders)
		}
	}
	if rw := r.Rewrite; e.present(rw != nil) {
		e.str(rw.Hostname)
		e.pathRewrite(rw.Path)
	}
	if rd := r.Redirect; e.present(rd != nil) {
		e.str(rd.Scheme)
		e.str(rd.Hostname)
		e.uint(uint64(rd.Port))
		e.pathRewrite(rd.Path)
		e.int(int64(rd.StatusCode))
	}
	if d := r.DirectResponse; e.present(d != nil) {
		e.int(int64(d.Status))
		e.str(d.Body)
	}
	e.modifier(r.RequestHeaders)
	e.modifier(r.ResponseHeaders)
	e.dur(r.Timeout)
	e.dur(r.BackendTimeout)
	e.cors(r.CORS)
	if rp := r.Retry; e.present(rp != nil) {
		e.uint(uint64(len(rp.Codes)))
		for _, c := range rp.Codes {
			e.int(int64(c))
		}
		e.uint(uint64(rp.Attempts))
		e.dur(rp.Backoff)
	}
	e.uint(uint64(len(r.Mirrors)))
	for _, m := range r.Mirrors {
		if e.present(m != nil) {
			e.str(m.Cluster)
			e.uint(uint64(m.Numerator))
			e.uint(uint64(m.Denominator))
		}
	}
}

func (e *encoder) cors(c *CORSPolicy) {
	if !e.present(c != nil) {
		return
	}
	e.uint(uint64(len(c.AllowOrigins)))
	for _, o := range c.AllowOrigins {
		e.str(string(o.Type))
		e.str(o.Value)
	}
	e.strs(c.AllowMethods)
	e.strs(c.AllowHeaders)
	e.strs(c.ExposeHeaders)
	e.dur(c.MaxAge)
	e.bool(c.AllowCredentials)
}

func (e *encoder) modifier(m *HeaderModifier) {
	if !e.present(m != nil) {
		return
	}
	e.headers(m.Set)
	e.headers(m.Add)
	e.strs(m.Remove)
}

func (e *encoder) headers(hs []Header) {
	e.uint(uint64(len(hs)))
	for _, h := range hs {
		e.str(h.Name)
		e.str(h.Value)
	}
}

func (e *encoder) pathRewrite(p *PathRewrite) {
	if e.present(p != nil) {
		e.str(string(p.Type))
		e.str(p.Value)
	}
}

func (e *encoder) listener(l *Listener) {
	e.start(tagListener)
	e.str(l.Name)
	e.str(l.Address)
	e.uint(uint64(l.Port))
	e.uint(uint64(len(l.Chains)))
	for _, ch := range l.Chains {
		if !e.present(ch != nil) {
			continue
		}
		e.str(ch.Name)
		e.strs(ch.ServerNames)
		if t := ch.TLS; t != nil && (t.ClientCA != nil || t.AllowUnverifiedClients) {
			// Client validation marks its presence byte 2, so chains
			// without it keep the encoding they had.
			e.buf = append(e.buf, 2)
			e.strs(t.Certificates)
			e.strs(t.ALPN)
			e.bytes(t.ClientCA)
			e.bool(t.AllowUnverifiedClients)
		} else if e.present(ch.TLS != nil) {
			e.strs(ch.TLS.Certificates)
			e.strs(ch.TLS.ALPN)
		}
		if e.present(ch.Routes != nil) {
			e.str(ch.Routes.Name)
		}
		e.bool(ch.CORS)
		if len(ch.SourcePrefixes) > 0 {
			// Only when set, so chains without keep the encoding they
			// had; the count cannot be mistaken for the next chain's
			// name, which always follows a presence byte.
			e.buf = append(e.buf, 3)
			e.strs(ch.SourcePrefixes)
		}
	}
	if e.present(l.UDP != nil) {
		e.str(l.UDP.Cluster)
	}
	e.uint(uint64(len(l.TCPChains)))
	for _, ch := range l.TCPChains {
		if ch != nil && ch.TLS != nil {
			// A terminating chain marks its presence byte 3 and starts
			// with its TLS, so passthrough chains keep their encoding.
			e.buf = append(e.buf, 3)
			e.strs(ch.TLS.Certificates)
			e.strs(ch.TLS.ALPN)
			e.bytes(ch.TLS.ClientCA)
			e.bool(ch.TLS.AllowUnverifiedClients)
		} else if !e.present(ch != nil) {
			continue
		}
		e.str(ch.Name)
		e.strs(ch.ServerNames)
		e.uint(uint64(len(ch.Backends)))
		for _, b := range ch.Backends {
			if e.present(b != nil) {
				e.str(b.Cluster)
				e.uint(uint64(b.Weight))
				e.modifier(b.RequestHeaders)
				e.modifier(b.ResponseHeaders)
			}
		}
	}
	if l.OriginalSourceMark != 0 {
		// Only when set, after every list, so listeners without keep
		// the encoding they had.
		e.buf = append(e.buf, 4)
		e.uint(uint64(l.OriginalSourceMark))
	}
	if l.PlainAndTLS {
		// Only when set, so other listeners keep their encoding; the
		// listener is hashed alone and this byte comes last, so it is
		// unambiguous.
		e.buf = append(e.buf, 5)
	}
}

func (e *encoder) cluster(c *Cluster) {
	e.start(tagCluster)
	e.str(c.Name)
	e.str(string(c.Protocol))
	e.str(string(c.LBPolicy))
	e.dur(c.ConnectTimeout)
	e.uint(uint64(c.UpstreamMark))
	e.str(c.UpstreamSource)
	// Upstream TLS is appended only when set, so clusters without it keep
	// the encoding (and the versions) they had.
	if t := c.UpstreamTLS; t != nil {
		e.buf = append(e.buf, 1)
		e.str(t.SNI)
		e.bytes(t.TrustedCA)
		e.uint(uint64(len(t.SubjectAltNames)))
		for _, san := range t.SubjectAltNames {
			e.str(string(san.Type))
			e.str(san.Value)
		}
		e.str(t.ClientCertificate)
	}
}

func (e *encoder) endpoints(c *Cluster) {
	e.start(tagEndpoints)
	e.str(c.Name)
	e.uint(uint64(len(c.Endpoints)))
	for _, ep := range c.Endpoints {
		e.str(ep.Address)
		e.uint(uint64(ep.Port))
		if ep.Weight == 0 {
			e.bool(ep.Ready)
			continue
		}
		// A weighted endpoint marks its ready byte (2 or 3) and adds the
		// weight, so unweighted endpoints keep the encoding they had.
		b := byte(2)
		if ep.Ready {
			b = 3
		}
		e.buf = append(e.buf, b)
		e.uint(uint64(ep.Weight))
	}
}

func (e *encoder) secret(s *Secret) {
	e.start(tagSecret)
	e.str(s.Name)
	e.bytes(s.Certificate)
	e.bytes(s.PrivateKey)
}

func (e *encoder) policyListener(l *PolicyListener) {
	e.start(tagPolicyListener)
	e.str(l.Name)
	e.str(string(l.Direction))
	e.str(string(l.Protocol))
	e.str(l.Address)
	e.uint(uint64(l.Port))
	e.bool(l.OriginalSource)
	e.str(l.ConntrackMap)
}

func (e *encoder) peers(p PeerSet) {
	e.bool(p.Any)
	e.uint(uint64(len(p.Terms)))
	for _, t := range p.Terms {
		e.str(t.Prefix)
		e.strs(t.Except)
	}
	e.uint(uint64(len(p.Identities)))
	for _, id := range p.Identities {
		e.uint(uint64(id))
	}
}

func (e *encoder) httpPolicy(h *HTTPPolicy) {
	e.start(tagHTTPPolicy)
	e.str(h.Name)
	e.str(string(h.Direction))
	e.uint(uint64(h.Port))
	e.strs(h.Endpoints)
	e.peers(h.Peers)
	if r := h.Request; e.present(r != nil) {
		e.str(r.Method)
		e.str(r.Path)
		e.str(r.Host)
		e.uint(uint64(len(r.Headers)))
		for _, hd := range r.Headers {
			e.str(hd.Name)
			e.str(hd.Value)
			e.bool(hd.Present)
		}
		e.uint(uint64(len(r.HeaderActions)))
		for _, a := range r.HeaderActions {
			e.str(a.Name)
			e.str(a.Value)
			e.str(string(a.Mismatch))
			e.bool(a.Secret)
		}
	}
}

func (e *encoder) kafkaPolicy(k *KafkaPolicy) {
	e.start(tagKafkaPolicy)
	e.str(k.Name)
	e.str(string(k.Direction))
	e.uint(uint64(k.Port))
	e.strs(k.Endpoints)
	e.peers(k.Peers)
	if r := k.Request; e.present(r != nil) {
		e.uint(uint64(len(r.APIKeys)))
		for _, key := range r.APIKeys {
			e.int(int64(key))
		}
		e.int(int64(r.APIVersion))
		e.bool(r.HasAPIVersion)
		e.str(r.ClientID)
		e.str(r.Topic)
	}
}
