package datapath_test

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// benchPolicy returns rows allow rules spread over 100 enforced
// identities; the rules whose index is below changed get another port
// when variant is 1, so two variants differ in exactly changed rules.
func benchPolicy(rows, changed, variant int) model.Policy {
	p := model.Policy{Enforce: map[model.Identity]model.Enforcement{}}
	for i := 0; i < rows; i++ {
		subject := model.Identity(1000 + i%100)
		p.Enforce[subject] = model.EnforceIngress | model.EnforceEgress
		port := uint16(1 + i/100)
		if i < changed && variant == 1 {
			port += 30000
		}
		p.Entries = append(p.Entries, model.PolicyEntry{
			Subject: subject, Remote: model.Identity(5000 + i%7), Direction: model.Ingress,
			Proto: model.ProtoTCP, Port: port, Verdict: model.Allow,
		})
	}
	return p
}

// BenchmarkSyncPolicy measures one SyncPolicy call that changes a policy
// of the given size: by a few rules, or every rule.
func BenchmarkSyncPolicy(b *testing.B) {
	bed := testbed.New(b, testbed.Config{Workloads: 1})
	dp, err := datapath.New(
		datapath.WithPinDir(filepath.Join(testbed.BPFFS(b), "nodemesh")),
		datapath.WithNetNS(bed.Node.Path),
		datapath.WithMapSizes(datapath.MapSizes{Conntrack: 8192, Auth: 1024, IPCache: 1024, Policy: 32768, EventBytes: 1 << 18}),
		datapath.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Uninstall() })
	for _, tc := range []struct{ rows, changed int }{{100, 1}, {10000, 10}, {10000, 10000}} {
		b.Run(fmt.Sprintf("rows=%d/changed=%d", tc.rows, tc.changed), func(b *testing.B) {
			versions := []model.Policy{benchPolicy(tc.rows, tc.changed, 0), benchPolicy(tc.rows, tc.changed, 1)}
			if err := dp.SyncPolicy(versions[0]); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := dp.SyncPolicy(versions[(i+1)%2]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
