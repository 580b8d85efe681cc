package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// startProfile takes profiles of t's proxy while a measured run of
// b.duration goes on, into b.profile as <label>-<kind>: a CPU profile
// over most of the run, an execution trace of its middle two seconds
// (scheduler latency: go tool trace -pprof=sched), and, when the run
// ended, the allocation, block and mutex profiles. The returned function
// waits for them. It does nothing without -profile or for targets other
// than nodemesh-proxy.
func (b *bench) startProfile(t target, label string) func() {
	if b.profile == "" || t.pprof == "" {
		return func() {}
	}
	secs := max(int(b.duration.Seconds())-2, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		b.fetch(t, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), label+"-cpu.pb.gz")
	}()
	go func() {
		defer wg.Done()
		time.Sleep(time.Duration(secs/2) * time.Second)
		b.fetch(t, "/debug/pprof/trace?seconds=2", label+"-trace.out")
	}()
	return func() {
		wg.Wait()
		for _, kind := range []string{"allocs", "block", "mutex"} {
			b.fetch(t, "/debug/pprof/"+kind, label+"-"+kind+".pb.gz")
		}
	}
}

func (b *bench) fetch(t target, path, file string) {
	client := &http.Client{Timeout: b.duration + 30*time.Second}
	resp, err := client.Get("http://" + t.pprof + path)
	if err != nil {
		log.Printf("profiling %s: %v", t.name, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Printf("profiling %s: %s answered %s", t.name, path, resp.Status)
		return
	}
	f, err := os.Create(filepath.Join(b.profile, file))
	if err != nil {
		log.Printf("profiling %s: %v", t.name, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		log.Printf("profiling %s: %v", t.name, err)
	}
}
