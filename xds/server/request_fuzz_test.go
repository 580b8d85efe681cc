package server

import (
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// FuzzRequests drives the ACK/NACK table with what proxies send: the
// input is a sequence of uvarint-length-prefixed events whose first byte
// picks the event and the stream (open or close a state-of-the-world or
// delta stream, a response the server sends, a request decoded from the
// rest of the chunk, as gRPC would hand it over). Properties: no panic;
// a version counts as acknowledged only if the server sent it on that
// type or a proxy resumed with it; a NACK names a nonce and version the
// server sent; the table lists only nodes some request named, none with
// an ID beyond MaxNodeFieldBytes, and at most WithMaxDisconnectedNodes
// (here 2) disconnected ones.
func FuzzRequests(f *testing.F) {
	seq := func(evs ...[]byte) []byte {
		var out []byte
		for _, e := range evs {
			out = binary.AppendUvarint(out, uint64(len(e)))
			out = append(out, e...)
		}
		return out
	}
	pb := func(op byte, m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return append([]byte{op}, b...)
	}
	node := &corev3.Node{Id: "proxy-a", Cluster: "c"}
	cds := kindTypeURL[kindCluster]
	// Open SotW stream 0, first request, response, ACK, response, NACK.
	f.Add(seq([]byte{0x00}, pb(0x30, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: cds}), []byte{0x40},
		pb(0x30, &discoveryv3.DiscoveryRequest{TypeUrl: cds, ResponseNonce: "n1", VersionInfo: "v1"}), []byte{0x40},
		pb(0x30, &discoveryv3.DiscoveryRequest{TypeUrl: cds, ResponseNonce: "n2", VersionInfo: "v1", ErrorDetail: &status.Status{Message: "bad"}}),
		[]byte{0x20}))
	// Delta stream 1: resume with versions, response, ACK, response, NACK, stale nonce.
	f.Add(seq([]byte{0x11}, pb(0x51, &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: cds, InitialResourceVersions: map[string]string{"a": "1"}}),
		[]byte{0x61}, pb(0x51, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: "n1"}), []byte{0x61},
		pb(0x51, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: "n2", ErrorDetail: &status.Status{Message: "bad"},
			ResourceNamesUnsubscribe: []string{"a"}}),
		pb(0x51, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds, ResponseNonce: "n9"}), []byte{0x21}))
	// A resumed SotW stream and a request on a stream never opened.
	f.Add(seq([]byte{0x02}, pb(0x32, &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: cds, VersionInfo: "old"}),
		pb(0x31, &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "x"}, TypeUrl: cds})))
	// Four nodes on streams 0-3, each closed in turn.
	var churn [][]byte
	for i := range 4 {
		churn = append(churn, []byte{byte(i)}, pb(0x30|byte(i), &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "n" + strconv.Itoa(i)}, TypeUrl: cds}),
			[]byte{0x20 | byte(i)})
	}
	f.Add(seq(churn...))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithMaxDisconnectedNodes(2))
		var (
			sent    = map[string]map[string]bool{} // type URL → versions the server sent
			nonces  = map[string]bool{}            // nonces the server sent
			resumed = map[string]map[string]bool{} // type URL → versions proxies resumed with
			named   = map[string]bool{}            // node IDs requests carried
			counter int
		)
		note := func(m map[string]map[string]bool, k, v string) {
			if m[k] == nil {
				m[k] = map[string]bool{}
			}
			m[k][v] = true
		}
		for n := 0; len(data) > 0 && n < 64; n++ {
			l, k := binary.Uvarint(data)
			if k <= 0 || l == 0 || l > uint64(len(data)-k) {
				break
			}
			chunk := data[k : k+int(l)]
			data = data[k+int(l):]
			op, id := chunk[0]>>4, int64(chunk[0]&3)
			typeURL := kindTypeURL[int(chunk[0]>>2&3)%len(kindTypeURL)]
			switch op {
			case 0:
				s.openStream(id, false)
			case 1:
				s.openStream(id, true)
			case 2:
				s.closeStream(streamKey{chunk[0]&4 != 0, id})
			case 3:
				req := &discoveryv3.DiscoveryRequest{}
				if proto.Unmarshal(chunk[1:], req) != nil {
					continue
				}
				if req.GetNode() != nil {
					named[req.GetNode().GetId()] = true
				}
				if req.GetResponseNonce() == "" && req.GetVersionInfo() != "" {
					note(resumed, req.GetTypeUrl(), req.GetVersionInfo())
				}
				s.onRequest(id, req)
			case 4, 6:
				counter++
				nonce, version := "n"+strconv.Itoa(counter), "v"+strconv.Itoa(counter)
				nonces[nonce] = true
				note(sent, typeURL, version)
				if op == 4 {
					s.onResponse(id, &discoveryv3.DiscoveryRequest{TypeUrl: typeURL},
						&discoveryv3.DiscoveryResponse{TypeUrl: typeURL, Nonce: nonce, VersionInfo: version})
				} else {
					s.onDeltaResponse(id, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL},
						&discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: nonce, SystemVersionInfo: version})
				}
			case 5:
				req := &discoveryv3.DeltaDiscoveryRequest{}
				if proto.Unmarshal(chunk[1:], req) != nil {
					continue
				}
				if req.GetNode() != nil {
					named[req.GetNode().GetId()] = true
				}
				s.onDeltaRequest(id, req)
			}
			disconnected := 0
			for _, ns := range s.Status() {
				if !named[ns.ID] {
					t.Fatalf("table lists node %q no request named", ns.ID)
				}
				if len(ns.ID) > MaxNodeFieldBytes || len(ns.Cluster) > MaxNodeFieldBytes {
					t.Fatalf("table lists a node ID of %d bytes, cluster of %d", len(ns.ID), len(ns.Cluster))
				}
				if !ns.Connected {
					disconnected++
				}
				for _, ts := range ns.Types {
					if v := ts.VersionAcked; v != "" && !sent[ts.TypeURL][v] && !resumed[ts.TypeURL][v] {
						t.Fatalf("node %q %s: version %q acknowledged, never sent or resumed", ns.ID, ts.TypeURL, v)
					}
					if nk := ts.LastNack; nk != nil && (!nonces[nk.Nonce] || !sent[ts.TypeURL][nk.Version]) {
						t.Fatalf("node %q %s: NACK of nonce %q version %q the server never sent", ns.ID, ts.TypeURL, nk.Nonce, nk.Version)
					}
				}
			}
			if disconnected > 2 {
				t.Fatalf("table keeps %d disconnected nodes, bound 2", disconnected)
			}
		}
	})
}
