package kafka

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nodemesh/nodemesh/proxylib/parser"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Event describes one judged request, for access logs.
type Event struct {
	Request  *Request
	Verdict  Verdict
	Start    time.Time
	Duration time.Duration // until the response passed, for forwarded requests
	// ErrorCode is the error a denied request was answered with (0 when
	// forwarded).
	ErrorCode *kerr.Error
}

// Config configures a connection's parser.
type Config struct {
	// Policy returns the current policy; nil means none was received, and
	// the connection is closed at its first request.
	Policy func() *resource.KafkaPolicy
	// Log receives an event per request; may be nil.
	Log    func(Event)
	Logger *slog.Logger
}

// pending is a request whose answer is still due, in request order.
type pending struct {
	corr    int32
	key     int16
	version int16
	// answer is the injected error response of a denied request; nil for a
	// forwarded one, whose response comes from the broker.
	answer []byte
	ev     Event
}

// maxPending bounds the requests in flight on one connection.
const maxPending = 4096

// maxAPIVersionsResponse bounds the one response the parser buffers.
const maxAPIVersionsResponse = 1 << 20

// Parser judges the Kafka requests of one connection. It implements
// parser.Parser.
type Parser struct {
	c       *parser.Connection
	cfg     Config
	pending []pending
}

// NewParser returns the parser for a connection.
func NewParser(c *parser.Connection, cfg Config) *Parser {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Parser{c: c, cfg: cfg}
}

// Errors the parser closes connections with (the Error operation's code).
const (
	errMalformed = iota + 1
	errTooLarge
	errUnsupported
	errUnsolicited
	errNoPolicy
	errTooManyPending
	errDeniedNoAck
)

// OnData implements parser.Parser.
func (p *Parser) OnData(reply, end bool, data [][]byte) (parser.Op, int) {
	b := data[0]
	if len(data) > 1 {
		for _, d := range data[1:] {
			b = append(b[:len(b):len(b)], d...)
		}
	}
	if reply {
		return p.onResponse(b)
	}
	return p.onRequest(b)
}

func (p *Parser) onRequest(b []byte) (parser.Op, int) {
	if len(b) < 4 {
		return parser.More, 4 - len(b)
	}
	pol := p.cfg.Policy()
	if pol == nil {
		p.cfg.Logger.Warn("kafka: no policy for listener; closing", "listener", p.c.Listener)
		return parser.Error, errNoPolicy
	}
	size := int64(int32(binary.BigEndian.Uint32(b)))
	if size < minHeader {
		return parser.Error, errMalformed
	}
	if size > int64(pol.MaxRequestBytes) {
		p.cfg.Logger.Warn("kafka: request larger than the limit; closing", "size", size, "limit", pol.MaxRequestBytes, "src", p.c.Src)
		return parser.Error, errTooLarge
	}
	total := int(size) + 4
	if len(b) < total {
		return parser.More, total - len(b)
	}
	req, err := ParseRequest(b[4:total])
	if err != nil {
		p.cfg.Logger.Debug("kafka: unparsable request; closing", "error", err, "src", p.c.Src)
		return parser.Error, errUnsupported
	}
	if len(p.pending) >= maxPending {
		return parser.Error, errTooManyPending
	}
	ev := Event{Request: req, Start: time.Now()}
	src := p.c.Src.Addr()
	if p.c.SrcUnjudged {
		// Kafka rules name peers by address only: such a peer matches
		// none of them (fail closed).
		src = netip.Addr{}
	}
	ev.Verdict = Decide(pol, src, p.c.Dst, req)
	if ev.Verdict.Allowed {
		if req.NoResponse {
			p.log(ev)
		} else {
			p.pending = append(p.pending, pending{corr: req.CorrelationID, key: req.Key, version: req.Version, ev: ev})
		}
		return parser.Pass, total
	}
	code := deniedCode(req, ev.Verdict.Reason == "topic_not_allowed")
	ev.ErrorCode = code
	if req.NoResponse {
		// Without acks the client expects no answer; a broker closes the
		// connection on an error so the client notices.
		p.log(ev)
		return parser.Error, errDeniedNoAck
	}
	answer := ErrorResponse(req, code.Code)
	if len(p.pending) == 0 {
		if p.c.Inject(true, answer) < len(answer) {
			return parser.Error, errTooManyPending
		}
		p.log(ev)
	} else {
		p.pending = append(p.pending, pending{corr: req.CorrelationID, answer: answer, ev: ev})
	}
	return parser.Drop, total
}

// onResponse checks a broker response against the oldest forwarded
// request, forwards it and releases the denial answers queued behind it.
func (p *Parser) onResponse(b []byte) (parser.Op, int) {
	if len(b) < 8 {
		return parser.More, 8 - len(b)
	}
	size := int64(int32(binary.BigEndian.Uint32(b)))
	corr := int32(binary.BigEndian.Uint32(b[4:]))
	if size < 4 {
		return parser.Error, errMalformed
	}
	if len(p.pending) == 0 || p.pending[0].answer != nil || p.pending[0].corr != corr {
		p.cfg.Logger.Debug("kafka: response does not answer the oldest request; closing", "correlation_id", corr)
		return parser.Error, errUnsolicited
	}
	head := &p.pending[0]
	total := int(size) + 4
	op := parser.Pass
	if head.key == keyAPIVersions {
		// Advertise only versions the proxy can judge.
		if size > maxAPIVersionsResponse {
			return parser.Error, errTooLarge
		}
		if len(b) < total {
			return parser.More, total - len(b)
		}
		if capped, ok := CapAPIVersions(corr, head.version, b[8:total]); ok {
			p.c.Inject(true, capped)
			op = parser.Drop
		}
	}
	head.ev.Duration = time.Since(head.ev.Start)
	p.log(head.ev)
	p.pending = p.pending[1:]
	for len(p.pending) > 0 && p.pending[0].answer != nil {
		if p.c.Inject(true, p.pending[0].answer) < len(p.pending[0].answer) {
			return parser.Error, errTooManyPending
		}
		p.log(p.pending[0].ev)
		p.pending = p.pending[1:]
	}
	if len(p.pending) == 0 {
		p.pending = nil // release the backing array
	}
	return op, total
}

func (p *Parser) log(ev Event) {
	if p.cfg.Log != nil {
		p.cfg.Log(ev)
	}
}

// APIKeyName returns Kafka's name of an API key.
func APIKeyName(key int16) string { return kmsg.NameForKey(key) }
