package tests

import (
	"testing"

	"github.com/cilium/ebpf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
)

// A packet must be judged by one version of the policy. The agent
// publishes each version as a whole table in nm_policy's only slot, so
// that holds as long as a program looks the slot up at most once per
// run and does every policy lookup in the table it got: two slot lookups
// could return two versions, and lookups straight into a table the agent
// writes row by row could each see a different moment of the update.
// Checked on the compiled programs: each loads nm_policy's address at most
// once. (A compiler keeping that address in a callee-saved register for
// a second lookup would slip through; clang reloads it for each call.)
func TestEachProgramLooksThePolicyUpOnce(t *testing.T) {
	load := map[string]func() (*ebpf.CollectionSpec, error){
		"workload": nmbpf.LoadWorkload, "netdev": nmbpf.LoadNetdev, "sock": nmbpf.LoadSock,
	}
	judged := 0
	for obj, fn := range load {
		spec, err := fn()
		if err != nil {
			t.Fatal(err)
		}
		for name, prog := range spec.Programs {
			refs := 0
			for _, ins := range prog.Instructions {
				if ins.Reference() == nmbpf.WorkloadMapNmPolicy {
					refs++
				}
			}
			if refs > 1 {
				t.Errorf("%s/%s refers to %s %d times: a packet could be judged by more than one policy version",
					obj, name, nmbpf.WorkloadMapNmPolicy, refs)
			}
			if refs == 1 {
				judged++
			}
		}
	}
	// from_workload, to_workload and from_netdev judge policy; if none
	// referred to the map, the check above would prove nothing.
	if judged != 3 {
		t.Fatalf("%d programs look the policy up, want 3 (from_workload, to_workload, from_netdev)", judged)
	}
}
