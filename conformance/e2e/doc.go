// Package e2e holds nodemesh's end-to-end scenarios: Gateway API YAML goes
// through the agent, the real xDS server (gRPC over a Unix socket) and the
// builtin proxy to real HTTP backends on loopback, and the tests look at
// what clients and backends see. It has no non-test code.
//
// BenchmarkPolicyHop (root) prints the latency the eBPF redirect and the
// proxy's HTTP policy add to a request between two test-bed workloads at a
// fixed 1k req/s per path; make bench runs it (HOP_N requests per path).
// Its load generator (hopGen) and backend run as separate processes of
// this test binary, the generator on a CPU of its own. It interleaves
// direct and redirected requests one by one (pairs in a random order), so
// the generator's own costs and the machine's noise are shared by both
// rows, and it states the added latency with a 95 % confidence interval
// from a paired block bootstrap (pairedQuantileDiffs).
//
// # Where the hop's tail goes
//
// How it was found: NODEMESH_E2E_HOP_TIMELINE=file makes the generator
// write each timed request's slot, write and answer on CLOCK_MONOTONIC,
// and a tracefs instance with trace_clock mono recording sched_switch and
// sched_waking (plus softirq entry and exit) on both CPUs shows, for each
// slow request, what CPU 0 ran between its write and its answer and how
// long each wake-up waited. The numbers below come from 20 000-request
// runs on a 2-vCPU VM that other builds kept at load 6-16, so they rest on
// the mechanism (which task held CPU 0, and how periodically), not on the
// end-to-end quantiles, which that load dominated.
//
// A redirected request needs three wake-ups on CPU 0 (the proxy for the
// request, the backend, the proxy for the response) where a direct one
// needs one (the backend), so it is about three times as exposed to
// whatever holds CPU 0 at that moment. Under EEVDF a woken task does not
// preempt a task of equal weight before that task's slice (se.slice
// 1.4 ms on this kernel) unless it is eligible with an earlier deadline:
// while the agent was in one of its long runs, 19-23 % of the proxy's
// wake-ups waited more than 0.3 ms (1.5-3 % while the backend ran).
//
// The long runs were periodic: every 64 ms, CPU 0 ran the proxy for
// 0.4-1.3 ms and then the agent for 0.3-1.3 ms. Both were the access log:
// at 1k req/s its 16 KiB batches (Envoy's default buffer_size_bytes; about
// 64 entries of 284 bytes) go out every 64 ms; the proxy marshalled the
// whole batch at the flush (reflection protobuf, about 5 µs of CPU per
// entry, Size twice besides), holding its only P while requests became
// ready, and the agent decodes the message (about 10 µs of CPU per entry,
// a third of it the l7 metadata Struct) in one go. Requests that fell into
// those runs match the hop's ≈ 1 ms at p99 in size and in frequency (2 ms
// of every 64 is 3 % of the time).
//
// The proxy now encodes each wake-up's entries as they come (package
// proxylib/accesslog), so a flush marshals nothing: in five trace runs
// against the previous proxy, alternated, its runs on CPU 0 of 1 ms or
// more fell from 33, 55, 48, 90 and 111 to 12, 24, 24, 21 and 29 per 20 s.
// What is left is a run per 16 entries, about 80 µs of CPU on a quiet
// machine (reflection protobuf; 0.3-0.7 ms at that load). The agent's runs
// did not get shorter (runs of 1 ms or more: 23-95 per 20 s before, 12-147
// after; its CPU 370-523 ms per 20 s before, 337-588 after), and they are
// now the larger periodic source. Next: on the agent a decoder that reads
// only the fields a flow needs (protowire, no Struct), and on the proxy an
// encoder written for its own entry (its fields are fixed, package hcm)
// instead of reflection. Smaller messages trade the other way: with 2 KiB
// instead of 16 KiB (one run) the agent's runs of 1 ms or more fell to 19,
// but its CPU rose by a third to a half (per-message costs). With the
// previous sender 2 KiB messages made both paths slower in two runs
// (redirected p50 2.0-2.5 ms), which the new sender does not show; not
// explained.
//
// The proxy's own runtime (about 1.5 wake-ups per request over two
// threads, no hand-off between goroutines) was not a cause at 1k req/s.
// Nor was a scheduler setting the remedy: a short slice requested for the
// proxy's threads (sched_setattr sched_runtime 100 µs, which lets an
// eligible woken task preempt one with a longer slice), toggled every
// second within runs, lowered the added p90 in all three runs and the
// added p99 in two, but the proxy's wake-ups during the agent's runs still
// waited over 0.3 ms in 19 % of cases (23 % without): most likely a task
// that has just run is often not eligible when it wakes, which a short
// slice does not change. It was not adopted.
//
// Garbage collection was the next cause found. With every process's
// collector off (GOGC=off) the added p99 fell from 0.75-1.1 ms to
// 0.31-0.35 ms in alternated 10 000-request runs on an idle machine, with
// the proxy's alone off to 0.61-0.69 ms and the backend's alone off to
// 0.51-0.77 ms: a collection on the shared CPU holds up the redirected
// path's three wake-ups more than the direct path's one. The proxy then
// made about 21 allocations (3.6 KB) per request, nearly all the access-log
// entry; it now encodes entries by hand into the sender's buffer and makes
// about 0.5 (package proxylib/accesslog). The agent's access-log path went
// from 3.2 to 1.3 allocations per entry (one AddAll per message, package
// mesh/flow). The benchmark's server (hopBackend) allocates nothing per
// request; net/http's 22 allocations per request made it collect every
// half second, a cost that is the server's, not the hop's. Against the
// build before these changes, alternated at 20 000 requests per path: added
// p99 0.96 ms before and 0.17 ms after in the quieter pair, 2.2 and
// 0.54 ms in the noisier one.
//
// What is left, in a traced run: of the 200 slowest redirected requests,
// 118 had at least 0.1 ms of the VM's own work (PID 1's threads, the
// kernel's kdamond) on CPU 0 while in flight, as had 116 of the 200 slowest
// direct ones (over the run, 196 and 202 requests were hit: the same
// exposure); 18 saw CPU 0 idle for 0.3 ms or more (slow wake-ups of an
// idle vCPU); 64 queued behind 1 ms or more of the proxy's and backend's
// own work, which a redirected request needs about 2.4 times as much of as
// a direct one. A profile of the proxy's long runs showed the same code as
// its short ones (system calls, TCP, the request path): no collection.
package e2e
