// Package evloop runs an event loop of the proxy's own: one goroutine waits
// in epoll_wait(2) on a private epoll set and calls each ready
// descriptor's handler, in the order the kernel reported them, on that
// goroutine. It runs in one of two modes, chosen when Run starts:
//   - Own P (GOMAXPROCS above the running loops): the goroutine is locked
//     to its OS thread and waits raw, keeping its P while busy (below).
//   - Shared (GOMAXPROCS=1, one loop): the goroutine is not locked. It
//     looks with a raw epoll_wait that does not block and, finding
//     nothing, waits raw for up to 200 µs (below) and then parks in the
//     runtime's poller on the epoll descriptor itself (an epoll set is
//     readable while it has ready descriptors), with a read deadline at
//     its next timer. The loop and every other
//     goroutine of the process share the one P and one running thread.
//
// Why: a goroutine per connection waits through the Go runtime's poller.
// Each time the runtime runs out of work it polls the network twice (once
// without blocking, once blocking), and it hands a batch of ready sockets to
// its run queue in the reverse of the kernel's order. Measured with a
// minimal HTTP/1.1 relay (no routing, one upstream connection per client,
// proxy pinned to one core, wrk and an nginx backend on the other, three
// rounds of 8 s in one invocation), the same relay written both ways: at one
// connection the loop answered 12.2–16.0k requests/s against 10.5–13.2k for
// the goroutine version (nginx 11.4–11.8k) with 46–51 % of the core against
// 70–76 %; at 16 connections its p99 was 0.56–0.73 ms against 0.78–1.22 ms
// (nginx 0.66–0.67); at 128, 5.4–5.6 ms against 10.3–10.6 ms (nginx 4.9–9.0).
//
// Why a shared mode: on one CPU a loop keeping its P needs a second P for
// the rest of the process, and that P is a second thread on the same CPU
// whenever the rest has work (HTTP/2 and TLS connections, served on
// goroutines) or the loop has lent its P away while idle: the runtime's
// scheduler then runs goroutines on two Ps over one CPU, with wake-ups
// and handoffs between the threads. Measured on one CPU in one proxybench
// invocation (AMD EPYC VM, 2026-12-08; an earlier form of the shared
// loop, without the yield and the second look added since) against the
// same proxy keeping its P on GOMAXPROCS=2: HTTP/2 p99 1.01 against
// 3.88 ms at one h2c connection, 12.4 against 19.8 ms at 16, 1.28 against
// 3.32 ms at one TLS connection (at the p99 of --event-loops 0), with
// 23 % more requests/s at one h2c connection; HTTP/1.1 level (1.01×,
// 0.98×, 0.99× nginx at 1, 16, 128 connections against 0.98×, 1.00×,
// 0.99×; CPU per request 72.6, 16.3, 17.2 µs against 57.7, 15.3, 17.1: an
// idle spell costs more, below). It is not used with more loops: on two
// CPUs, two loops as unlocked goroutines on GOMAXPROCS=2, sharing the
// CPUs with the load, had a p99 of 127–173 ms at 128 connections in two
// runs, where locked loops had 5.8–6.8 ms in runs alternated with them.
// Why was not traced; a likely cause is that the runtime wakes no idle P
// for a preempted goroutine, so two loops can take turns on one P.
//
// Decisions:
//   - Own-P mode's system calls are raw (syscall.RawSyscall): no
//     entersyscall, so the runtime's monitor never hands the loop's P to
//     another thread while a busy loop waits. The price is that the
//     waiting loop keeps its P: a process running n such loops needs
//     GOMAXPROCS ≥ n+1 so that every other goroutine (control plane,
//     timers, logs) has a P. Run refuses to start otherwise rather than
//     starve them.
//   - A shared loop's own system calls are raw too. Its long wait is the
//     runtime's poller, so it runs without signal preemption (GODEBUG
//     asyncpreemptoff) and never holds the P asleep for long. Parking
//     costs a pass through the runtime's scheduler and poller (what a
//     goroutine per connection pays on every read), so while no
//     connection is served off the loops (ServingOffLoop: none of the
//     goroutines it would hold up carries traffic) an idle loop first
//     yields once (what it started, a dial say, runs), looks again and
//     waits raw for up to 200 µs, which covers an upstream's answer or a
//     client's next request on a fast path; only then does it park. While
//     such a connection is open it parks at once. A busy loop finds
//     events at each look and never parks; the runtime preempts it like
//     any goroutine (every 10 ms at most), so what shares the P waits up
//     to that long under full load.
//   - In own-P mode only a busy loop waits raw. A raw wait lasts at most
//     5 ms; one that ran those 5 ms with nothing (not cut short for a
//     timer) makes the next wait an ordinary blocking system call: the
//     runtime may lend the P to other goroutines and sends the loop no
//     preemption signals,
//     where a raw wait would be ended by one about every 10–20 ms (the
//     fairness tick), several thread switches each. An idle proxy with one
//     loop went from about 335 context switches a second to a handful
//     (counted by hand from /proc). The price: the first event after an
//     idle spell may wait for a P when every P is busy, so the round after
//     a releasing wait is not complete for Quiet (it may start late); and
//     a loop whose descriptors fire every 5 ms or more slowly pays one
//     extra wait per round.
//   - A goroutine in a raw system call cannot be preempted, but
//     epoll_wait(2) always returns EINTR when a signal arrives, and the
//     runtime preempts by signal (garbage collection, the 10 ms fairness
//     tick, profiling). On EINTR the loop yields (runtime.Gosched), so a
//     stop-the-world never waits on a sleeping loop. With that preemption
//     turned off (GODEBUG asyncpreemptoff=1) an own-P loop refuses to
//     start (Usable says so beforehand); a shared loop starts, and a
//     stop-the-world may then wait out its raw wait (200 µs at most).
//   - A shared loop's timers are the read deadline of its parked
//     descriptor, set only when the earliest timer changes (a deadline is
//     a runtime timer); the deadline is the timer's own time, so a timer
//     never fires early.
//   - Other goroutines reach the loop only through Post, which queues a
//     function and wakes the loop through an eventfd; everything else (Add,
//     Mod, Del, timers) is called on the loop's goroutine, from handlers,
//     timer functions or posted functions. Nothing is locked on the hot path.
//   - Timers live in a binary heap keyed by monotonic nanoseconds; an
//     own-P loop's wait times out at the earliest one, rounded up to the
//     millisecond epoll_wait counts in, so a timer never fires early.
//   - Each round's wait is numbered (Round), and the descriptors it
//     reported are stamped with that number before any handler runs, so
//     Quiet can tell a handler that a descriptor had no event from a
//     given round up to this round's wait. An owner that would otherwise
//     peek at an idle socket before using it (the HTTP loop's upstream
//     connections) saves that system call. A wait that filled its array
//     or was cut short by a signal may have left events in the kernel:
//     nothing is Quiet in its round. A descriptor registered after the
//     round's wait is not Quiet in it either.
//   - Handlers must not block: a handler that waits stalls every descriptor
//     of its loop. Work that may wait goes to a goroutine of its own.
//
// Invariants:
//   - A descriptor is registered at most once per loop; Del before close.
//   - Ready is called only for registered descriptors, with the events the
//     kernel reported (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).
//     A descriptor Del'eted during a round gets none of that round's later
//     events, so a number closed and registered again within one round
//     never receives the old one's; handlers still treat EAGAIN as
//     "nothing".
//   - A Stop'ped timer never fires; an Arm'ed timer fires once, at or after
//     its time.
//   - Close ends Run; descriptors still registered are not closed by the
//     loop (their owners close them).
package evloop
