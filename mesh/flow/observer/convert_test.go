package observer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/mesh/flow"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
)

// TestProtoGolden converts each stored flow in testdata/convert (HTTP
// forwarded and denied, gRPC, Kafka, relayed TCP, L3/L4 drops, an
// auth-required drop, a redirect) into Hubble's flow and compares its
// protojson form with the .out.json file.
func TestProtoGolden(t *testing.T) {
	for _, in := range golden.Inputs(t, "testdata/convert", ".in.json", ".out.json") {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var f flow.Flow
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				t.Fatalf("decoding %s: %v", in, err)
			}
			out, err := protojson.Marshal(Proto(&f, "node-1"))
			if err != nil {
				t.Fatal(err)
			}
			// protojson varies its whitespace on purpose; indent it
			// stably.
			var buf bytes.Buffer
			if err := json.Indent(&buf, out, "", "  "); err != nil {
				t.Fatal(err)
			}
			buf.WriteByte('\n')
			golden.Check(t, strings.TrimSuffix(in, ".in.json")+".out.json", buf.Bytes())
		})
	}
}

// TestDropReasonsCoverEveryDrop: every drop reason the datapath has maps
// to a Cilium code, and no two to the same one.
func TestDropReasonsCoverEveryDrop(t *testing.T) {
	seen := map[flowpb.DropReason]model.Reason{}
	for r := model.Reason(0); r < 64; r++ {
		if r.String() == "" || strings.HasPrefix(r.String(), "reason(") {
			continue
		}
		code := DropReason(r)
		if !r.IsDrop() {
			if code != flowpb.DropReason_DROP_REASON_UNKNOWN {
				t.Errorf("%s is no drop but maps to %s", r, code)
			}
			continue
		}
		if code == flowpb.DropReason_DROP_REASON_UNKNOWN {
			t.Errorf("drop reason %s has no Cilium code", r)
		}
		if prev, dup := seen[code]; dup {
			t.Errorf("%s and %s both map to %s", prev, r, code)
		}
		seen[code] = r
	}
	if len(seen) < 10 {
		t.Fatalf("only %d drop reasons checked", len(seen))
	}
}
