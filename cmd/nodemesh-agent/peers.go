package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/auth/issuer"
	"github.com/nodemesh/nodemesh/mesh/dirwatch"
)

// Bounds and pacing of the authority exchange.
const (
	// A peer's file is a few certificates.
	maxPeerFile  = 64 << 10
	maxPeerFiles = 4096
	// peerRescan is how often the directory is read without an inotify
	// event: the fallback when the watch cannot be set up or ended, and
	// the catch-all for what inotify does not see (a network file
	// system written by another host). A new authority is prepared half
	// a CA lifetime before it signs, so half a minute costs nothing.
	peerRescan = 30 * time.Second
	// peerDebounce gathers a burst of events (a temporary file written,
	// then renamed into place) into one read.
	peerDebounce = 50 * time.Millisecond
)

// peerExchange publishes this node's issuer authorities in a directory
// shared by the nodes as <node>.pem and hands every other node's file to
// the issuer. Only certificates are written; keys never leave the node.
//
// Each file stands on its own: one that cannot be read, does not parse or
// holds a certificate the issuer would refuse is left out with its error
// (logged once per distinct error), and that file's last good
// certificates stay trusted until it is fixed or removed (a removed file
// withdraws its node's authorities); every other file keeps applying.
type peerExchange struct {
	iss      *issuer.Issuer
	dir      string
	own      string // this node's file name
	log      *slog.Logger
	rescan   time.Duration
	debounce time.Duration

	// reads counts directory reads (tests check an idle directory is
	// not polled).
	reads atomic.Uint64
	// good is each peer file's last good certificates; problems each
	// bad file's current error (to log a change once).
	good      map[string][]*x509.Certificate
	problems  map[string]string
	published []byte
}

func newPeerExchange(iss *issuer.Issuer, dir, node string, log *slog.Logger) *peerExchange {
	return &peerExchange{iss: iss, dir: dir, own: node + ".pem", log: log, rescan: peerRescan, debounce: peerDebounce,
		good: map[string][]*x509.Certificate{}, problems: map[string]string{}}
}

// run exchanges until ctx ends: on every inotify event of the directory
// (debounced), on every change of the issuer's own authorities, and every
// rescan interval.
func (x *peerExchange) run(ctx context.Context) {
	if err := os.MkdirAll(x.dir, 0o755); err != nil {
		x.log.Error("creating the peer authorities directory", "error", err)
	}
	changed, cancel := x.iss.Subscribe()
	defer cancel()
	var (
		w      *dirwatch.Watch
		events <-chan struct{}
	)
	watch := func(first bool) {
		nw, err := dirwatch.Start(x.dir, wantedPeerFile)
		if err != nil {
			if first {
				x.log.Warn("watching the peer authorities directory; falling back to rescans", "dir", x.dir, "every", x.rescan, "error", err)
			}
			return
		}
		w, events = nw, nw.Wake
	}
	watch(true)
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	tick := time.NewTicker(x.rescan)
	defer tick.Stop()
	var settle <-chan time.Time
	x.publish()
	x.sync()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// The issuer rotated its own authorities (or took peers':
			// then nothing is published and the read below finds the
			// directory as it was).
			x.publish()
		case _, ok := <-events:
			if !ok {
				// The directory went or was replaced: watch again at
				// the next rescan, which reads whatever is there.
				w.Stop()
				w, events = nil, nil
				continue
			}
			// The peer directory holds a file per node: every read
			// covers all of them, so what the events named is not used.
			w.Take()
			if settle == nil {
				settle = time.After(x.debounce)
			}
		case <-settle:
			settle = nil
			x.sync()
		case <-tick.C:
			if events == nil {
				watch(false)
				x.publish() // the directory may have been recreated empty
			}
			x.sync()
		}
	}
}

// wantedPeerFile says which names are peer files: *.pem, not hidden (the
// temporary files of writeAtomic are).
func wantedPeerFile(name string) bool {
	return strings.HasSuffix(name, ".pem") && !strings.HasPrefix(name, ".")
}

// publish writes this node's authorities when they changed since the last
// write.
func (x *peerExchange) publish() {
	var own []byte
	for _, c := range x.iss.Authorities() {
		own = append(own, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if slices.Equal(own, x.published) {
		if _, err := os.Stat(filepath.Join(x.dir, x.own)); err == nil {
			return
		}
	}
	if err := writeAtomic(filepath.Join(x.dir, x.own), own); err != nil {
		x.log.Error("publishing this node's authorities", "error", err)
		return
	}
	x.published = own
}

// sync reads the directory and hands the issuer every peer file's last
// good certificates, in name order.
func (x *peerExchange) sync() {
	x.reads.Add(1)
	names, err := listPeerFiles(x.dir, x.own)
	if err != nil {
		// Nothing is known about any file: keep what is trusted.
		x.report("", err)
		return
	}
	x.report("", nil)
	present := map[string]bool{}
	for _, name := range names {
		present[name] = true
		certs, err := readCerts(filepath.Join(x.dir, name))
		if err == nil {
			if err = x.iss.CheckPeerAuthorities(certs); err != nil {
				err = fmt.Errorf("%s: %w", name, err)
			}
		}
		x.report(name, err)
		if err == nil {
			x.good[name] = certs
		}
	}
	for name := range x.good {
		if !present[name] {
			delete(x.good, name)
		}
	}
	for name := range x.problems {
		if name != "" && !present[name] {
			delete(x.problems, name)
		}
	}
	var all []*x509.Certificate
	for _, name := range slices.Sorted(maps.Keys(x.good)) {
		all = append(all, x.good[name]...)
	}
	if err := x.iss.SetPeerAuthorities(all); err != nil {
		// Every file was checked alone; only a bug gets here.
		x.log.Error("refusing peer authorities", "error", err)
	}
}

// report logs a file's (or, for "", the directory's) error when it
// differs from the last one, and its recovery.
func (x *peerExchange) report(name string, err error) {
	prev, had := x.problems[name]
	switch {
	case err == nil && had:
		delete(x.problems, name)
		x.log.Info("peer authorities readable again", "file", name)
	case err != nil && (!had || prev != err.Error()):
		x.problems[name] = err.Error()
		if name == "" {
			x.log.Warn("reading the peer authorities directory; keeping what is trusted", "dir", x.dir, "error", err)
		} else {
			x.log.Warn("skipping a peer authorities file; its last good certificates stay trusted", "file", name, "error", err)
		}
	}
}

// listPeerFiles names every peer file of dir but own, at most
// maxPeerFiles.
func listPeerFiles(dir, own string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	for {
		batch, err := f.Readdirnames(256)
		for _, n := range batch {
			if n == own || !wantedPeerFile(n) {
				continue
			}
			if len(names) == maxPeerFiles {
				return nil, fmt.Errorf("%s: more than %d peer files", dir, maxPeerFiles)
			}
			names = append(names, n)
		}
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
	}
}

// readCerts reads one peer file: PEM CERTIFICATE blocks only, at most
// maxPeerFile bytes, nothing else but white space.
func readCerts(name string) ([]*x509.Certificate, error) {
	// O_NONBLOCK: a FIFO planted under a peer name must not block the
	// open; only a regular file is read.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("inspecting %s: %w", name, err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	buf := make([]byte, maxPeerFile+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if n > maxPeerFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxPeerFile)
	}
	rest := buf[:n]
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %s block, want only CERTIFICATE", name, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, c)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%s: trailing data that is not PEM", name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", name)
	}
	return out, nil
}

// writeAtomic replaces name with data, never leaving a partial file.
func writeAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
