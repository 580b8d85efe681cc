package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Container logs, as a kubelet keeps and serves them.
//
// A container's stdout and stderr reach its log file through pipes, one
// line per record in the CRI log format the kubelet reads
// ("<RFC 3339 nano time> <stream> <F|P> <text>"): a line longer than
// maxLogLine is split into partial (P) records, so a process printing
// without newlines costs bounded memory. The runner serves
// GET /containerLogs/<namespace>/<pod>/<container> on the node's address,
// port KubeletPort, over TLS (a self-signed certificate, which
// kube-apiserver does not verify without --kubelet-certificate-authority,
// as with a kubelet's default one) to clients presenting a certificate of
// Config.KubeletClientCA only — the API server proxies `kubectl logs` and
// the pods/log subresource there. Query parameters honoured: sinceTime
// (RFC 3339), sinceSeconds, timestamps, tailLines and limitBytes; follow
// and previous are refused (400) rather than answered as if honoured.

// KubeletPort is the port a lab node serves Pod logs on (the kubelet's).
const KubeletPort = 10250

// maxLogLine is the longest record written: longer lines are split.
const maxLogLine = 16 << 10

// logFile is a container's log file, written by its two streams.
type logFile struct {
	mu sync.Mutex
	f  *os.File
}

// record writes one CRI log record.
func (l *logFile) record(stream string, partial bool, text []byte) {
	tag := "F"
	if partial {
		tag = "P"
	}
	var b bytes.Buffer
	b.Grow(len(text) + 48)
	b.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteString(tag)
	b.WriteByte(' ')
	b.Write(text)
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.f.Write(b.Bytes())
}

// copyStream turns what a process writes to one stream into records
// until the stream's pipe closes.
func (l *logFile) copyStream(r io.Reader, stream string) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			l.record(stream, true, line)
			continue
		case len(line) > 0 && line[len(line)-1] == '\n':
			l.record(stream, false, line[:len(line)-1])
		case len(line) > 0:
			l.record(stream, false, line) // the last line, unterminated
		}
		if err != nil {
			return
		}
	}
}

// serveLogs serves Pod logs and exec (exec.go) until ctx ends.
func (r *Runner) serveLogs(ctx context.Context) error {
	if r.cfg.KubeletClientCA == "" {
		return nil
	}
	caPEM, err := os.ReadFile(r.cfg.KubeletClientCA)
	if err != nil {
		return fmt.Errorf("reading the kubelet client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("reading the kubelet client CA %s: no certificate", r.cfg.KubeletClientCA)
	}
	cert, err := selfSigned(r.cfg.Node.Name, r.hostIP)
	if err != nil {
		return err
	}
	l, err := r.cfg.Node.Listen("tcp", net.JoinHostPort(r.hostIP, strconv.Itoa(KubeletPort)))
	if err != nil {
		return fmt.Errorf("listening for Pod log and exec requests: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", r.containerLogs)
	mux.HandleFunc("POST /exec/{namespace}/{pod}/{container}", r.podExec)
	mux.HandleFunc("GET /exec/{namespace}/{pod}/{container}", r.podExec)
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12,
			// HTTP/1.1 only: exec upgrades the connection, which HTTP/2
			// cannot.
			NextProtos: []string{"http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving Pod logs: %w", err)
	}
	return nil
}

// containerLogs answers one log request from the container's log file.
func (r *Runner) containerLogs(w http.ResponseWriter, req *http.Request) {
	ns, name, cname := req.PathValue("namespace"), req.PathValue("pod"), req.PathValue("container")
	obj, ok, err := r.pods.GetByKey(ns + "/" + name)
	if err != nil || !ok {
		http.Error(w, fmt.Sprintf("pod %s/%s not found on node %s", ns, name, r.cfg.Node.Name), http.StatusNotFound)
		return
	}
	p := obj.(*corev1.Pod)
	found := false
	for _, c := range p.Spec.Containers {
		found = found || c.Name == cname
	}
	if !found || p.Spec.NodeName != r.cfg.Node.Name || len(p.UID) < 8 {
		http.Error(w, fmt.Sprintf("container %s of pod %s/%s not found on node %s", cname, ns, name, r.cfg.Node.Name), http.StatusNotFound)
		return
	}
	opts, err := parseLogOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The path create gives the container's log.
	f, err := os.Open(filepath.Join(r.cfg.Dir, p.Namespace, p.Name+"-"+string(p.UID)[:8], cname+".log"))
	if errors.Is(err, os.ErrNotExist) {
		w.Header().Set("Content-Type", "text/plain")
		return // not started yet: no output
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	if err := writeLogs(w, f, opts); err != nil {
		r.log.Debug("serving container log", "pod", ns+"/"+name, "container", cname, "err", err)
	}
}

// logOptions are the query parameters of a log request.
type logOptions struct {
	since      time.Time // zero: from the start
	timestamps bool
	tail       int   // <0: every line
	limit      int64 // <=0: no limit
}

func parseLogOptions(req *http.Request) (logOptions, error) {
	q := req.URL.Query()
	o := logOptions{tail: -1}
	for _, k := range []string{"follow", "previous"} {
		if v := q.Get(k); v == "true" {
			return o, fmt.Errorf("%s is not supported by the lab's kubelet", k)
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("sinceTime: %w", err)
		}
		o.since = t
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds: %q is not a positive number", v)
		}
		if t := time.Now().Add(-time.Duration(n) * time.Second); t.After(o.since) {
			o.since = t
		}
	}
	o.timestamps = q.Get("timestamps") == "true"
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return o, fmt.Errorf("tailLines: %q is not a number", v)
		}
		o.tail = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("limitBytes: %q is not a positive number", v)
		}
		o.limit = n
	}
	return o, nil
}

