package workload

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/protowire"
)

// The mesh echo: what the Gateway API mesh conformance suite runs as
// registry.k8s.io/gateway-api/echo-advanced. The suite reads two things
// of it, and this is all the workload implements:
//
//   - the server answers every request with its own view of it, one
//     "Key=value" per line: ServicePort, Host, URL, Method, Proto, IP, one
//     RequestHeader=<Name>:<value> per header value, and Hostname (the
//     Pod's name, from HOSTNAME), which the suite compares against the
//     backend it expects. HTTP on every --port (TLS on those also given
//     as --tls, with --crt/--key when they can be read, otherwise a
//     self-signed certificate made at start: the lab cannot mount the
//     image's certificate files), gRPC on every --grpc (any method; the
//     answer is a message whose field 1 holds the same lines), and raw
//     TCP echo on every --tcp. Defaults without flags: HTTP 8080, gRPC
//     7070;
//   - the client ("client URL [--method=M] [-H Name:value]...
//     [--count=N]", run in the Pod through exec) sends the request(s)
//     without following redirects and prints, per request i, the lines
//     "[i] ReqID=i", "[i] Url=<the URL asked for>" (spelt so the suite's
//     "URL=" stays the path the server saw), "[i] StatusCode=<code>" (200
//     for a gRPC OK), one "[i] ResponseHeader=<Name>:<value>" per response
//     header value, and "[i body] <line>" per line of the body; requests
//     are separated by an empty line. A request that gets no response
//     (refused, timed out) fails the command with the error on stderr
//     and exit status 1; a -H Host:<name> sets the request's Host (or
//     gRPC authority). A grpc:// URL calls /proto.EchoTestService/Echo.

// meshEchoMethod is the gRPC method the client calls.
const meshEchoMethod = "/proto.EchoTestService/Echo"

// meshEchoBody bounds the response body the client prints.
const meshEchoBody = 1 << 20

func runMeshEcho(ctx context.Context, ports []int, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mesh-echo", flag.ContinueOnError)
	fs.SetOutput(out)
	var grpcPorts, tcpPorts, tlsPorts portList
	fs.Var(&grpcPorts, "grpc", "gRPC port (repeatable)")
	fs.Var(&tcpPorts, "tcp", "raw TCP echo port (repeatable)")
	fs.Var(&tlsPorts, "tls", "a --port that serves HTTPS (repeatable)")
	crt := fs.String("crt", "", "TLS certificate (PEM) for --tls ports")
	key := fs.String("key", "", "TLS key (PEM) for --tls ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(ports) == 0 && len(grpcPorts) == 0 && len(tcpPorts) == 0 {
		ports, grpcPorts = []int{8080}, []int{7070}
	}
	name, _ := os.Hostname()
	if h := os.Getenv("HOSTNAME"); h != "" {
		name = h
	}
	isTLS := map[int]bool{}
	for _, p := range tlsPorts {
		isTLS[p] = true
	}
	var plain, secure []int
	for _, p := range ports {
		if isTLS[p] {
			secure = append(secure, p)
		} else {
			plain = append(plain, p)
		}
	}
	// Every listener first, from this goroutine: the caller may have
	// locked it into the Pod's network namespace.
	var all []net.Listener
	open := func(ports []int) ([]net.Listener, error) {
		if len(ports) == 0 {
			return nil, nil
		}
		ls, err := listen(ports)
		all = append(all, ls...)
		return ls, err
	}
	closeAll := func() {
		for _, l := range all {
			l.Close()
		}
	}
	var lsPlain, lsSecure, lsGRPC, lsTCP []net.Listener
	var err error
	for _, o := range []struct {
		ports []int
		ls    *[]net.Listener
	}{{plain, &lsPlain}, {secure, &lsSecure}, {grpcPorts, &lsGRPC}, {tcpPorts, &lsTCP}} {
		if *o.ls, err = open(o.ports); err != nil {
			closeAll()
			return err
		}
	}
	var tc *tls.Config
	if len(secure) > 0 {
		cert, err := meshEchoCert(*crt, *key, name)
		if err != nil {
			closeAll()
			return err
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	servers := 0
	start := func(f func() error) {
		servers++
		go func() { errc <- f() }()
	}
	h := meshEchoHandler(name)
	if len(lsPlain) > 0 {
		start(func() error { return serveHTTPOn(ctx, "mesh-echo", lsPlain, nil, h, out) })
	}
	if len(lsSecure) > 0 {
		start(func() error { return serveHTTPOn(ctx, "mesh-echo", lsSecure, tc, h, out) })
	}
	if len(lsGRPC) > 0 {
		start(func() error { return serveMeshGRPC(ctx, lsGRPC, name, out) })
	}
	if len(lsTCP) > 0 {
		start(func() error { return serveTCPEcho(ctx, lsTCP, out) })
	}
	var first error
	for range servers {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel() // one failed: stop the others
		}
	}
	return first
}

// meshEchoLines is the server's view of a request, as the suite parses it.
func meshEchoLines(name, port, host, url, method, proto, remote string, hdr map[string][]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ServicePort=%s\nHost=%s\nURL=%s\nMethod=%s\nProto=%s\n", port, host, url, method, proto)
	if ip, _, err := net.SplitHostPort(remote); err == nil {
		fmt.Fprintf(&b, "IP=%s\n", ip)
	}
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			fmt.Fprintf(&b, "RequestHeader=%s:%s\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Hostname=%s\n", name)
	return b.String()
}

func meshEchoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(r.Context().Value(http.LocalAddrContextKey).(net.Addr).String())
		hdr := map[string][]string{}
		for k, v := range r.Header {
			hdr[k] = v
		}
		// Go keeps Host out of the header map; the suite reads it as a
		// request header like any other.
		hdr["Host"] = []string{r.Host}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, meshEchoLines(name, port, r.Host, r.URL.RequestURI(), r.Method, r.Proto, r.RemoteAddr, hdr))
	})
}

