// Package tests runs the compiled datapath programs with BPF_PROG_RUN on
// crafted IPv4 and IPv6 packets and checks each verdict, drop reason,
// counter and event against the policy tables written into their maps.
// Every test loads its own copy of the programs with empty maps and runs
// them from a private network namespace. Needs root.
package tests
