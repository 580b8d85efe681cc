// Command proxybench measures nodemesh-proxy next to nginx and haproxy on
// this machine, in one run, configured alike (one upstream, keep-alive to
// it, no access log). It prints Markdown tables for BENCHMARKS.md, one per
// section (-sections):
//
//   - 1core: HTTP/1.1 keep-alive under wrk at each of -conns. Every proxy
//     under test is pinned to one CPU (nginx: 1 worker, haproxy: 1 thread,
//     nodemesh-proxy on that CPU); wrk (one thread) and the backend (an
//     nginx worker answering a fixed body) share another CPU, so the
//     proxies compete on equal terms. The backend is also measured
//     directly, which bounds what any proxy can reach. Every connection
//     count runs in -rounds rounds, each target once per round in an
//     order that changes from round to round; rows print medians and each
//     round's rate (rounds.go says why). nodemesh-proxy runs twice: as it
//     runs by default (on one CPU one event loop sharing the only P with
//     the rest of the process, GOMAXPROCS=1), and with --event-loops 0
//     (a goroutine per connection, GOMAXPROCS=1).
//   - 2core: the same with two of everything (nginx 2 workers, haproxy 2
//     threads; nodemesh-proxy as by default on two CPUs, two event loops
//     and GOMAXPROCS=3; nodemesh-proxy --event-loops 0 with GOMAXPROCS=2
//     and its two SO_REUSEPORT listeners; and nodemesh-proxy --workers 2:
//     two GOMAXPROCS=1 processes, one socket each in the group), at each
//     of -conns2. The proxies run on -cpus2; wrk (2
//     threads) and the backend (2 workers) on -load-cpus2, by default the
//     same CPUs: a 2-CPU machine has none to spare for the load, so all
//     of them float over both and share them, and the figure is what the
//     whole machine reaches through each proxy, not the proxy's own
//     ceiling. On a machine with 4 or more CPUs, give the load CPUs of
//     its own (-cpus2 0,1 -load-cpus2 2,3) to compare with 1core.
//   - h2: HTTP/2 under h2load, h2c (prior knowledge) and TLS (ALPN h2),
//     nginx next to nodemesh-proxy, pinned as in 1core; each of -h2conns
//     connections carries -h2streams concurrent streams. The upstream is
//     HTTP/1.1 for both.
//   - rss: nodemesh-proxy's resident memory with -routes HTTPRoutes (each
//     its own host, path match and header filter), idle and after a load
//     run, next to the 1-route instance of 1core.
//
// nodemesh-proxy is configured the way a user would configure it: a
// directory of Gateway API YAML read by nodemesh-agent, delivered over xDS.
//
// A run in which any request failed or was answered with anything but 2xx
// (wrk's "Non-2xx" and socket errors; h2load's failed, errored and timed
// out requests and its 3xx, 4xx and 5xx counts) is printed as invalid with
// its errors and no rate, latency or ratio: error answers are often cheaper
// than real ones, and both tools count them in their requests/s.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// h2target is an HTTP/2 row: a proxy's URL and process group.
type h2target struct {
	name, url string
	pgid      int
}

type target struct {
	name string
	url  string
	pgid int // process group of the proxy under test; 0 for the backend
	// pprof is the address of the proxy's Go profile endpoint when -profile
	// is set (nodemesh-proxy only).
	pprof string
}

// bench holds the run's processes and settings.
type bench struct {
	dir      string
	bin      string
	procs    []*exec.Cmd
	loadCPU  string
	proxyCPU string
	duration time.Duration
	rounds   int // load runs per target and connection count (wrkTable)
	body     int
	cert     []byte
	key      []byte
	// profile is the directory receiving profiles of nodemesh-proxy taken
	// during its measured runs; empty: none are taken.
	profile string
}

