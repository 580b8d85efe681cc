package hcm

import (
	"errors"
	"io"
	"sync"
)

// A request whose route retries or mirrors keeps a copy of its body as the
// first attempt reads it, as Envoy's router buffers it: the body streams to
// the upstream unchanged, and the copy lets a retry send it again and a
// mirror send it elsewhere. The copy is bounded by the connection's buffer
// limit; a body that outgrows it is not copied any further, and the
// request can then be neither retried (after its body began to be read)
// nor mirrored — Envoy's retry_or_shadow_abandoned.
//
// Attempts read the body through views. Only the newest view may read:
// a view of an earlier attempt (an HTTP/2 transport may still be sending
// its body after the attempt ended) gets errAttemptOver, so two attempts
// never consume the source at once. The source is read under the lock,
// so a later view waits for a read in progress and then replays its bytes.

// replay is the recorded body of one request, owned by its stream and
// reused across requests.
type replay struct {
	mu    sync.Mutex
	src   io.Reader
	rec   []byte // everything read from src, unless over
	n     int64  // bytes read from src
	limit int
	over  bool // rec stopped: the body outgrew limit
	eof   bool
	err   error // the source's error other than end of body
	gen   uint32
	// onDone, when set, is called (under the lock, once) when the whole
	// body was read within the limit; onOver when it outgrew the limit.
	onDone func(body []byte)
	onOver func()
}

var (
	errAttemptOver    = errors.New("upstream attempt ended")
	errNotReplayable  = errors.New("request body outgrew the buffer limit")
	errReplayConsumed = errors.New("request body already read")
)

// maxKeptReplay bounds the capacity a stream keeps between requests.
const maxKeptReplay = 64 << 10

// reset starts recording the body read from src, keeping at most limit
// bytes.
func (r *replay) reset(src io.Reader, limit int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cap(r.rec) > maxKeptReplay {
		r.rec = nil
	}
	r.src, r.rec, r.n, r.limit = src, r.rec[:0], 0, limit
	r.over, r.eof, r.err = false, false, nil
	r.onDone, r.onOver = nil, nil
	r.gen++
}

// release forgets the source and the hooks once the request ended; views
// still held by a transport then fail.
func (r *replay) release() {
	r.mu.Lock()
	r.src, r.onDone, r.onOver = nil, nil, nil
	r.gen++
	r.mu.Unlock()
}

// view returns a reader of the whole body for a new attempt, ending every
// earlier view; nil when the body cannot be replayed (it outgrew the
// limit after some of it was read).
func (r *replay) view() *replayView {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over && r.n > 0 {
		return nil
	}
	r.gen++
	return &replayView{r: r, gen: r.gen}
}

// replayable reports whether another attempt could send the whole body.
func (r *replay) replayable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.over || r.n == 0
}

// complete reports whether the whole body was read from the source.
func (r *replay) complete() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eof
}

// untouched reports that no attempt read any of the body yet.
func (r *replay) untouched() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n == 0 && !r.eof && r.err == nil
}

// failed returns the source's error, if reading it failed.
func (r *replay) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// replayView reads the body for one attempt.
type replayView struct {
	r   *replay
	gen uint32
	pos int64
}

func (v *replayView) Read(p []byte) (int, error) {
	r := v.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.gen != r.gen {
		return 0, errAttemptOver
	}
	if v.pos < r.n {
		if r.over {
			return 0, errNotReplayable
		}
		n := copy(p, r.rec[v.pos:])
		v.pos += int64(n)
		return n, nil
	}
	switch {
	case r.eof:
		return 0, io.EOF
	case r.err != nil:
		return 0, r.err
	case r.src == nil:
		return 0, errReplayConsumed
	}
	n, err := r.src.Read(p)
	if n > 0 {
		if !r.over {
			if len(r.rec)+n <= r.limit {
				r.rec = append(r.rec, p[:n]...)
			} else {
				r.over, r.rec = true, r.rec[:0]
				if r.onOver != nil {
					r.onOver()
				}
			}
		}
		r.n += int64(n)
		v.pos += int64(n)
	}
	switch {
	case err == io.EOF:
		r.eof = true
		if !r.over && r.onDone != nil {
			r.onDone(r.rec)
		}
	case err != nil:
		r.err = err
	}
	return n, err
}
