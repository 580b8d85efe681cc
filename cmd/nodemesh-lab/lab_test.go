package main

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/internal/lab"
)

func TestExpandAgentArgs(t *testing.T) {
	n := lab.Node{Name: "node-2", IP: netip.MustParseAddr("10.250.0.12"), PodCIDR: netip.MustParsePrefix("10.244.2.0/24"),
		Netns: "nmtb-1-1-node-2", NetnsPath: "/run/netns/nmtb-1-1-node-2", StateDir: "/s/nodes/node-2", PinDir: "/s/bpffs/nmtb-1-1/node-2", Cgroup: "/nodemesh-lab/nmtb-1-1/node-2"}
	got := expandAgentArgs([]string{"--policy", "--datapath-netns={netnsPath}", "--node-ips={ip}", "--datapath-pin-dir={pinDir}", "--flow-log={netns}.{node}.log",
		"--datapath-cgroup={cgroup}"}, n)
	want := []string{"--policy", "--datapath-netns=/run/netns/nmtb-1-1-node-2", "--node-ips=10.250.0.12", "--datapath-pin-dir=/s/bpffs/nmtb-1-1/node-2", "--flow-log=nmtb-1-1-node-2.node-2.log",
		"--datapath-cgroup=/nodemesh-lab/nmtb-1-1/node-2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestLabUsageErrors(t *testing.T) {
	var out, errOut strings.Builder
	var ee *exitError
	if err := labCmd(nil, &out, &errOut); !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(errOut.String(), "nodemesh lab up") {
		t.Fatalf("no subcommand: %v, %q", err, errOut.String())
	}
	if err := labCmd([]string{"fly"}, &out, &errOut); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("unknown subcommand: %v", err)
	}
	if err := labExec(nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("exec without a Pod: %v", err)
	}
	out.Reset()
	if err := labImages(&out); err != nil || !strings.Contains(out.String(), "quay.io/cilium/starwars") || !strings.Contains(out.String(), "deathstar") ||
		!strings.Contains(out.String(), "mesh-echo (exec: client = mesh-client)") {
		t.Fatalf("images: %v\n%s", err, out.String())
	}
}
