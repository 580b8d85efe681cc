package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
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

// hopBatch is n flows as the access log delivers one message of the
// policy hop: HTTP requests from one client to one server, the source
// identity reported, numbered by their source port.
func hopBatch(from, n int) []Flow {
	fs := make([]Flow, n)
	for i := range fs {
		fs[i] = Flow{Time: time.Unix(1000, 0), Protocol: ProtocolHTTP, Verdict: Forwarded,
			Source:      Endpoint{Address: netip.AddrPortFrom(netip.MustParseAddr("10.244.0.17"), uint16(from+i)), Identity: 257},
			Destination: Endpoint{Address: netip.MustParseAddrPort("10.244.0.23:8080")},
			HTTP:        &HTTP{Method: "GET", Path: "/hop", Status: 200}}
	}
	return fs
}

// agentLike resolves as the agent's resolver does: identities and
// workloads by address, labels by identity.
type agentLike struct{ calls int }

func (r *agentLike) Resolve(a netip.Addr) (uint32, string) {
	r.calls++
	switch a {
	case netip.MustParseAddr("10.244.0.17"):
		return 257, "default/client"
	case netip.MustParseAddr("10.244.0.23"):
		return 258, "default/server"
	}
	return 2, ""
}

var agentLabels = map[uint32][]string{257: {"k8s:app=client"}, 258: {"k8s:app=server"}}

func (r *agentLike) Labels(id uint32) []string { return agentLabels[id] }

// TestAddAllAllocations: recording a batch allocates nothing per flow.
// Without a follower an AddAll allocates nothing at all; with one it
// allocates the one channel the follower waits on, whatever the batch's
// length (one wake per batch, not per flow).
func TestAddAllAllocations(t *testing.T) {
	s := NewStore(WithCapacity(1024))
	s.SetResolver(&agentLike{})
	batch := hopBatch(0, 64)
	s.AddAll(batch) // the memo's first allocation
	if n := testing.AllocsPerRun(100, func() { s.AddAll(batch) }); n != 0 {
		t.Errorf("AddAll of 64 flows, no follower: %.1f allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		_ = s.Changed()
		s.AddAll(batch)
	}); n > 1 {
		t.Errorf("AddAll of 64 flows with a follower waiting: %.1f allocations, want at most 1 (its channel)", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.Add(batch[0]) }); n != 0 {
		t.Errorf("Add, no follower: %.1f allocations, want 0", n)
	}
	got := s.Query(Filter{}, 1)[0]
	if got.Source.Workload != "default/client" || got.Destination.Identity != 258 || got.Destination.Workload != "default/server" ||
		!slices.Equal(got.Source.Labels, []string{"k8s:app=client"}) || !slices.Equal(got.Destination.Labels, []string{"k8s:app=server"}) {
		t.Fatalf("batch flow resolved as %+v / %+v", got.Source, got.Destination)
	}
}

// TestAddAllResolvesEachAddressOnce: a batch asks the resolver once per
// distinct address, and resolves as Add does.
func TestAddAllResolvesEachAddressOnce(t *testing.T) {
	r := &agentLike{}
	s := NewStore()
	s.SetResolver(r)
	batch := hopBatch(0, 64)
	batch[5].Source.Identity = 0                                           // the ipcache's identity
	batch[6].Source.Identity = 300                                         // the datapath's, another: no workload, its labels
	batch[7].Destination.Address = netip.MustParseAddrPort("192.0.2.1:80") // world
	s.AddAll(batch)
	if r.calls != 3 {
		t.Errorf("%d resolver calls for a batch of 3 distinct addresses", r.calls)
	}
	one := NewStore()
	one.SetResolver(&agentLike{})
	for _, f := range batch {
		one.Add(f)
	}
	if got, want := s.Query(Filter{}, 0), one.Query(Filter{}, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("AddAll and Add resolve differently:\n%+v\n%+v", got[5:8], want[5:8])
	}
	if batch[0].Source.Workload != "" || batch[0].Destination.Identity != 0 {
		t.Error("AddAll modified the caller's flows")
	}
	if got := s.Query(Filter{}, 0); got[6].Source.Identity != 300 || got[6].Source.Workload != "" || got[6].Source.Labels != nil {
		t.Errorf("a reported identity the resolver does not know: %+v", got[6].Source)
	}
	if c := s.Counts(); len(c) != 1 || c[0].N != 64 || c[0].Protocol != ProtocolHTTP || c[0].Verdict != Forwarded {
		t.Errorf("counts %+v", c)
	}
}

