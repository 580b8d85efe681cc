package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// TCP bounds (see doc.go).
const (
	maxTCPConns   = 64
	maxTCPQueries = 100
	tcpIdle       = 10 * time.Second
)

// Server answers the cluster domain from the API server. Create it with
// New, call Run once, and serve sockets with ServeUDP and ServeTCP.
type Server struct {
	client kubernetes.Interface
	domain string
	log    *slog.Logger

	ready chan struct{}
	// build rebuilds the table from the informers' caches; dirty says an
	// object changed since the last build, so queries rebuild it first.
	build func() *table
	dirty atomic.Bool
	mu    sync.Mutex
	cur   *table
}

// New returns a server for domain (e.g. "cluster.local").
func New(client kubernetes.Interface, domain string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{client: client, domain: domain, log: log, ready: make(chan struct{})}
}

// Run watches Services and EndpointSlices until ctx ends. Queries wait
// until the first full view is loaded.
func (s *Server) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(s.client, 0)
	svcs, slices := f.Core().V1().Services(), f.Discovery().V1().EndpointSlices()
	changed := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.dirty.Store(true) },
		UpdateFunc: func(any, any) { s.dirty.Store(true) },
		DeleteFunc: func(any) { s.dirty.Store(true) },
	}
	_, _ = svcs.Informer().AddEventHandler(changed)
	_, _ = slices.Informer().AddEventHandler(changed)
	s.build = func() *table {
		a, _ := svcs.Lister().List(labels.Everything())
		b, _ := slices.Lister().List(labels.Everything())
		return newTable(s.domain, a, b)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcs.Informer().HasSynced, slices.Informer().HasSynced) {
		return ctx.Err()
	}
	s.dirty.Store(true)
	close(s.ready)
	<-ctx.Done()
	return nil
}

// Ready is closed once the server answers from a full view.
func (s *Server) Ready() <-chan struct{} { return s.ready }

func (s *Server) table(ctx context.Context) (*table, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty.Swap(false) || s.cur == nil {
		s.cur = s.build()
	}
	return s.cur, nil
}

// ServeUDP answers queries on pc until ctx ends or pc fails.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	go func() {
		<-ctx.Done()
		pc.Close()
	}()
	buf := make([]byte, 1500)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		t, err := s.table(ctx)
		if err != nil {
			return nil
		}
		if resp, err := answer(t, buf[:n], maxUDP); err == nil {
			_, _ = pc.WriteTo(resp, addr)
		}
	}
}

// ServeTCP answers queries on connections accepted from l until ctx
// ends or l fails.
func (s *Server) ServeTCP(ctx context.Context, l net.Listener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	slots := make(chan struct{}, maxTCPConns)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // over the limit: the client retries
			continue
		}
		go func() {
			defer func() { <-slots }()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	var lenBuf [2]byte
	msg := make([]byte, 0, 512)
	for i := 0; i < maxTCPQueries; i++ {
		_ = c.SetDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		msg = msg[:0]
		if cap(msg) < n {
			msg = make([]byte, 0, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		t, err := s.table(ctx)
		if err != nil {
			return
		}
		resp, err := answer(t, msg, 0xffff)
		if err != nil {
			return
		}
		out := make([]byte, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		copy(out[2:], resp)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}
