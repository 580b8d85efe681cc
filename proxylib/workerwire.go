package proxylib

import (
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/config"
)

// The parent and its workers talk over a Unix socket pair (the worker's
// file descriptor 3), in gob-encoded messages: requests from the parent,
// each answered by one reply with the same ID. Both ends are the same
// binary, so the encoding needs no versioning.

type workerOp int

const (
	// opInit carries what a worker needs before its first configuration
	// (the admin endpoint's address, for the static admin cluster).
	opInit workerOp = iota + 1
	// opUpdate applies one xDS update, as Store.Update.
	opUpdate
	// opRestore puts an accepted state back (Store.Restore).
	opRestore
	// opState asks whether the worker is ready, and for its listeners.
	opState
	// opMetrics asks for the worker's metrics in Prometheus' text format.
	opMetrics
)

type workerRequest struct {
	ID        uint64
	Op        workerOp
	TypeURL   string
	Version   string
	Resources []wireAny
	Removed   []string
	Full      bool
	Received  bool   // opRestore
	Admin     string // opInit: the admin endpoint's address, "" if none
}

type wireAny struct {
	TypeURL string
	Value   []byte
}

type workerReply struct {
	ID        uint64
	Err       string
	Ready     bool
	Listeners map[string]string
	Metrics   []byte
}

func toWire(as []*anypb.Any) []wireAny {
	out := make([]wireAny, len(as))
	for i, a := range as {
		out[i] = wireAny{TypeURL: a.GetTypeUrl(), Value: a.GetValue()}
	}
	return out
}

func fromWire(ws []wireAny) []*anypb.Any {
	out := make([]*anypb.Any, len(ws))
	for i, w := range ws {
		out[i] = &anypb.Any{TypeUrl: w.TypeURL, Value: w.Value}
	}
	return out
}

func restoreRequest(a config.Accepted) workerRequest {
	return workerRequest{Op: opRestore, TypeURL: a.TypeURL, Version: a.Version, Resources: toWire(a.Resources), Received: a.Received}
}

// errWorkerGone is returned for requests to a worker that exited (or whose
// connection broke) before it answered.
var errWorkerGone = errors.New("worker exited")

// workerConn is the parent's end of one worker's connection: requests may
// be sent from any goroutine; one reader goroutine hands each reply to its
// caller.
type workerConn struct {
	conn net.Conn
	wmu  sync.Mutex
	enc  *gob.Encoder

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan workerReply
	gone    bool
	done    chan struct{} // closed when the connection broke
}

func newWorkerConn(c net.Conn) *workerConn {
	w := &workerConn{conn: c, enc: gob.NewEncoder(c), pending: map[uint64]chan workerReply{}, done: make(chan struct{})}
	go w.read()
	return w
}

func (w *workerConn) read() {
	// The peer is this binary, started by this process; gob itself
	// refuses a message over 1 GiB.
	dec := gob.NewDecoder(w.conn)
	for {
		var r workerReply
		if err := dec.Decode(&r); err != nil {
			break
		}
		w.mu.Lock()
		ch := w.pending[r.ID]
		delete(w.pending, r.ID)
		w.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	w.mu.Lock()
	w.gone = true
	for id, ch := range w.pending {
		close(ch)
		delete(w.pending, id)
	}
	w.mu.Unlock()
	close(w.done)
	_ = w.conn.Close()
}

// call sends req and waits for its reply, the worker's exit, or stop.
func (w *workerConn) call(req workerRequest, stop <-chan struct{}) (workerReply, error) {
	ch := make(chan workerReply, 1)
	w.mu.Lock()
	if w.gone {
		w.mu.Unlock()
		return workerReply{}, errWorkerGone
	}
	w.next++
	req.ID = w.next
	w.pending[req.ID] = ch
	w.mu.Unlock()
	w.wmu.Lock()
	err := w.enc.Encode(&req)
	w.wmu.Unlock()
	if err != nil {
		w.mu.Lock()
		delete(w.pending, req.ID)
		w.mu.Unlock()
		return workerReply{}, fmt.Errorf("sending to worker: %w (%w)", err, errWorkerGone)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return workerReply{}, errWorkerGone
		}
		return r, nil
	case <-stop:
		w.mu.Lock()
		delete(w.pending, req.ID)
		w.mu.Unlock()
		return workerReply{}, errors.New("no reply from worker in time")
	}
}

func configAccepted(req workerRequest) config.Accepted {
	return config.Accepted{TypeURL: req.TypeURL, Version: req.Version, Received: req.Received, Resources: fromWire(req.Resources)}
}
