// Command h2spec runs the h2spec HTTP/2 conformance suite (version 2,
// summerwind/h2spec) against nodemesh-proxy's two kinds of HTTP/2 listener:
// plain HTTP with the prior-knowledge preface (h2c) and HTTPS with ALPN h2.
//
// The proxy is configured as a user would configure it: a directory of
// Gateway API YAML (one Gateway with an HTTP and an HTTPS listener, a
// self-signed certificate made for the run, one HTTPRoute to an echo
// backend) read by nodemesh-agent and delivered over xDS. Everything runs
// on loopback addresses of 127.0.102.0/24 and stops when the run ends.
//
// It prints each listener's summary and its failing test cases, and exits
// non-zero when a case fails that is not a known, explained failure
// (expected below).
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

const (
	gatewayAddr = "127.0.102.1"
	addressPool = "127.0.102.0/24"
	h2cPort     = 8080
	tlsPort     = 8443
	serverName  = "h2spec.example"
)

// expected lists, per listener, the cases that fail for a known reason.
var expected = map[string]map[string]string{
	"h2c": {
		"http2/3.5/2": "the h2c listener also serves HTTP/1.1 (codec AUTO), so \"INVALID CONNECTION PREFACE\\r\\n\\r\\n\" " +
			"is an HTTP/1.1 request line and gets an HTTP/1.1 400 response before the close; Envoy and nginx " +
			"do the same on a listener that accepts both",
	},
	"tls": {},
}

func main() {
	bin := flag.String("bin", "bin", "directory holding nodemesh-agent, nodemesh-proxy and echo")
	h2spec := flag.String("h2spec", "", "h2spec binary (default: h2spec on PATH, else $(go env GOPATH)/bin/h2spec)")
	timeout := flag.Int("timeout", 2, "h2spec's per-case timeout in seconds")
	keep := flag.Bool("keep", false, "keep the run's directory (configuration, logs, JUnit reports)")
	flag.Parse()
	log.SetFlags(0)

	spec, err := findH2spec(*h2spec)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nodemesh-h2spec-")
	if err != nil {
		log.Fatal(err)
	}
	ok, err := run(*bin, spec, dir, *timeout)
	if !*keep && err == nil {
		os.RemoveAll(dir)
	} else {
		fmt.Printf("run directory kept: %s\n", dir)
	}
	if err != nil {
		log.Fatal(err)
	}
	if !ok {
		os.Exit(1)
	}
}

func findH2spec(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("h2spec not found: install it with 'go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible' or pass -h2spec")
}

func run(bin, spec, dir string, timeout int) (bool, error) {
	echoPort, err := freePort()
	if err != nil {
		return false, err
	}
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return false, err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return false, err
	}
	cfg := fmt.Sprintf(configYAML, gatewayAddr, h2cPort, tlsPort, base64.StdEncoding.EncodeToString(certPEM),
		base64.StdEncoding.EncodeToString(keyPEM), echoPort, echoPort)
	if err := os.WriteFile(filepath.Join(cfgDir, "h2spec.yaml"), []byte(cfg), 0o644); err != nil {
		return false, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	for _, args := range [][]string{
		{"echo", "--listen", "127.0.0.1:" + strconv.Itoa(echoPort), "--name", "echo"},
		{"nodemesh-agent", "--config-dir", cfgDir, "--state-dir", dir, "--address-pool", addressPool},
		{"nodemesh-proxy", "--xds-address", "unix://" + filepath.Join(dir, "xds.sock"), "--node-id", "h2spec"},
	} {
		logf, err := os.Create(filepath.Join(dir, args[0]+".log"))
		if err != nil {
			return false, err
		}
		defer logf.Close()
		c := exec.CommandContext(ctx, filepath.Join(bin, args[0]), args[1:]...)
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			return false, fmt.Errorf("starting %s (run 'make build' first): %w", args[0], err)
		}
		procs = append(procs, c)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	if err := waitReady(60*time.Second, roots); err != nil {
		return false, fmt.Errorf("waiting for the proxy (logs in %s): %w", dir, err)
	}

	allOK := true
	for _, l := range []struct {
		name string
		args []string
	}{
		{"h2c", []string{"-h", gatewayAddr, "-p", strconv.Itoa(h2cPort)}},
		{"tls", []string{"-h", gatewayAddr, "-p", strconv.Itoa(tlsPort), "-t", "-k"}},
	} {
		report := filepath.Join(dir, l.name+".xml")
		args := append(l.args, "-o", strconv.Itoa(timeout), "-j", report)
		out, err := exec.Command(spec, args...).CombinedOutput()
		_ = os.WriteFile(filepath.Join(dir, l.name+".txt"), out, 0o644)
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return false, fmt.Errorf("running h2spec: %w", err)
		}
		total, failed, err := parseReport(report)
		if err != nil {
			return false, fmt.Errorf("%s: reading the JUnit report: %w\n%s", l.name, err, out)
		}
		fmt.Printf("%s listener (%s:%s): %d/%d passed\n", l.name, gatewayAddr, l.args[3], total-len(failed), total)
		for _, f := range failed {
			reason, known := expected[l.name][f.id]
			if known {
				fmt.Printf("  known failure %s %s\n    why: %s\n", f.id, f.desc, reason)
				continue
			}
			allOK = false
			fmt.Printf("  FAIL %s %s\n", f.id, f.desc)
		}
		for id := range expected[l.name] {
			if !containsID(failed, id) {
				fmt.Printf("  %s is listed as a known failure but passed\n", id)
			}
		}
	}
	return allOK, nil
}

