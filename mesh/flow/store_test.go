package flow

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func flowAt(i int, verdict, proto string, src, dst string) Flow {
	return Flow{
		Time:        time.Unix(int64(1000+i), 0).UTC(),
		Source:      Endpoint{Address: netip.MustParseAddrPort(src)},
		Destination: Endpoint{Address: netip.MustParseAddrPort(dst)},
		Protocol:    proto, Verdict: verdict,
		HTTP: &HTTP{Method: "GET", Path: "/" + string(rune('a'+i)), Status: 200},
	}
}

func TestStoreQueryAndRing(t *testing.T) {
	var lines bytes.Buffer
	s := NewStore(WithCapacity(3), WithJSONLines(&lines))
	s.SetResolver(ResolverFunc(func(a netip.Addr) (uint32, string) {
		switch a.String() {
		case "10.0.0.1":
			return 256, "default/tiefighter"
		case "10.0.0.2":
			return 257, "default/deathstar"
		}
		return 2, ""
	}))
	s.Add(flowAt(0, Forwarded, ProtocolHTTP, "10.0.0.1:1000", "10.0.0.2:80"))
	s.Add(flowAt(1, Dropped, ProtocolHTTP, "10.0.0.1:1001", "10.0.0.2:80"))
	s.Add(flowAt(2, Forwarded, ProtocolKafka, "10.0.0.9:1002", "10.0.0.2:9092"))
	s.Add(flowAt(3, Dropped, ProtocolHTTP, "10.0.0.9:1003", "10.0.0.2:80"))

	all := s.Query(Filter{}, 0)
	if len(all) != 3 || all[0].HTTP.Path != "/b" || all[2].HTTP.Path != "/d" {
		t.Fatalf("ring of 3 after 4 adds, oldest first: %+v", all)
	}
	if got := s.Query(Filter{Verdict: "dropped"}, 0); len(got) != 2 {
		t.Errorf("verdict filter: %d flows", len(got))
	}
	if got := s.Query(Filter{Identity: 256}, 0); len(got) != 1 || got[0].Source.Workload != "default/tiefighter" {
		t.Errorf("identity filter: %+v", got)
	}
	if got := s.Query(Filter{Identity: 257, Protocol: "KAFKA"}, 0); len(got) != 1 || got[0].Destination.Identity != 257 {
		t.Errorf("destination identity + protocol filter: %+v", got)
	}
	if got := s.Query(Filter{}, 1); len(got) != 1 || got[0].HTTP.Path != "/d" {
		t.Errorf("limit keeps the newest: %+v", got)
	}
	if got := s.Query(Filter{Since: time.Unix(1003, 0)}, 0); len(got) != 1 {
		t.Errorf("since: %+v", got)
	}
	// Every added flow went out as a JSON line, resolved.
	ls := strings.Split(strings.TrimSpace(lines.String()), "\n")
	if len(ls) != 4 {
		t.Fatalf("%d JSON lines", len(ls))
	}
	var f Flow
	if err := json.Unmarshal([]byte(ls[1]), &f); err != nil {
		t.Fatal(err)
	}
	if f.Verdict != Dropped || f.Source.Identity != 256 || f.Destination.Workload != "default/deathstar" || f.Source.Address.Port() != 1001 {
		t.Errorf("JSON line decoded as %+v", f)
	}
}

func TestChangedWakesFollowers(t *testing.T) {
	s := NewStore()
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any Add")
	default:
	}
	s.Add(flowAt(0, Forwarded, ProtocolHTTP, "10.0.0.1:1", "10.0.0.2:2"))
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("Add did not wake the follower")
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct {
		f    Flow
		want string
	}{
		{Flow{HTTP: &HTTP{Method: "PUT", Path: "/v1/exhaust-port", Status: 403}}, "PUT /v1/exhaust-port 403"},
		{Flow{HTTP: &HTTP{Method: "POST"}, GRPC: &GRPC{Service: "pkg.Svc", Method: "Do", Status: 7}}, "/pkg.Svc/Do status 7"},
		{Flow{Reason: "policy-denied", Datapath: &Datapath{Event: EventDrop, Reason: 2}}, "drop policy-denied"},
		{Flow{Reason: "redirected", Datapath: &Datapath{Event: EventRedirect, Reason: 1, ProxyPort: 15101}}, "redirect to :15101"},
		{Flow{Kafka: &Kafka{APIKeyName: "Produce", APIVersion: 9, Topics: []string{"a", "b"}, ErrorName: "TOPIC_AUTHORIZATION_FAILED"}}, "Produce v9 [a,b] TOPIC_AUTHORIZATION_FAILED"},
	} {
		if got := tc.f.Summary(); got != tc.want {
			t.Errorf("Summary() = %q, want %q", got, tc.want)
		}
	}
}