// writeLogs copies the records of a log file that o selects to w, as the
// kubelet prints them: the text, a partial record joined with the next,
// each line prefixed with its time when asked. A malformed record (a
// process cannot write one: records are the runner's) is skipped.
func writeLogs(w io.Writer, f io.Reader, o logOptions) error {
	var lines [][]byte // kept only for tailLines
	var written int64
	out := func(b []byte) error {
		if o.limit > 0 && written+int64(len(b)) > o.limit {
			b = b[:o.limit-written]
		}
		n, err := w.Write(b)
		written += int64(n)
		if err == nil && o.limit > 0 && written >= o.limit {
			return io.EOF
		}
		return err
	}
	emit := func(b []byte) error {
		if o.tail < 0 {
			return out(b)
		}
		if o.tail > 0 {
			lines = append(lines, bytes.Clone(b))
			if len(lines) > o.tail {
				lines = lines[1:]
			}
		}
		return nil
	}
	br := bufio.NewReaderSize(f, maxLogLine+64)
	var pending []byte // a partial record's text so far
	var pendingTime string
	for {
		rec, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Longer than any record the runner writes.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(rec) > 0 && rec[len(rec)-1] == '\n' {
			ts, stream, tag, text, ok := parseRecord(rec[:len(rec)-1])
			t, terr := time.Parse(time.RFC3339Nano, ts)
			if ok && terr == nil && (stream == "stdout" || stream == "stderr") && !t.Before(o.since) {
				if pending == nil {
					pendingTime = ts
				}
				pending = append(pending, text...)
				if tag == "F" {
					line := pending
					if o.timestamps {
						line = append([]byte(pendingTime+" "), line...)
					}
					if werr := emit(append(line, '\n')); werr != nil {
						if errors.Is(werr, io.EOF) {
							return nil
						}
						return werr
					}
					pending = nil
				} else if len(pending) > 4*maxLogLine {
					pending = nil // a runaway line: the kubelet caps them too
				}
			}
		}
		if err != nil {
			break
		}
	}
	for _, l := range lines {
		if err := out(l); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	return nil
}

// parseRecord splits "<time> <stream> <tag> <text>".
func parseRecord(rec []byte) (ts, stream, tag string, text []byte, ok bool) {
	parts := bytes.SplitN(rec, []byte{' '}, 4)
	if len(parts) < 3 {
		return "", "", "", nil, false
	}
	ts, stream, tag = string(parts[0]), string(parts[1]), string(parts[2])
	if tag != "F" && tag != "P" {
		return "", "", "", nil, false
	}
	if len(parts) == 4 {
		text = parts[3]
	}
	return ts, stream, tag, text, true
}

// selfSigned makes the node's serving certificate, as a kubelet without a
// configured one does.
func selfSigned(name, ip string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating the node's serving key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: name + "@" + strconv.FormatInt(now.Unix(), 10)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name},
	}
	if a := net.ParseIP(ip); a != nil {
		tmpl.IPAddresses = []net.IP{a}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signing the node's serving certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