// meshEchoCert loads crt and key, or makes a self-signed certificate when
// they cannot be read (the lab has no image files to mount).
func meshEchoCert(crt, key, name string) (tls.Certificate, error) {
	if crt != "" && key != "" {
		if c, err := tls.LoadX509KeyPair(crt, key); err == nil {
			return c, nil
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signing TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
}

// serveMeshGRPC answers every method with the echo lines in field 1.
func serveMeshGRPC(ctx context.Context, ls []net.Listener, name string, out io.Writer) error {
	//nolint:staticcheck // the v1 codec interface is what a byte pass-through needs.
	gs := grpc.NewServer(grpc.ForceServerCodec(echoCodec{}), grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		var req rawMessage
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		md, _ := metadata.FromIncomingContext(stream.Context())
		method, _ := grpc.MethodFromServerStream(stream)
		var remote, port string
		if p, ok := peer.FromContext(stream.Context()); ok {
			remote = p.Addr.String()
			if p.LocalAddr != nil {
				_, port, _ = net.SplitHostPort(p.LocalAddr.String())
			}
		}
		hdr := map[string][]string{}
		authority := ""
		for k, v := range md {
			if k == ":authority" && len(v) > 0 {
				authority = v[0]
			}
			if !strings.HasPrefix(k, ":") {
				hdr[k] = v
			}
		}
		lines := meshEchoLines(name, port, authority, method, "POST", "GRPC", remote, hdr)
		return stream.SendMsg(&rawMessage{b: protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), lines)})
	}))
	errc := make(chan error, len(ls))
	for _, l := range ls {
		fmt.Fprintf(out, "mesh-echo: serving gRPC on %s\n", l.Addr())
		go func(l net.Listener) { errc <- gs.Serve(l) }(l)
	}
	select {
	case err := <-errc:
		gs.Stop()
		return err
	case <-ctx.Done():
	}
	gs.GracefulStop()
	return nil
}

// tcpEchoIdle closes a raw TCP echo connection idle that long.
const tcpEchoIdle = 2 * time.Minute

func serveTCPEcho(ctx context.Context, ls []net.Listener, out io.Writer) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		fmt.Fprintf(out, "mesh-echo: echoing TCP on %s\n", l.Addr())
		go func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					errc <- err
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 32<<10)
					for {
						_ = c.SetDeadline(time.Now().Add(tcpEchoIdle))
						n, err := c.Read(buf)
						if n > 0 {
							if _, werr := c.Write(buf[:n]); werr != nil {
								return
							}
						}
						if err != nil {
							return
						}
					}
				}()
			}
		}(l)
	}
	select {
	case err := <-errc:
		for _, l := range ls {
			l.Close()
		}
		return err
	case <-ctx.Done():
	}
	for _, l := range ls {
		l.Close()
	}
	return nil
}

// meshClientOptions are the client's arguments.
type meshClientOptions struct {
	url     string
	method  string
	headers [][2]string
	count   int
	timeout time.Duration
}

// maxMeshCount bounds --count.
const maxMeshCount = 10000