// start runs name on cpus in a process group of its own and returns its
// pid (taskset execs the program, so it is the program's).
func (b *bench) start(cpus string, env []string, name string, args ...string) int {
	cmd := exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logDir := b.dir
	if b.profile != "" && strings.HasPrefix(filepath.Base(name), "nodemesh-proxy") {
		logDir = b.profile // its GODEBUG=gctrace=1 output is part of the profile
	}
	logf, _ := os.Create(filepath.Join(logDir, filepath.Base(name)+"-"+strconv.Itoa(len(b.procs))+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Fatalf("starting %s: %v", name, err)
	}
	b.procs = append(b.procs, cmd)
	return cmd.Process.Pid
}

func (b *bench) stop() {
	for _, p := range b.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
}

// nodemesh starts an agent and a proxy serving g; the agent runs on
// agentCPUs, the proxy on cpus with GOMAXPROCS procs.
func (b *bench) nodemesh(binDir, name string, g gateway, cpus, agentCPUs string, procs int, extra ...string) (target, int) {
	cfgDir := filepath.Join(b.dir, name, "config")
	state := filepath.Join(b.dir, name, "state")
	must(os.MkdirAll(cfgDir, 0o755))
	writeFile(cfgDir, "bench.yaml", g.yaml())
	_ = b.start(agentCPUs, nil, filepath.Join(binDir, "nodemesh-agent"), "--config-dir", cfgDir, "--state-dir", state)
	var env []string // procs 0: the runtime's own choice, from the CPUs taskset gives
	if procs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	args := append([]string{"--xds-address", "unix://" + filepath.Join(state, "xds.sock"), "--admin-address", ""}, extra...)
	var pprof string
	if b.profile != "" {
		pprof = fmt.Sprintf("127.0.0.1:%d", freePorts(1)[0])
		env = append(env, "GODEBUG=gctrace=1")
		args = append(args, "--pprof-address", pprof)
	}
	pid := b.start(cpus, env, filepath.Join(binDir, "nodemesh-proxy"), args...)
	return target{name: name, url: fmt.Sprintf("http://%s:%d/", g.ip, g.httpPort), pgid: pid, pprof: pprof}, pid
}

func main() {
	bin := flag.String("bin", "bin", "directory holding nodemesh-agent and nodemesh-proxy")
	duration := flag.Duration("duration", 10*time.Second, "length of each measured load run (whole seconds)")
	rounds := flag.Int("rounds", 3, "1core, 2core: rounds per connection count, each running every target once, in the orders of a balanced Latin square (rounds.go); rows print medians")
	sections := flag.String("sections", "1core,2core,h2,rss", "which tables to measure")
	conns := flag.String("conns", "1,16,128", "1core: comma-separated wrk connection counts")
	conns2 := flag.String("conns2", "16,128", "2core: comma-separated wrk connection counts")
	h2conns := flag.String("h2conns", "1,16", "h2: comma-separated h2load connection counts")
	h2streams := flag.Int("h2streams", 10, "h2: concurrent streams per connection")
	routes := flag.Int("routes", 1000, "rss: HTTPRoutes loaded")
	body := flag.Int("body", 64, "response body size in bytes")
	proxyCPU := flag.Int("proxy-cpu", 0, "1core, h2: CPU the proxies under test are pinned to")
	loadCPU := flag.Int("load-cpu", 1, "1core, h2: CPU the load generator and the backend are pinned to")
	cpus2 := flag.String("cpus2", "0,1", "2core: CPUs the proxies under test run on")
	loadCPUs2 := flag.String("load-cpus2", "", "2core: CPUs wrk and the backend run on (default: -cpus2, shared with the proxies)")
	only := flag.String("targets", "direct,nginx,haproxy,nodemesh,nodemesh-goroutines", "1core, 2core: which targets to measure (nodemesh: as it runs by default, on event loops; nodemesh-goroutines: --event-loops 0, and on 2core --workers 2)")
	profile := flag.String("profile", "", "directory to write nodemesh-proxy's CPU, allocation, block and mutex profiles, an execution trace and its gctrace log to, taken during each measured HTTP/1.1 run (profiling costs the proxy some CPU: do not publish numbers from such a run)")
	baseline := flag.String("baseline-bin", "", "directory holding another build of nodemesh-agent and nodemesh-proxy, measured in 1core and h2 in the same run, each of its h2 rows right after the build under test's, each build as it runs by default (a regression check between builds that serve alike by default; one from before event loops were the default serves on goroutines)")
	flag.Parse()

	want := set(*sections)
	for t := range set(*only) {
		if !slices.Contains([]string{"direct", "nginx", "haproxy", "nodemesh", "nodemesh-goroutines"}, t) {
			log.Fatalf("-targets: unknown target %q", t)
		}
	}
	tools := []string{"wrk", "nginx", "haproxy", "taskset"}
	if want["h2"] {
		tools = append(tools, "h2load")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			log.Fatalf("%s not found: install it (make deps: Debian packages wrk, nginx-light, haproxy, util-linux, nghttp2-client)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "proxybench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cert, key, err := selfSigned()
	must(err)
	b := &bench{dir: dir, bin: *bin, loadCPU: strconv.Itoa(*loadCPU), proxyCPU: strconv.Itoa(*proxyCPU),
		duration: *duration, rounds: max(*rounds, 1), body: *body, cert: cert, key: key, profile: *profile}
	if *profile != "" {
		must(os.MkdirAll(*profile, 0o755))
	}
	defer b.stop()

	fmt.Printf("Machine: %s, %d CPUs, kernel %s; %d B bodies, %s per run.\n\n", cpuModel(), runtime.NumCPU(), kernel(), *body, *duration)
	var oneRoute int // pid of the 1core nodemesh-proxy, for rss
	if want["1core"] || want["h2"] || want["rss"] {
		oneRoute = b.oneCore(want, set(*only), *baseline, parseInts(*conns), parseInts(*h2conns), *h2streams)
	}
	if want["2core"] {
		b.twoCores(set(*only), *cpus2, cmp.Or(*loadCPUs2, *cpus2), parseInts(*conns2))
	}
	if want["rss"] {
		b.rss(*routes, oneRoute)
	}
}

// oneCore measures the 1core and h2 sections, which share their proxies,
// and returns the pid of its nodemesh-proxy.
func (b *bench) oneCore(want, only map[string]bool, baseline string, conns, h2conns []int, streams int) int {
	ports := freePorts(11)
	backendAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	_ = b.start(b.loadCPU, nil, "nginx", "-p", b.dir, "-c", writeFile(b.dir, "backend1.conf", nginxBackend(b.dir, "backend1", backendAddr, 1, b.body)))

	certFile, keyFile := writeFile(b.dir, "cert.pem", string(b.cert)), writeFile(b.dir, "key.pem", string(b.key))
	ngx := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	nginxPG := b.start(b.proxyCPU, nil, "nginx", "-p", b.dir, "-c", writeFile(b.dir, "proxy1.conf",
		nginxProxy(b.dir, "proxy1", 1, backendAddr, []nginxListen{{ngx(1), "h1"}, {ngx(5), "h2c"}, {ngx(6), "tls"}}, certFile, keyFile)))
	haproxyPG := b.start(b.proxyCPU, nil, "haproxy", "-db", "-f", writeFile(b.dir, "haproxy1.cfg", haproxyConf(1, ngx(2), backendAddr)))
	g := gateway{ip: "127.0.100.250", httpPort: ports[3], httpsPort: ports[7], certPEM: b.cert, keyPEM: b.key, backendPort: ports[0], routes: 1}
	// As it runs by default: on one CPU one event loop sharing the only
	// P.
	nm, nmPID := b.nodemesh(b.bin, "nodemesh-proxy (1 event loop)", g, b.proxyCPU, b.loadCPU, 0)

	targets := []target{{name: "direct (backend only)", url: "http://" + backendAddr + "/"}}
	if only["nginx"] {
		targets = append(targets, target{name: "nginx 1 worker", url: "http://" + ngx(1) + "/", pgid: nginxPG})
	}
	if only["haproxy"] {
		targets = append(targets, target{name: "haproxy 1 thread", url: "http://" + ngx(2) + "/", pgid: haproxyPG})
	}
	if only["nodemesh"] {
		targets = append(targets, nm)
	}
	var gt target // a goroutine per connection, on one P
	var gtPID int
	if only["nodemesh-goroutines"] {
		gg := g
		gg.ip, gg.httpPort, gg.httpsPort = "127.0.100.248", ports[9], ports[10]
		gt, gtPID = b.nodemesh(b.bin, "nodemesh-proxy --event-loops 0", gg, b.proxyCPU, b.loadCPU, 1, "--event-loops", "0")
		targets = append(targets, gt)
	}
	var base target
	var basePID int
	if baseline != "" {
		bg := g
		bg.ip, bg.httpPort, bg.httpsPort = "127.0.100.251", ports[4], ports[8]
		base, basePID = b.nodemesh(baseline, "nodemesh-proxy baseline build", bg, b.proxyCPU, b.loadCPU, 1)
		targets = append(targets, base)
	}
	if !only["direct"] {
		targets = targets[1:]
	}
	b.waitAll(targets)
	h2targets := []h2target{
		{"nginx 1 worker, h2c", "http://" + ngx(5) + "/", nginxPG},
		{nm.name + ", h2c", nm.url, nmPID},
		{"nginx 1 worker, TLS", "https://" + ngx(6) + "/", nginxPG},
		{nm.name + ", TLS", fmt.Sprintf("https://%s:%d/", g.ip, g.httpsPort), nmPID},
	}
	if gtPID != 0 {
		// HTTP/2 and TLS run on goroutines either way; what differs is
		// GOMAXPROCS (2 on the one CPU with a loop, 1 without).
		h2targets = slices.Insert(h2targets, 2, h2target{gt.name + ", h2c", gt.url, gtPID})
		h2targets = append(h2targets, h2target{gt.name + ", TLS", fmt.Sprintf("https://127.0.100.248:%d/", ports[10]), gtPID})
	}
	if baseline != "" {
		// The baseline build follows each nodemesh row, alternated with
		// it under the same load, each build as it runs by default (a
		// build from before event loops were the default runs a
		// goroutine per connection on one P).
		h2targets = slices.Insert(h2targets, 2, h2target{"nodemesh-proxy baseline build, h2c", base.url, basePID})
		h2targets = append(h2targets, h2target{"nodemesh-proxy baseline build, TLS", fmt.Sprintf("https://127.0.100.251:%d/", ports[8]), basePID})
	}
	if want["h2"] {
		for _, t := range h2targets {
			if err := waitH2(t.url, 30*time.Second); err != nil {
				log.Fatalf("%s never answered an HTTP/2 request at %s: %v (logs in %s)", t.name, t.url, err, b.dir)
			}
		}
	}

	if want["1core"] {
		fmt.Printf("### HTTP/1.1, one core each\n\nProxies pinned to CPU %s, wrk (1 thread) + backend on CPU %s; HTTP/1.1 keep-alive.\n\n", b.proxyCPU, b.loadCPU)
		b.wrkTable(targets, b.loadCPU, 1, conns)
	}
	if want["h2"] {
		fmt.Printf("### HTTP/2, one core each\n\nProxies pinned to CPU %s, h2load (1 thread) + backend on CPU %s; %d concurrent streams per connection; HTTP/1.1 keep-alive to the backend.\n\n",
			b.proxyCPU, b.loadCPU, streams)
		fmt.Println("| target | connections | requests/s | p50 | p99 | vs nginx | proxy CPU µs/request | errors |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|")
		for _, n := range h2conns {
			var nginxRate float64
			for _, t := range h2targets {
				_, _ = runH2load(b.dir, b.loadCPU, t.url, n, streams, 2*time.Second) // warm up
				before := groupCPU(t.pgid)
				r, err := runH2load(b.dir, b.loadCPU, t.url, n, streams, b.duration)
				if err != nil {
					log.Fatalf("h2load against %s: %v", t.name, err)
				}
				if strings.HasPrefix(t.name, "nginx") {
					nginxRate = r.throughput()
				}
				b.row(t.name, n, r, nginxRate, strings.HasPrefix(t.name, "nginx"), groupCPU(t.pgid)-before)
			}
		}
		fmt.Println()
	}
	return nmPID
}

// twoCores measures the 2core section with proxies of its own.
func (b *bench) twoCores(only map[string]bool, cpus, loadCPUs string, conns []int) {
	ports := freePorts(6)
	backendAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	_ = b.start(loadCPUs, nil, "nginx", "-p", b.dir, "-c", writeFile(b.dir, "backend2.conf", nginxBackend(b.dir, "backend2", backendAddr, 2, b.body)))
	targets := []target{{name: "direct (backend, 2 workers)", url: "http://" + backendAddr + "/"}}
	if only["nginx"] {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[1])
		pg := b.start(cpus, nil, "nginx", "-p", b.dir, "-c", writeFile(b.dir, "proxy2.conf",
			nginxProxy(b.dir, "proxy2", 2, backendAddr, []nginxListen{{addr, "h1"}}, "", "")))
		targets = append(targets, target{name: "nginx 2 workers", url: "http://" + addr + "/", pgid: pg})
	}
	if only["haproxy"] {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[2])
		pg := b.start(cpus, nil, "haproxy", "-db", "-f", writeFile(b.dir, "haproxy2.cfg", haproxyConf(2, addr, backendAddr)))
		targets = append(targets, target{name: "haproxy 2 threads", url: "http://" + addr + "/", pgid: pg})
	}
	if only["nodemesh"] {
		// As by default on the section's CPUs: a loop each (two on two),
		// GOMAXPROCS raised to one more.
		g := gateway{ip: "127.0.100.249", httpPort: ports[5], backendPort: ports[0], routes: 1}
		t, _ := b.nodemesh(b.bin, "nodemesh-proxy (a loop per CPU)", g, cpus, loadCPUs, 0)
		targets = append(targets, t)
	}
	if only["nodemesh-goroutines"] {
		g := gateway{ip: "127.0.100.252", httpPort: ports[3], backendPort: ports[0], routes: 1}
		t, _ := b.nodemesh(b.bin, "nodemesh-proxy --event-loops 0 GOMAXPROCS=2", g, cpus, loadCPUs, 2, "--event-loops", "0")
		targets = append(targets, t)
		// Two single-threaded processes, each with its own socket in the
		// listener's SO_REUSEPORT group; the workers are in the parent's
		// process group, so their CPU counts.
		g = gateway{ip: "127.0.100.254", httpPort: ports[4], backendPort: ports[0], routes: 1}
		t, _ = b.nodemesh(b.bin, "nodemesh-proxy --workers 2", g, cpus, loadCPUs, 1, "--workers", "2")
		targets = append(targets, t)
	}
	if !only["direct"] {
		targets = targets[1:]
	}
	b.waitAll(targets)
	fmt.Printf("### HTTP/1.1, two cores each\n\n")
	if loadCPUs == cpus {
		fmt.Printf("Proxy, wrk (2 threads) and backend (nginx, 2 workers) all share CPUs %s: no CPU is left for the load, so this is what the whole machine reaches through each proxy.\n\n", cpus)
	} else {
		fmt.Printf("Proxies on CPUs %s, wrk (2 threads) and backend (nginx, 2 workers) on CPUs %s.\n\n", cpus, loadCPUs)
	}
	b.wrkTable(targets, loadCPUs, 2, conns)
}

// rss loads routes HTTPRoutes into a nodemesh-proxy of its own and
// reports its memory, idle and after a load run.
func (b *bench) rss(routes, oneRoutePID int) {
	ports := freePorts(2)
	backendAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	_ = b.start(b.loadCPU, nil, "nginx", "-p", b.dir, "-c", writeFile(b.dir, "backend3.conf", nginxBackend(b.dir, "backend3", backendAddr, 1, b.body)))
	g := gateway{ip: "127.0.100.253", httpPort: ports[1], backendPort: ports[0], routes: routes}
	t, pid := b.nodemesh(b.bin, "nodemesh-proxy routes", g, b.proxyCPU, b.loadCPU, 0)
	last := routes - 2
	host, path := fmt.Sprintf("r%d.example", last), fmt.Sprintf("/r%d", last)
	if routes <= 1 {
		host, path = "", ""
	}
	start := time.Now()
	if err := waitReady(t.url+strings.TrimPrefix(path, "/"), host, 120*time.Second); err != nil {
		log.Fatalf("the proxy with %d routes never served the last one: %v (logs in %s)", routes, err, b.dir)
	}
	loaded := time.Since(start)
	time.Sleep(time.Second) // let the configuration's garbage be collected
	idleRSS, _ := memory(pid)
	_, _ = runWrk(b.loadCPU, 1, t.url, 128, b.duration)
	loadRSS, loadPeak := memory(pid)
	fmt.Printf("### nodemesh-proxy memory\n\n| configuration | RSS idle | RSS after 128-connection wrk run | peak RSS |\n|---|---:|---:|---:|\n")
	if oneRoutePID != 0 {
		rss, peak := memory(oneRoutePID)
		fmt.Printf("| 1 route (after the runs above) | — | %s | %s |\n", rss, peak)
	}
	fmt.Printf("| %d routes (served %s after start) | %s | %s | %s |\n\n", routes, loaded.Round(100*time.Millisecond), idleRSS, loadRSS, loadPeak)
}

func (b *bench) waitAll(targets []target) {
	for _, t := range targets {
		if err := waitReady(t.url, "", 30*time.Second); err != nil {
			log.Fatalf("%s never answered 200 at %s: %v (logs in %s)", t.name, t.url, err, b.dir)
		}
	}
}

// wrkTable runs wrk against every target at every connection count.
func (b *bench) wrkTable(targets []target, cpus string, threads int, conns []int) {
	fmt.Printf("Each row: rate, p50 and p99 each the median of %d rounds (every target once per round, in the orders of a balanced Latin square); vs nginx is the median of the per-round ratios; CPU per request over all rounds.\n\n", b.rounds)
	fmt.Println("| target | connections | requests/s | p50 | p99 | vs nginx | proxy CPU µs/request | requests/s by round | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|---|")
	for _, n := range conns {
		all := runRounds(len(targets), b.rounds, func(i, r int) (result, time.Duration) {
			t := targets[i]
			_, _ = runWrk(cpus, threads, t.url, n, 2*time.Second) // warm up pools and caches
			stopProfile := b.startProfile(t, fmt.Sprintf("%s-%dcpu-%dconns-round%d", slug(t.name), threads, n, r+1))
			before := groupCPU(t.pgid)
			res, err := runWrk(cpus, threads, t.url, n, b.duration)
			cpu := groupCPU(t.pgid) - before // before the profile fetches, which cost the proxy CPU
			stopProfile()
			if err != nil {
				log.Fatalf("wrk against %s: %v", t.name, err)
			}
			if t.pgid == 0 {
				cpu = 0
			}
			return res, cpu
		})
		var ref *series
		for i, t := range targets {
			if strings.HasPrefix(t.name, "nginx") {
				ref = &all[i]
			}
		}
		for i, t := range targets {
			own := ref
			if t.pgid == 0 || strings.HasPrefix(t.name, "nginx") {
				own = nil // the backend and nginx itself get no ratio
			}
			fmt.Println(formatSummary(t.name, n, summarize(all[i], own)))
		}
	}
	fmt.Println()
}

// slug makes a target's name fit a file name ("nodemesh-proxy --workers
// 2" -> "nodemesh-proxy-workers-2").
func slug(name string) string {
	f := strings.FieldsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.')
	})
	return strings.Join(f, "-")
}

// row prints one result; a ratio is printed when there is an nginx rate
// to compare with and the row is not nginx's own or the backend's. An
// invalid run (r.invalid) prints no rate, latency or ratio, only its
// errors.
func (b *bench) row(name string, conns int, r result, nginxRate float64, noRatio bool, cpu time.Duration) {
	fmt.Println(formatRow(name, conns, r, nginxRate, noRatio, cpu))
}

func formatRow(name string, conns int, r result, nginxRate float64, noRatio bool, cpu time.Duration) string {
	if r.invalid {
		return fmt.Sprintf("| %s | %d | **invalid** | — | — | — | — | %s |", name, conns, r.errors)
	}
	ratio, cpuPerReq := "—", "—"
	if nginxRate > 0 && !noRatio {
		ratio = fmt.Sprintf("%.2f×", r.rate/nginxRate)
	}
	if cpu > 0 && r.requests > 0 {
		cpuPerReq = fmt.Sprintf("%.1f", float64(cpu.Microseconds())/float64(r.requests))
	}
	return fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %s |", name, conns, r.rate, r.p50, r.p99, ratio, cpuPerReq, r.errors)
}

func set(s string) map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		m[strings.TrimSpace(f)] = true
	}
	return m
}
