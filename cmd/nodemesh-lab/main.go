// Command nodemesh-lab runs the local cluster (package internal/lab): a
// real API server, nodes as network namespaces, Pods as processes. Users
// reach it as `nodemesh lab …`, which runs this program; it is a program of
// its own because building network namespaces links netlink, which the
// rest of the CLI does not need.
package main

import (
	"errors"
	"fmt"
	"os"
)

// exitError carries a command's exit status through to main.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	err := labCmd(os.Args[1:], os.Stdout, os.Stderr)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodemesh lab:", err)
		os.Exit(1)
	}
}
