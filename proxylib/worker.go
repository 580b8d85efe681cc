package proxylib

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// WithWorkerMetrics sets how a worker writes its metrics in Prometheus'
// text format when the parent gathers them for its /metrics.
func WithWorkerMetrics(f func(p *Proxy, w io.Writer) error) Option {
	return func(o *options) { o.workerMetrics = f }
}

// workerFD is the file descriptor of a worker's connection to its parent.
const workerFD = 3

// RunWorker serves as a worker process started by a parent proxy (see
// WithWorkers): its configuration comes from the parent over file
// descriptor 3, not from an xDS server; it has no admin endpoint. It
// serves until ctx ends or the parent goes away, then drains like Run.
// opts are the parent's (the xDS and admin settings are unused).
func RunWorker(ctx context.Context, opts ...Option) error {
	f := os.NewFile(workerFD, "parent")
	if f == nil {
		return errors.New("running as a worker: no connection to the parent on file descriptor 3")
	}
	conn, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("running as a worker: connecting to the parent: %w", err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.eventLoops > 0 {
		return errors.New("running as a worker: event loops and workers exclude each other")
	}
	p, err := build(o)
	if err != nil {
		_ = conn.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		_ = conn.Close()
	}()
	err = p.serveParent(conn)
	if ctx.Err() == nil {
		// The parent went away (or broke the protocol): stop as at
		// shutdown, draining what this worker serves.
		o.logger.Warn("connection to the parent lost; draining", "error", err)
	}
	p.shutdown()
	return nil
}

// serveParent answers the parent's requests until the connection ends.
// Configuration changes are applied in order by one goroutine; queries are
// answered beside them, so a long update does not stall a scrape.
func (p *Proxy) serveParent(conn net.Conn) error {
	var wmu sync.Mutex
	enc := gob.NewEncoder(conn)
	reply := func(r workerReply) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(&r)
	}
	changes := make(chan workerRequest, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for req := range changes {
			r := workerReply{ID: req.ID}
			if err := p.applyFromParent(req); err != nil {
				r.Err = err.Error()
			}
			reply(r)
		}
	}()
	defer wg.Wait()
	defer close(changes)
	dec := gob.NewDecoder(conn)
	for {
		var req workerRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading from the parent: %w", err)
		}
		switch req.Op {
		case opInit, opUpdate, opRestore:
			changes <- req
		case opState:
			go reply(workerReply{ID: req.ID, Ready: p.store.Ready(), Listeners: p.Listeners()})
		case opMetrics:
			go func() {
				r := workerReply{ID: req.ID}
				var b bytes.Buffer
				if p.o.workerMetrics == nil {
					r.Err = "worker has no metrics"
				} else if err := p.o.workerMetrics(p, &b); err != nil {
					r.Err = err.Error()
				}
				r.Metrics = b.Bytes()
				reply(r)
			}()
		default:
			go reply(workerReply{ID: req.ID, Err: fmt.Sprintf("unknown request %d", req.Op)})
		}
	}
}

func (p *Proxy) applyFromParent(req workerRequest) error {
	switch req.Op {
	case opInit:
		if req.Admin == "" {
			return nil
		}
		addr, err := net.ResolveTCPAddr("tcp", req.Admin)
		if err != nil {
			return fmt.Errorf("parsing the admin address: %w", err)
		}
		c, err := adminCluster(addr)
		if err != nil {
			return err
		}
		p.store.SetStatic(c)
		return nil
	case opRestore:
		return p.store.Restore(configAccepted(req), "", nil)
	}
	return p.store.Update(req.TypeURL, req.Version, fromWire(req.Resources), req.Removed, req.Full)
}

// shutdown stops accepting and drains, bounded by the drain timeout.
func (p *Proxy) shutdown() {
	p.store.Close()
	p.o.logger.Info("shutting down: draining listeners", "timeout", p.o.drainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), p.o.drainTimeout)
	defer cancel()
	p.lm.Close(dctx)
	p.udp.Close()
	p.um.Close()
	actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
	p.rt.ALS.Close(actx) // last access-log entries
	acancel()
}