// blockingResolver blocks on the address block until release is
// closed, after telling entered.
type blockingResolver struct {
	agentLike
	block            netip.Addr
	entered, release chan struct{}
}

func (r *blockingResolver) Resolve(a netip.Addr) (uint32, string) {
	if a == r.block {
		close(r.entered)
		<-r.release
	}
	return r.agentLike.Resolve(a)
}

// TestAddAllWakesOnceWhole: a follower is woken once a batch is recorded
// whole, never in its middle, and then reads every flow of it in order.
func TestAddAllWakesOnceWhole(t *testing.T) {
	r := &blockingResolver{block: netip.MustParseAddr("10.244.9.9"), entered: make(chan struct{}), release: make(chan struct{})}
	s := NewStore()
	s.SetResolver(r)
	batch := hopBatch(0, 64)
	batch[10].Destination.Address = netip.AddrPortFrom(r.block, 80)
	changed := s.Changed()
	done := make(chan struct{})
	go func() { s.AddAll(batch); close(done) }()
	<-r.entered // the batch is half recorded
	select {
	case <-changed:
		t.Fatal("the follower was woken in the middle of a batch")
	default:
	}
	close(r.release)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch did not wake the follower")
	}
	<-done
	flows, next, lost := s.Read(0, 0)
	if len(flows) != 64 || next != 64 || lost != 0 {
		t.Fatalf("read %d flows, next %d, lost %d", len(flows), next, lost)
	}
	for i, f := range flows {
		if int(f.Source.Address.Port()) != i {
			t.Fatalf("flow %d is the batch's %d", i, f.Source.Address.Port())
		}
	}
}

// follow reads s from seq as a follower does (Changed, then Read of at
// most max flows, then wait) until it has read through want or stop is
// closed, calling pause after each read. It checks that every flow comes
// in order (a flow's source port is its sequence number - 1) and that
// every gap is counted as lost, and returns how many flows it read and
// lost.
func follow(s *Store, seq uint64, max int, want uint64, stop <-chan struct{}, pause func()) (read, lost uint64, err error) {
	for seq < want {
		changed := s.Changed()
		flows, next, l := s.Read(seq, max)
		lost += l
		pos := seq + l // the sequence number before the first flow read
		for _, f := range flows {
			if int(f.Source.Address.Port()) != int(pos) {
				return read, lost, fmt.Errorf("flow %d after %d read and %d lost is %d", pos+1, read, lost, f.Source.Address.Port()+1)
			}
			pos++
			read++
		}
		if len(flows) > 0 && pos != next {
			return read, lost, fmt.Errorf("read through %d, told %d", pos, next)
		}
		seq = next
		if pause != nil {
			pause()
		}
		if len(flows) > 0 || l > 0 {
			continue
		}
		select {
		case <-changed:
		case <-stop:
			return read, lost, fmt.Errorf("stopped at %d of %d", seq, want)
		}
	}
	return read, lost, nil
}

