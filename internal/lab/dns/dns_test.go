package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

func fixture() *table {
	svcs := []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "deathstar", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.12.34", ClusterIPs: []string{"10.96.12.34"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kafka", Namespace: "kafka"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
	}
	slices := []*discoveryv1.EndpointSlice{{
		ObjectMeta:  metav1.ObjectMeta{Name: "kafka-x", Namespace: "kafka", Labels: map[string]string{discoveryv1.LabelServiceName: "kafka"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.5"}, Hostname: ptr("kafka-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			{Addresses: []string{"10.244.2.7"}, Hostname: ptr("kafka-1")},
			{Addresses: []string{"10.244.2.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
		},
	}}
	return newTable("cluster.local", svcs, slices)
}

func query(t testing.TB, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAnswer(t *testing.T) {
	tab := fixture()
	for _, tc := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		want  []string
	}{
		{"deathstar.default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.96.12.34"}},
		{"DeathStar.Default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.96.12.34"}},
		{"deathstar.default.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil},
		{"kafka.kafka.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.1.5", "10.244.2.7"}},
		{"kafka-1.kafka.kafka.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.2.7"}},
		{"ext.default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"CNAME db.example.com."}},
		{"10-244-1-5.default.pod.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.1.5"}},
		{"default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"nothing.default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"deathstar.default.svc.cluster.local.default.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"999-1-1-1.default.pod.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"example.com.", dnsmessage.TypeA, dnsmessage.RCodeRefused, nil},
		{"evilcluster.local.", dnsmessage.TypeA, dnsmessage.RCodeRefused, nil},
	} {
		t.Run(tc.name+"/"+tc.typ.String(), func(t *testing.T) {
			resp, err := answer(tab, query(t, tc.name, tc.typ), maxUDP)
			if err != nil {
				t.Fatal(err)
			}
			var m dnsmessage.Message
			if err := m.Unpack(resp); err != nil {
				t.Fatal(err)
			}
			if m.Header.ID != 42 || !m.Header.Response || !m.Header.RecursionDesired || m.Header.RecursionAvailable || m.Header.RCode != tc.rcode {
				t.Fatalf("header %+v, want rcode %v", m.Header, tc.rcode)
			}
			if len(m.Questions) != 1 || m.Questions[0].Name.String() != tc.name {
				t.Fatalf("questions %+v", m.Questions)
			}
			var got []string
			for _, a := range m.Answers {
				switch b := a.Body.(type) {
				case *dnsmessage.AResource:
					got = append(got, netip.AddrFrom4(b.A).String())
				case *dnsmessage.CNAMEResource:
					got = append(got, "CNAME "+b.CNAME.String())
				}
				if a.Header.TTL != ttl {
					t.Fatalf("ttl %d", a.Header.TTL)
				}
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("answers %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAnswerRejectsMalformed(t *testing.T) {
	tab := fixture()
	if _, err := answer(tab, []byte{1, 2, 3}, maxUDP); err == nil {
		t.Fatal("a 3-byte message was answered")
	}
	// Two questions: FORMERR.
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
	_ = b.StartQuestions()
	for _, n := range []string{"a.cluster.local.", "b.cluster.local."} {
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	}
	q, _ := b.Finish()
	resp, err := answer(tab, q, maxUDP)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil || m.Header.RCode != dnsmessage.RCodeFormatError {
		t.Fatalf("two questions: %+v, %v", m.Header, err)
	}
}

// TestAnswerTruncatesOverUDP: a headless Service with many endpoints does
// not fit 512 bytes; the UDP answer is cut with TC set, the TCP one is
// whole.
func TestAnswerTruncatesOverUDP(t *testing.T) {
	var eps []discoveryv1.Endpoint
	for i := 0; i < 60; i++ {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{netip.AddrFrom4([4]byte{10, 244, 1, byte(i + 2)}).String()}})
	}
	tab := newTable("cluster.local", []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "ns"}, Spec: corev1.ServiceSpec{ClusterIP: "None"}}},
		[]*discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Name: "big-1", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "big"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}})
	q := query(t, "big.ns.svc.cluster.local.", dnsmessage.TypeA)
	udp, err := answer(tab, q, maxUDP)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(udp); err != nil || len(udp) > maxUDP || !m.Header.Truncated {
		t.Fatalf("udp: %d bytes, truncated %v, %v", len(udp), m.Header.Truncated, err)
	}
	tcp, err := answer(tab, q, 0xffff)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(tcp); err != nil || m.Header.Truncated || len(m.Answers) != 60 {
		t.Fatalf("tcp: %d answers, truncated %v, %v", len(m.Answers), m.Header.Truncated, err)
	}
}

// TestServerAnswersGoResolver serves a table on loopback UDP and TCP and
// resolves through Go's own resolver over each: names and NXDOMAIN.
func TestServerAnswersGoResolver(t *testing.T) {
	s := New(nil, "cluster.local", nil)
	tab := fixture()
	s.build = func() *table { return tab }
	close(s.ready)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Skipf("the UDP port is taken for TCP: %v", err)
	}
	go s.ServeUDP(ctx, pc)
	go s.ServeTCP(ctx, l)
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, pc.LocalAddr().String())
		}}
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		ips, err := r.LookupHost(lctx, "kafka.kafka.svc.cluster.local.")
		sort.Strings(ips)
		if err != nil || !reflect.DeepEqual(ips, []string{"10.244.1.5", "10.244.2.7"}) {
			t.Fatalf("%s: %v, %v", network, ips, err)
		}
		_, err = r.LookupHost(lctx, "nothing.default.svc.cluster.local.")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Fatalf("%s: NXDOMAIN lookup: %v", network, err)
		}
		lcancel()
	}
}

// FuzzAnswer: arbitrary bytes never panic the server, and whatever it
// sends back is a well-formed DNS message within the size limit.
func FuzzAnswer(f *testing.F) {
	f.Add(query(f, "deathstar.default.svc.cluster.local.", dnsmessage.TypeA))
	f.Add(query(f, "example.com.", dnsmessage.TypeAAAA))
	f.Add(query(f, "1-2-3-4.x.pod.cluster.local.", dnsmessage.TypeA))
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	tab := fixture()
	f.Fuzz(func(t *testing.T, q []byte) {
		resp, err := answer(tab, q, maxUDP)
		if err != nil {
			return
		}
		if len(resp) > maxUDP {
			t.Fatalf("answer of %d bytes over UDP", len(resp))
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("answer is not a DNS message: %v", err)
		}
	})
}
