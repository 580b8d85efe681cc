package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	kafkav1 "github.com/nodemesh/nodemesh/proxylib/api/kafka/v1"
	"github.com/nodemesh/nodemesh/proxylib/parser"
)

// FuzzParser feeds arbitrary request and response bytes to the parser, the
// way the relay does: it never panics, every operation is well formed,
// and it never asks to buffer more than the request bound.
func FuzzParser(f *testing.F) {
	// Seeds: a frame of every API key (as the framing test encodes them),
	// a denied fetch, and a response.
	for key := int16(0); key < 100; key++ {
		r := kmsg.RequestForKey(key)
		if r == nil {
			continue
		}
		r.SetVersion(MaxVersion(key))
		f.Add(frame(r, int32(key), "seed"), []byte{})
	}
	fr := kmsg.NewPtrFetchRequest()
	fr.Version = 12
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: "secret", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0}}}}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	f.Add(frame(fr, 1, "c"), Frame(1, resp))
	av := kmsg.NewPtrApiVersionsRequest()
	avr := kmsg.NewPtrApiVersionsResponse()
	avr.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 1, MaxVersion: 17}}
	f.Add(frame(av, 2, "c"), Frame(2, avr))

	pol := decodePolicy(f, &kafkav1.KafkaPolicy{MaxRequestBytes: 1 << 16, Destinations: []*kafkav1.KafkaDestination{{
		Addresses: []string{"10.0.0.9"}, Port: 9092,
		Rules: []*kafkav1.KafkaRule{{Principals: []string{"10.0.1.0/24"}, Role: "consume", Topic: "events"}},
	}}})
	f.Fuzz(func(t *testing.T, req, resp []byte) {
		var events []Event
		p, c := newParser(pol, &events)
		drive := func(reply bool, b []byte) {
			for len(b) > 0 {
				op, n := p.OnData(reply, false, [][]byte{b})
				switch op {
				case parser.Pass, parser.Drop:
					if n <= 0 {
						t.Fatalf("%s %d", op, n)
					}
					if n >= len(b) {
						return
					}
					b = b[n:]
				case parser.More:
					if n <= 0 || len(b)+n > int(pol.MaxRequestBytes)+4 {
						t.Fatalf("MORE %d with %d buffered", n, len(b))
					}
					return
				case parser.Error:
					return
				default:
					t.Fatalf("unexpected %s", op)
				}
			}
		}
		drive(false, req)
		drive(true, resp)
		_ = parser.Injected(c, true)
	})
}