func parseMeshClient(args []string) (meshClientOptions, error) {
	o := meshClientOptions{count: 1, timeout: 5 * time.Second}
	value := func(i *int, a, name string) (string, error) {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", name)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		var err error
		switch {
		case a == "-H" || strings.HasPrefix(a, "-H=") || a == "--header" || strings.HasPrefix(a, "--header="):
			name := "-H"
			if strings.HasPrefix(a, "--header") {
				name = "--header"
			}
			if v, err = value(&i, a, name); err != nil {
				return o, err
			}
			k, val, ok := strings.Cut(v, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return o, fmt.Errorf("header %q is not Name:value", v)
			}
			o.headers = append(o.headers, [2]string{strings.TrimSpace(k), strings.TrimSpace(val)})
		case a == "--method" || strings.HasPrefix(a, "--method="):
			if o.method, err = value(&i, a, "--method"); err != nil {
				return o, err
			}
		case a == "--count" || strings.HasPrefix(a, "--count="):
			if v, err = value(&i, a, "--count"); err != nil {
				return o, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxMeshCount {
				return o, fmt.Errorf("--count %q is not 1-%d", v, maxMeshCount)
			}
			o.count = n
		case a == "--timeout" || strings.HasPrefix(a, "--timeout="):
			if v, err = value(&i, a, "--timeout"); err != nil {
				return o, err
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > time.Minute {
				return o, fmt.Errorf("--timeout %q is not a duration up to 1m", v)
			}
			o.timeout = d
		case strings.HasPrefix(a, "-"):
			return o, fmt.Errorf("unknown flag %q", a)
		case o.url != "":
			return o, fmt.Errorf("a second URL %q", a)
		default:
			o.url = a
		}
	}
	if o.url == "" {
		return o, errors.New("no URL given")
	}
	return o, nil
}

func runMeshClient(ctx context.Context, _ []int, args []string, out io.Writer) error {
	o, err := parseMeshClient(args)
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(o.url, "grpc://"):
		return meshClientGRPC(ctx, o, out)
	case strings.HasPrefix(o.url, "http://"), strings.HasPrefix(o.url, "https://"):
		return meshClientHTTP(ctx, o, out)
	}
	return fmt.Errorf("URL %q: only http, https and grpc", o.url)
}

// printResponse writes one response in the suite's format.
func printResponse(w io.Writer, i int, url string, code int, hdr map[string][]string, body string) {
	if i > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "[%d] ReqID=%d\n[%d] Url=%s\n[%d] StatusCode=%d\n", i, i, i, url, i, code)
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			fmt.Fprintf(w, "[%d] ResponseHeader=%s:%s\n", i, k, v)
		}
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(body, "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(w, "[%d body] %s\n", i, l)
		}
	}
}

func meshClientHTTP(ctx context.Context, o meshClientOptions, out io.Writer) error {
	c := &http.Client{
		Timeout: o.timeout,
		// The suite checks redirects themselves.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 4,
			// The suite's certificates are not the point of a mesh test.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
		},
	}
	defer c.CloseIdleConnections()
	method := o.method
	if method == "" {
		method = http.MethodGet
	}
	for i := range o.count {
		req, err := http.NewRequestWithContext(ctx, method, o.url, nil)
		if err != nil {
			return fmt.Errorf("building request: %w", err)
		}
		for _, h := range o.headers {
			if strings.EqualFold(h[0], "Host") {
				req.Host = h[1]
				continue
			}
			req.Header.Add(h[0], h[1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, meshEchoBody))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("request %d: reading the body: %w", i, err)
		}
		printResponse(out, i, o.url, resp.StatusCode, resp.Header, string(body))
	}
	return nil
}

func meshClientGRPC(ctx context.Context, o meshClientOptions, out io.Writer) error {
	target := strings.TrimSuffix(strings.TrimPrefix(o.url, "grpc://"), "/")
	if _, _, err := net.SplitHostPort(target); err != nil {
		target = net.JoinHostPort(target, "7070")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(echoCodec{}))}
	md := metadata.MD{}
	for _, h := range o.headers {
		if strings.EqualFold(h[0], "Host") {
			opts = append(opts, grpc.WithAuthority(h[1]))
			continue
		}
		md.Append(strings.ToLower(h[0]), h[1])
	}
	// passthrough: Go's resolver (the Pod's resolv.conf) on every dial.
	cc, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", target, err)
	}
	defer cc.Close()
	for i := range o.count {
		cctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), o.timeout)
		var hdr metadata.MD
		resp := &rawMessage{}
		err := cc.Invoke(cctx, meshEchoMethod, &rawMessage{}, resp, grpc.Header(&hdr))
		cancel()
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		body, err := meshEchoMessage(resp.b)
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		printResponse(out, i, o.url, http.StatusOK, hdr, body)
	}
	return nil
}

// meshEchoMessage reads field 1 (a string) of the server's answer.
func meshEchoMessage(b []byte) (string, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", fmt.Errorf("decoding the answer: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			s, n := protowire.ConsumeString(b)
			if n < 0 {
				return "", fmt.Errorf("decoding the answer: %w", protowire.ParseError(n))
			}
			return s, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return "", fmt.Errorf("decoding the answer: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return "", nil
}
