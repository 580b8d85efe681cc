// Command proxybench measures HTTP/1.1 keep-alive throughput and latency of
// nodemesh-proxy next to nginx and haproxy on this machine, in one run.
//
// Every proxy under test is pinned to one CPU (nginx: 1 worker, haproxy:
// 1 thread, nodemesh-proxy: GOMAXPROCS=1) and the load generator (wrk, one
// thread) and the backend (an nginx worker answering a fixed body) share
// another CPU, so the proxies compete on equal terms. The same backend is
// also measured directly, which bounds what any proxy can reach.
//
// nodemesh-proxy is configured the way a user would configure it: a
// directory of Gateway API YAML read by nodemesh-agent, delivered over xDS.
// The program prints a Markdown table for BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type target struct {
	name string
	url  string
	pgid int // process group of the proxy under test; 0 for the backend
}

func main() {
	bin := flag.String("bin", "bin", "directory holding nodemesh-agent and nodemesh-proxy")
	duration := flag.Duration("duration", 10*time.Second, "length of each measured wrk run")
	conns := flag.String("conns", "1,16,128", "comma-separated wrk connection counts")
	body := flag.Int("body", 64, "response body size in bytes")
	proxyCPU := flag.Int("proxy-cpu", 0, "CPU the proxies under test are pinned to")
	loadCPU := flag.Int("load-cpu", 1, "CPU wrk and the backend are pinned to")
	only := flag.String("targets", "direct,nginx,haproxy,nodemesh", "which targets to measure")
	baseline := flag.String("baseline-bin", "", "directory holding another build of nodemesh-agent and nodemesh-proxy, measured in the same run (a regression check)")
	flag.Parse()

	for _, tool := range []string{"wrk", "nginx", "haproxy", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			log.Fatalf("%s not found: install it (Debian packages wrk, nginx-light, haproxy, util-linux)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "proxybench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ports := freePorts(5)
	backendAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	start := func(cpu int, env []string, name string, args ...string) int {
		cmd := exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		logf, _ := os.Create(filepath.Join(dir, filepath.Base(name)+"-"+strconv.Itoa(len(procs))+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			log.Fatalf("starting %s: %v", name, err)
		}
		procs = append(procs, cmd)
		return cmd.Process.Pid
	}

	_ = start(*loadCPU, nil, "nginx", "-p", dir, "-c", writeFile(dir, "backend.conf", nginxBackend(dir, backendAddr, *body)))
	targets := []target{{"direct (backend only)", "http://" + backendAddr + "/", 0}}
	want := map[string]bool{}
	for _, t := range strings.Split(*only, ",") {
		want[strings.TrimSpace(t)] = true
	}
	if want["nginx"] {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[1])
		pg := start(*proxyCPU, nil, "nginx", "-p", dir, "-c", writeFile(dir, "proxy.conf", nginxProxy(dir, addr, backendAddr)))
		targets = append(targets, target{"nginx 1 worker", "http://" + addr + "/", pg})
	}
	if want["haproxy"] {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[2])
		pg := start(*proxyCPU, nil, "haproxy", "-db", "-f", writeFile(dir, "haproxy.cfg", haproxyConf(addr, backendAddr)))
		targets = append(targets, target{"haproxy 1 thread", "http://" + addr + "/", pg})
	}
	// nodemesh is configured the real way: its agent translates a Gateway
	// and HTTPRoute from YAML and serves them to the proxy over xDS.
	nodemesh := func(binDir, name, ip string, port int) target {
		gwAddr := fmt.Sprintf("%s:%d", ip, port)
		cfgDir := filepath.Join(dir, name, "config")
		state := filepath.Join(dir, name, "state")
		must(os.MkdirAll(cfgDir, 0o755))
		writeFile(cfgDir, "bench.yaml", gatewayYAML(ip, port, ports[0]))
		_ = start(*loadCPU, nil, filepath.Join(binDir, "nodemesh-agent"), "--config-dir", cfgDir, "--state-dir", state)
		pg := start(*proxyCPU, []string{"GOMAXPROCS=1"}, filepath.Join(binDir, "nodemesh-proxy"), "--xds-address", "unix://"+filepath.Join(state, "xds.sock"), "--admin-address", "")
		return target{name, "http://" + gwAddr + "/", pg}
	}
	if want["nodemesh"] {
		targets = append(targets, nodemesh(*bin, "nodemesh-proxy GOMAXPROCS=1", "127.0.100.250", ports[3]))
	}
	if *baseline != "" {
		targets = append(targets, nodemesh(*baseline, "nodemesh-proxy baseline build", "127.0.100.251", ports[4]))
	}
	if !want["direct"] {
		targets = targets[1:]
	}
	for _, t := range targets {
		if err := waitReady(t.url, 30*time.Second); err != nil {
			log.Fatalf("%s never answered 200 at %s: %v (logs in %s)", t.name, t.url, err, dir)
		}
	}

	fmt.Printf("Machine: %s, %d CPUs, kernel %s; proxies pinned to CPU %d, wrk (1 thread) + backend on CPU %d; %d B bodies, HTTP/1.1 keep-alive, %s per run.\n\n",
		cpuModel(), runtime.NumCPU(), kernel(), *proxyCPU, *loadCPU, *body, *duration)
	fmt.Println("| target | connections | requests/s | p50 | p99 | vs nginx | proxy CPU µs/request | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|")
	nginxRate := map[int]float64{}
	for _, n := range parseInts(*conns) {
		for _, t := range targets {
			_, _ = runWrk(*loadCPU, t.url, n, 2*time.Second) // warm up pools and caches
			cpuBefore := groupCPU(t.pgid)
			r, err := runWrk(*loadCPU, t.url, n, *duration)
			cpuPerReq := "—"
			if t.pgid != 0 && r.requests > 0 {
				cpuPerReq = fmt.Sprintf("%.1f", float64((groupCPU(t.pgid)-cpuBefore).Microseconds())/float64(r.requests))
			}
			if err != nil {
				log.Fatalf("wrk against %s: %v", t.name, err)
			}
			if strings.HasPrefix(t.name, "nginx") {
				nginxRate[n] = r.rate
			}
			ratio := "—"
			if base := nginxRate[n]; base > 0 && !strings.HasPrefix(t.name, "direct") {
				ratio = fmt.Sprintf("%.2f×", r.rate/base)
			}
			fmt.Printf("| %s | %d | %.0f | %s | %s | %s | %s | %s |\n", t.name, n, r.rate, r.p50, r.p99, ratio, cpuPerReq, r.errors)
		}
	}
}

type wrkResult struct {
	rate     float64
	requests int64
	p50, p99 string
	errors   string
}

func runWrk(cpu int, url string, conns int, d time.Duration) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", "-c", strconv.Itoa(cpu), "wrk", "-t1",
		"-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("%v: %s", err, out)
	}
	r := wrkResult{errors: "none"}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rate, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = f[1]
		case len(f) == 2 && f[0] == "99%":
			r.p99 = f[1]
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx"), strings.HasPrefix(strings.TrimSpace(line), "Socket errors"):
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	if len(errs) > 0 {
		r.errors = strings.Join(errs, "; ")
	}
	if r.rate == 0 {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	return r, nil
}