// TestFollowersSeeEveryBatch: followers see every flow of a stream of
// batches in order, with nothing lost while the ring holds it: one that
// reads in steps smaller than a batch (so it stands in the middle of
// batches), one that starts while batches are being added, and a slow
// one the adder runs ahead of. A follower that falls more than the ring
// behind is told exactly how many flows it lost and reads on in order.
func TestFollowersSeeEveryBatch(t *testing.T) {
	const batches, size = 50, 64
	const total = batches * size
	type result struct {
		from, read, lost uint64
		err              error
	}
	stop := make(chan struct{})
	defer close(stop)
	run := func(s *Store, from uint64, max int, pause func()) <-chan result {
		ch := make(chan result, 1)
		go func() {
			read, lost, err := follow(s, from, max, total, stop, pause)
			ch <- result{from, read, lost, err}
		}()
		return ch
	}
	wait := func(name string, ch <-chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s follower: %v", name, r.err)
			}
			return r
		case <-time.After(30 * time.Second):
			t.Fatalf("%s follower did not finish", name)
		}
		return result{}
	}

	s := NewStore(WithCapacity(total))
	s.SetResolver(&agentLike{})
	small := run(s, 0, 10, nil)
	// The slow follower takes a step of half a batch only when the adder
	// has added a batch since its last one.
	step := make(chan struct{}, batches)
	slow := run(s, 0, size/2, func() { <-step })
	var late <-chan result
	for b := range batches {
		if b == batches/2 {
			late = run(s, s.Last(), 0, nil)
		}
		s.AddAll(hopBatch(b*size, size))
		step <- struct{}{}
	}
	close(step) // from now on the slow follower goes at its own pace
	for _, f := range []struct {
		name string
		ch   <-chan result
	}{{"small-step", small}, {"late", late}, {"slow", slow}} {
		if r := wait(f.name, f.ch); r.lost != 0 || r.from+r.read != total {
			t.Errorf("%s follower: from %d, %d read, %d lost; want every flow after %d", f.name, r.from, r.read, r.lost, r.from)
		}
	}

	// A ring of four batches: a follower that reads half a batch and then
	// nothing until every batch is in loses what was overwritten.
	const capacity = 4 * size
	s = NewStore(WithCapacity(capacity))
	s.SetResolver(&agentLike{})
	s.AddAll(hopBatch(0, size))
	paused, held := make(chan struct{}), make(chan struct{})
	first := true
	behind := run(s, 0, size/2, func() {
		if first {
			first = false
			close(paused)
			<-held
		}
	})
	<-paused // it has read the first half batch
	for b := 1; b < batches; b++ {
		s.AddAll(hopBatch(b*size, size))
	}
	close(held)
	if r := wait("overrun", behind); r.read != size/2+capacity || r.lost != total-size/2-capacity {
		t.Errorf("overrun follower: %d read, %d lost; want %d read, %d lost", r.read, r.lost, size/2+capacity, total-size/2-capacity)
	}
}

// TestAddAndAddAllConcurrently: producers calling Add and AddAll at once
// (the access log's streams, the datapath's event reader), with readers
// and a follower: every flow is recorded once, each producer's in its
// order, each batch in one piece, and the follower sees them all. Run
// with -race.
func TestAddAndAddAllConcurrently(t *testing.T) {
	const producers, rounds, size = 4, 50, 16
	const total = producers * rounds * size
	s := NewStore(WithCapacity(total))
	s.SetResolver(&agentLike{})
	stop := make(chan struct{})
	followed := make(chan []Flow, 1)
	go func() {
		var got []Flow
		seq := uint64(0)
		for seq < total {
			changed := s.Changed()
			flows, next, _ := s.Read(seq, 0)
			got, seq = append(got, flows...), next
			if len(flows) > 0 {
				continue
			}
			select {
			case <-changed:
			case <-stop:
				followed <- got
				return
			}
		}
		followed <- got
	}()
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			node := fmt.Sprintf("p%d", p)
			for r := range rounds {
				batch := hopBatch(r*size, size)
				for i := range batch {
					batch[i].Node = node
				}
				if p%2 == 0 {
					s.AddAll(batch)
				} else {
					for _, f := range batch {
						s.Add(f)
					}
				}
				s.Query(Filter{Verdict: Forwarded}, 10)
				s.Counts()
			}
		})
	}
	wg.Wait()
	var got []Flow
	select {
	case got = <-followed:
	case <-time.After(30 * time.Second):
		close(stop)
		got = <-followed
	}
	all := s.Query(Filter{}, 0)
	if len(all) != total || len(got) != total {
		t.Fatalf("%d flows stored, %d followed, want %d", len(all), len(got), total)
	}
	if !reflect.DeepEqual(all, got) {
		t.Error("the follower saw another order than the store holds")
	}
	next := map[string]int{}
	for i, f := range all {
		port := int(f.Source.Address.Port())
		if port != next[f.Node] {
			t.Fatalf("flow %d: %s's %d, want its %d", i, f.Node, port, next[f.Node])
		}
		next[f.Node]++
		// A batch is in one piece: its flows follow each other.
		if (f.Node == "p0" || f.Node == "p2") && port%size != 0 && all[i-1].Node != f.Node {
			t.Fatalf("flow %d: %s's batch was split", i, f.Node)
		}
		if f.Source.Workload != "default/client" || f.Destination.Identity != 258 {
			t.Fatalf("flow %d not resolved: %+v", i, f)
		}
	}
	if c := s.Counts(); len(c) != 1 || c[0].N != total {
		t.Errorf("counts %+v", c)
	}
}
