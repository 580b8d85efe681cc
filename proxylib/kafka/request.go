package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request is a parsed Kafka request frame.
type Request struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
	// Topics are the topic names the request names, deduplicated.
	Topics []string
	// UnknownTopics: the request names topics by ID or regex, which cannot
	// be matched against topic names.
	UnknownTopics bool
	// NoResponse: the broker sends no response (Produce with acks=0).
	NoResponse bool
	Msg        kmsg.Request
}

// Errors of request parsing.
var (
	ErrFrame       = errors.New("malformed Kafka frame")
	ErrUnsupported = errors.New("unsupported Kafka request")
)

// minHeader is api_key, api_version, correlation_id and the client id
// length.
const minHeader = 2 + 2 + 4 + 2

// ParseRequest parses one complete request frame body (without the 4-byte
// length prefix). It never allocates from a length in the data beyond
// what the data holds.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) < minHeader {
		return nil, fmt.Errorf("%w: %d-byte request header", ErrFrame, len(b))
	}
	r := &Request{
		Key:           int16(binary.BigEndian.Uint16(b)),
		Version:       int16(binary.BigEndian.Uint16(b[2:])),
		CorrelationID: int32(binary.BigEndian.Uint32(b[4:])),
	}
	if r.Key == 7 && r.Version == 0 {
		// ControlledShutdown v0 has no client id.
		return r, fmt.Errorf("%w: ControlledShutdown v0", ErrUnsupported)
	}
	n := int16(binary.BigEndian.Uint16(b[8:]))
	rest := b[10:]
	if n >= 0 {
		if int(n) > len(rest) {
			return r, fmt.Errorf("%w: client id of %d bytes with %d left", ErrFrame, n, len(rest))
		}
		r.ClientID, rest = string(rest[:n]), rest[n:]
	} else if n != -1 {
		return r, fmt.Errorf("%w: client id length %d", ErrFrame, n)
	}
	msg := kmsg.RequestForKey(r.Key)
	if msg == nil {
		return r, fmt.Errorf("%w: api key %d", ErrUnsupported, r.Key)
	}
	if r.Version < 0 || r.Version > msg.MaxVersion() {
		return r, fmt.Errorf("%w: %s version %d", ErrUnsupported, kmsg.NameForKey(r.Key), r.Version)
	}
	msg.SetVersion(r.Version)
	if msg.IsFlexible() {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return r, err
		}
	}
	if err := msg.ReadFrom(rest); err != nil {
		return r, fmt.Errorf("%w: decoding %s v%d: %v", ErrFrame, kmsg.NameForKey(r.Key), r.Version, err)
	}
	r.Msg = msg
	if p, ok := msg.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		r.NoResponse = true
	}
	r.Topics, r.UnknownTopics = topicsOf(msg)
	return r, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: tagged field count", ErrFrame)
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: tag", ErrFrame)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: tagged field size", ErrFrame)
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// topicResource is Kafka's resource type number of topics (configs and
// ACL resources).
const topicResource = 2

// topicsOf collects the topic names a request names, walking its fields:
// Topic fields (string or nullable string), []string topic lists, topic
// IDs without a name and topic regexes (unknown), and topic resources of
// config and ACL requests.
func topicsOf(msg kmsg.Request) ([]string, bool) {
	w := walker{seen: map[string]bool{}}
	w.walk(reflect.ValueOf(msg).Elem(), 0)
	return w.topics, w.unknown
}

type walker struct {
	topics  []string
	seen    map[string]bool
	unknown bool
}

func (w *walker) add(t string) {
	if t != "" && !w.seen[t] {
		w.seen[t] = true
		w.topics = append(w.topics, t)
	}
}

var (
	stringType  = reflect.TypeFor[string]()
	pstringType = reflect.TypeFor[*string]()
	uuidType    = reflect.TypeFor[[16]byte]()
)

func (w *walker) walk(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	t := v.Type()
	named := false
	var id reflect.Value
	var resType int64 = -1
	var resName string
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		switch f.Name {
		case "Topic":
			switch f.Type {
			case stringType:
				if s := fv.String(); s != "" {
					w.add(s)
					named = true
				}
			case pstringType:
				if !fv.IsNil() && fv.Elem().String() != "" {
					w.add(fv.Elem().String())
					named = true
				}
			}
		case "TopicID":
			if f.Type == uuidType {
				id = fv
			}
		case "Topics", "TopicNames", "SubscribedTopicNames":
			if f.Type.Kind() == reflect.Slice && f.Type.Elem() == stringType {
				for j := 0; j < fv.Len(); j++ {
					w.add(fv.Index(j).String())
				}
			}
		case "SubscribedTopicRegex":
			if f.Type == pstringType && !fv.IsNil() && fv.Elem().String() != "" {
				w.unknown = true
			}
		case "ResourceType":
			if fv.CanInt() {
				resType = fv.Int()
			}
		case "ResourceName":
			switch f.Type {
			case stringType:
				resName = fv.String()
			case pstringType:
				if !fv.IsNil() {
					resName = fv.Elem().String()
				}
			}
		}
		switch {
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			for j := 0; j < fv.Len(); j++ {
				w.walk(fv.Index(j), depth+1)
			}
		case f.Type.Kind() == reflect.Struct && f.Type != uuidType:
			w.walk(fv, depth+1)
		}
	}
	if !named && id.IsValid() && id.Interface().([16]byte) != [16]byte{} {
		w.unknown = true
	}
	if resType == topicResource && resName != "" {
		w.add(resName)
	}
}