// groupCPU is the user+system CPU time used so far by the processes of
// process group pgid (a proxy and, for nginx, its worker).
func groupCPU(pgid int) time.Duration {
	if pgid == 0 {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ... utime(14) stime(15).
		rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func nginxCommon(dir string) string {
	return fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx-%%s.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 8192; }
`, dir)
}

func nginxTemps(dir string) string {
	return fmt.Sprintf(`  access_log off;
  client_body_temp_path %[1]s/tmp-body;
  proxy_temp_path %[1]s/tmp-proxy;
  fastcgi_temp_path %[1]s/tmp-fastcgi;
  uwsgi_temp_path %[1]s/tmp-uwsgi;
  scgi_temp_path %[1]s/tmp-scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
`, dir)
}

func nginxBackend(dir, addr string, body int) string {
	return fmt.Sprintf(nginxCommon(dir), "backend") + "http {\n" + nginxTemps(dir) +
		fmt.Sprintf("  server {\n    listen %s;\n    location / { return 200 \"%s\"; }\n  }\n}\n", addr, strings.Repeat("x", body))
}

func nginxProxy(dir, addr, backend string) string {
	return fmt.Sprintf(nginxCommon(dir), "proxy") + "http {\n" + nginxTemps(dir) + fmt.Sprintf(`  upstream backend {
    server %s;
    keepalive 512;
  }
  server {
    listen %s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, backend, addr)
}

func haproxyConf(addr, backend string) string {
	return fmt.Sprintf(`global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  server s1 %s
`, addr, backend)
}

func gatewayYAML(ip string, listenPort, backendPort int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: %[1]s}]
  listeners: [{name: http, protocol: HTTP, port: %[2]d}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench, namespace: default}
spec:
  parentRefs: [{name: bench}]
  rules: [{backendRefs: [{name: backend, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: %[3]d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend, namespace: default, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: %[3]d}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
`, ip, listenPort, backendPort)
}

func writeFile(dir, name, content string) string {
	p := filepath.Join(dir, name)
	must(os.WriteFile(p, []byte(content), 0o644))
	return p
}

func freePorts(n int) []int {
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		must(err)
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		must(err)
		out = append(out, n)
	}
	return out
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "unknown"
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