type failure struct{ id, desc string }

func containsID(fs []failure, id string) bool {
	for _, f := range fs {
		if f.id == id {
			return true
		}
	}
	return false
}

// parseReport reads h2spec's JUnit report. A case's id is its suite's
// package and its 1-based position ("http2/3.5/2"), as h2spec numbers it.
func parseReport(path string) (total int, failed []failure, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	var doc struct {
		Suites []struct {
			Package string `xml:"package,attr"`
			Cases   []struct {
				Class   string    `xml:"classname,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		return 0, nil, err
	}
	for _, s := range doc.Suites {
		for i, c := range s.Cases {
			total++
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, failure{id: s.Package + "/" + strconv.Itoa(i+1), desc: c.Class})
			}
		}
	}
	if total == 0 {
		return 0, nil, errors.New("no test cases")
	}
	return total, failed, nil
}

// waitReady waits until both listeners answer an HTTP/2 request.
func waitReady(limit time.Duration, roots *x509.CertPool) error {
	deadline := time.Now().Add(limit)
	h2c := &http.Client{Timeout: time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	h2 := &http.Client{Timeout: time.Second, Transport: &http2.Transport{
		TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: roots}}}
	var last error
	for time.Now().Before(deadline) {
		last = nil
		for _, t := range []struct {
			c   *http.Client
			url string
		}{
			{h2c, fmt.Sprintf("http://%s:%d/", gatewayAddr, h2cPort)},
			{h2, fmt.Sprintf("https://%s:%d/", gatewayAddr, tlsPort)},
		} {
			resp, err := t.c.Get(t.url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("%s: status %d", t.url, resp.StatusCode)
				}
			}
			if err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: serverName},
		DNSNames: []string{serverName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	var c, k bytes.Buffer
	_ = pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	return c.Bytes(), k.Bytes(), nil
}

// configYAML is the run's configuration: gateway address, the two ports,
// the certificate and key (base64 PEM), and the echo backend's port twice.
const configYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: nodemesh
spec:
  controllerName: nodemesh.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: h2spec
  namespace: default
spec:
  gatewayClassName: nodemesh
  addresses:
  - type: IPAddress
    value: %s
  listeners:
  - name: http
    protocol: HTTP
    port: %d
  - name: https
    protocol: HTTPS
    port: %d
    tls:
      certificateRefs:
      - name: h2spec-cert
---
apiVersion: v1
kind: Secret
metadata:
  name: h2spec-cert
  namespace: default
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  ports:
  - name: http
    port: 80
    targetPort: %d
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo
  namespace: default
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
- name: http
  port: %d
endpoints:
- addresses: ["127.0.0.1"]
  conditions:
    ready: true
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: all
  namespace: default
spec:
  parentRefs:
  - name: h2spec
  rules:
  - backendRefs:
    - name: echo
      port: 80
`
