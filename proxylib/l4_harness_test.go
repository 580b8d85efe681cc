package proxylib_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// tcpChain is a filter chain whose only filter is tcp_proxy tp.
func tcpChain(t testing.TB, tp *tcpproxyv3.TcpProxy, serverNames ...string) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, tp)}}}}
	if len(serverNames) > 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: serverNames}
	}
	return fc
}

func tcpTo(cluster string) *tcpproxyv3.TcpProxy {
	return &tcpproxyv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}
}

// lineBackend is a TCP server that answers each line with "<name>: <line>"
// and, when the client half-closes, writes "<name>: bye" before closing.
// With tlsCert it serves TLS with that certificate instead of plain text.
func lineBackend(t testing.TB, name string, tlsCert *tls.Certificate) string {
	t.Helper()
	addr := freeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*tlsCert}})
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						_, _ = io.WriteString(c, name+": bye\n")
						return
					}
					_, _ = io.WriteString(c, name+": "+line)
				}
			}()
		}
	}()
	return addr
}

// exchange writes line and reads one answer line.
func exchange(t testing.TB, c net.Conn, line string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("writing %q: %v", line, err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", line, err)
	}
	return strings.TrimSuffix(got, "\n")
}