func TestAfterFollowsAcrossWraparound(t *testing.T) {
	s := NewStore(WithCapacity(2))
	seq := s.Last()
	s.Add(flowAt(0, Forwarded, ProtocolHTTP, "10.0.0.1:1", "10.0.0.2:2"))
	got, seq := s.After(seq, Filter{})
	if len(got) != 1 || seq != 1 {
		t.Fatalf("after one add: %d flows, seq %d", len(got), seq)
	}
	for i := 1; i <= 3; i++ { // three more into a ring of two: one is lost
		s.Add(flowAt(i, Dropped, ProtocolHTTP, "10.0.0.1:1", "10.0.0.2:2"))
	}
	got, seq = s.After(seq, Filter{Verdict: Dropped})
	if len(got) != 2 || seq != 4 || got[0].HTTP.Path != "/c" || got[1].HTTP.Path != "/d" {
		t.Fatalf("after wraparound: %+v, seq %d", got, seq)
	}
	if got, _ := s.After(seq, Filter{}); len(got) != 0 {
		t.Fatalf("nothing new: %+v", got)
	}
}

// TestReadReportsLost: a reader that falls more than the ring's capacity
// behind is told exactly how many flows it missed, reads on from the
// oldest flow still held, and every flow is either read or counted lost.
func TestReadReportsLost(t *testing.T) {
	s := NewStore(WithCapacity(4))
	seq := s.Last()
	for i := 0; i < 10; i++ {
		s.Add(flowAt(i, Forwarded, ProtocolHTTP, "10.0.0.1:1", "10.0.0.2:2"))
	}
	got, next, lost := s.Read(seq, 3)
	if lost != 6 || len(got) != 3 || got[0].HTTP.Path != "/g" || next != 9 {
		t.Fatalf("first read: %d flows from %v, next %d, lost %d; want 3 from /g, next 9, lost 6", len(got), paths(got), next, lost)
	}
	got, next, lost = s.Read(next, 0)
	if lost != 0 || len(got) != 1 || got[0].HTTP.Path != "/j" || next != 10 {
		t.Fatalf("second read: %v, next %d, lost %d", paths(got), next, lost)
	}
	if got, next, lost = s.Read(next, 0); len(got) != 0 || next != 10 || lost != 0 {
		t.Fatalf("nothing new: %v, next %d, lost %d", paths(got), next, lost)
	}
	if o := s.Oldest(); o != 6 {
		t.Fatalf("Oldest() = %d, want 6", o)
	}
	if got, _, lost := s.Read(s.Oldest(), 0); len(got) != 4 || lost != 0 {
		t.Fatalf("from Oldest(): %v, lost %d", paths(got), lost)
	}
	if held, capacity, added := s.Stats(); held != 4 || capacity != 4 || added != 10 {
		t.Fatalf("Stats() = %d, %d, %d", held, capacity, added)
	}
}

// TestAddKeepsReportedIdentity: a flow that carries an identity (the
// datapath's) keeps it, and gets the workload only if the address still
// has that identity.
func TestAddKeepsReportedIdentity(t *testing.T) {
	s := NewStore()
	s.SetResolver(ResolverFunc(func(a netip.Addr) (uint32, string) { return 256, "default/xwing" }))
	f := flowAt(0, Dropped, ProtocolTCP, "10.0.0.1:1", "10.0.0.2:2")
	f.Source.Identity, f.Destination.Identity = 256, 300
	s.Add(f)
	got := s.Query(Filter{}, 0)[0]
	if got.Source.Identity != 256 || got.Source.Workload != "default/xwing" || got.Destination.Identity != 300 || got.Destination.Workload != "" {
		t.Fatalf("resolved as %+v / %+v", got.Source, got.Destination)
	}
}

func paths(fs []Flow) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.HTTP.Path)
	}
	return out
}

type labelResolver map[uint32][]string

func (r labelResolver) Resolve(netip.Addr) (uint32, string) { return 0, "" }
func (r labelResolver) Labels(id uint32) []string           { return r[id] }

// TestAddRecordsLabels: with a LabelResolver the endpoints get their
// identity's labels at Add time; a later change of the identity's labels
// does not rewrite recorded flows.
func TestAddRecordsLabels(t *testing.T) {
	s := NewStore()
	tie := []string{"k8s:class=tiefighter", "k8s:org=empire"}
	s.SetResolver(labelResolver{256: tie})
	f := flowAt(0, Dropped, ProtocolTCP, "10.0.0.1:1", "10.0.0.2:2")
	f.Source.Identity, f.Destination.Identity = 256, 300
	s.Add(f)
	s.SetResolver(labelResolver{256: {"k8s:class=other"}})
	got := s.Query(Filter{}, 0)[0]
	if !slices.Equal(got.Source.Labels, tie) || got.Destination.Labels != nil {
		t.Fatalf("labels %q / %q", got.Source.Labels, got.Destination.Labels)
	}
}
