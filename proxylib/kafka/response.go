package kafka

import (
	"encoding/binary"
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka API keys the proxy treats specially.
const (
	keyProduce         = 0
	keyFindCoordinator = 10
	keyInitProducerID  = 22
	keyAPIVersions     = 18
)

// groupKeys and txnKeys are answered with GROUP_ / TRANSACTIONAL_ID_
// AUTHORIZATION_FAILED when the request itself is not allowed; topicKeys
// with TOPIC_AUTHORIZATION_FAILED; every other key with
// CLUSTER_AUTHORIZATION_FAILED, as a broker's ACLs would answer.
var (
	groupKeys = map[int16]bool{8: true, 9: true, 11: true, 12: true, 13: true, 14: true, 15: true, 42: true, 47: true, 68: true, 69: true}
	txnKeys   = map[int16]bool{24: true, 25: true, 26: true, 28: true}
	topicKeys = map[int16]bool{0: true, 1: true, 2: true, 3: true, 19: true, 20: true, 21: true, 23: true, 37: true,
		43: true, 45: true, 46: true, 61: true, 75: true}
)

// deniedCode is the error a denied request is answered with.
func deniedCode(r *Request, topicDenied bool) *kerr.Error {
	if topicDenied || topicKeys[r.Key] {
		return kerr.TopicAuthorizationFailed
	}
	switch {
	case groupKeys[r.Key]:
		return kerr.GroupAuthorizationFailed
	case txnKeys[r.Key]:
		return kerr.TransactionalIDAuthorizationFailed
	case r.Key == keyFindCoordinator:
		if fc, ok := r.Msg.(*kmsg.FindCoordinatorRequest); ok && fc.CoordinatorType == 1 {
			return kerr.TransactionalIDAuthorizationFailed
		}
		return kerr.GroupAuthorizationFailed
	case r.Key == keyInitProducerID:
		if ip, ok := r.Msg.(*kmsg.InitProducerIDRequest); ok && ip.TransactionalID != nil {
			return kerr.TransactionalIDAuthorizationFailed
		}
	}
	return kerr.ClusterAuthorizationFailed
}

// ErrorResponse builds the framed response that answers r with code: the
// response mirrors the request's topics, partitions, groups and keys, and
// carries code at the deepest level that has an error field (the request
// level only where nothing deeper exists), as a broker answers a request
// it is not authorized to serve.
func ErrorResponse(r *Request, code int16) []byte {
	resp := r.Msg.ResponseKind()
	resp.SetVersion(r.Version)
	mirror(reflect.ValueOf(r.Msg).Elem(), reflect.ValueOf(resp).Elem(), code, 0)
	return Frame(r.CorrelationID, resp)
}

// Frame encodes a response with its header: length, correlation id and,
// for flexible versions, an empty tag section (ApiVersions responses
// always use header version 0).
func Frame(corr int32, resp kmsg.Response) []byte {
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(b[4:], uint32(corr))
	if resp.IsFlexible() && resp.Key() != keyAPIVersions {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// aliases maps a response list to the request lists it may answer when
// their names differ (DeleteTopics v0-5 names topics in TopicNames).
var aliases = map[string][]string{"Coordinators": {"CoordinatorKeys"}, "Topics": {"TopicNames"}}

// source finds the request field a response field answers: the same name,
// or an alias; a non-empty list wins over an empty one.
func source(req reflect.Value, name string) reflect.Value {
	v := req.FieldByName(name)
	for _, a := range aliases[name] {
		alt := req.FieldByName(a)
		if alt.IsValid() && (!v.IsValid() || v.Kind() == reflect.Slice && v.Len() == 0 && alt.Len() > 0) {
			v = alt
		}
	}
	return v
}

// mirror fills resp from req and sets error codes; it reports whether an
// error code was set.
func mirror(req, resp reflect.Value, code int16, depth int) bool {
	if depth > 8 {
		return false
	}
	t := resp.Type()
	nested := false
	errField := -1
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Name == "Version" {
			continue
		}
		rv := resp.Field(i)
		if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
			errField = i
			continue
		}
		src := source(req, f.Name)
		if !src.IsValid() {
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			switch {
			case src.Kind() == reflect.Slice && src.Type().Elem().Kind() == reflect.Struct:
				out := reflect.MakeSlice(f.Type, src.Len(), src.Len())
				for j := 0; j < src.Len(); j++ {
					e := out.Index(j)
					setDefault(e)
					if mirror(src.Index(j), e, code, depth+1) {
						nested = true
					}
				}
				rv.Set(out)
			case src.Kind() == reflect.Slice && src.Type().Elem().Kind() == reflect.String:
				// A list of names answered by a list of structs: the
				// name goes into the element's first string field.
				out := reflect.MakeSlice(f.Type, src.Len(), src.Len())
				for j := 0; j < src.Len(); j++ {
					e := out.Index(j)
					setDefault(e)
					setFirstString(e, src.Index(j).String())
					if setErr(e, code) {
						nested = true
					}
				}
				rv.Set(out)
			}
		case src.Type() == f.Type && isScalar(f.Type):
			rv.Set(src)
		}
	}
	if errField >= 0 && !nested {
		resp.Field(errField).SetInt(int64(code))
		return true
	}
	return nested
}

func isScalar(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Bool, reflect.Array:
		return true
	case reflect.Pointer:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

func setDefault(e reflect.Value) {
	if m := e.Addr().MethodByName("Default"); m.IsValid() {
		m.Call(nil)
	}
}

func setFirstString(e reflect.Value, s string) {
	for i := 0; i < e.NumField(); i++ {
		f := e.Field(i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString(s)
			return
		case f.Type() == pstringType:
			f.Set(reflect.ValueOf(&s))
			return
		}
	}
}

func setErr(e reflect.Value, code int16) bool {
	if f := e.FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(code))
		return true
	}
	return false
}

// topicIDVersions are the first versions of requests that may name topics
// by ID only; the proxy advertises versions below them so that every
// request it judges names its topics.
var topicIDVersions = map[int16]int16{0: 13, 1: 13, 8: 10, 9: 10, 20: 6, 28: 6}

// MaxVersion is the highest version of key the proxy lets clients use: what
// it can decode, below any version that names topics by ID only. -1: the
// key is unknown to the proxy.
func MaxVersion(key int16) int16 {
	m := kmsg.RequestForKey(key)
	if m == nil {
		return -1
	}
	v := m.MaxVersion()
	if c, ok := topicIDVersions[key]; ok && c-1 < v {
		v = c - 1
	}
	return v
}

// CapAPIVersions rewrites an ApiVersions response body (the bytes after
// the correlation id) of the given version so that it advertises only
// versions the proxy can judge (see MaxVersion), dropping unknown keys. It
// returns the framed response, or false when the body does not decode (it
// is then forwarded unchanged).
func CapAPIVersions(corr int32, version int16, body []byte) ([]byte, bool) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(body); err != nil {
		// A broker answers an unsupported ApiVersions version with v0.
		resp = kmsg.NewPtrApiVersionsResponse()
		if err := resp.ReadFrom(body); err != nil {
			return nil, false
		}
	}
	keys := resp.ApiKeys[:0]
	for _, k := range resp.ApiKeys {
		max := MaxVersion(k.ApiKey)
		if max < 0 || k.MinVersion > max {
			continue
		}
		if k.MaxVersion > max {
			k.MaxVersion = max
		}
		keys = append(keys, k)
	}
	resp.ApiKeys = keys
	return Frame(corr, resp), true
}
