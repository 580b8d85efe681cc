package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// labProgram is the program behind `nodemesh lab`. The lab builds network
// namespaces and links netlink; the CLI stays free of it and hands the
// subcommand over, as git does with its subcommands.
const labProgram = "nodemesh-lab"

// labCmd replaces this process with nodemesh-lab: found beside this
// program first (a build puts them in one directory), then on PATH. It
// returns only when that program cannot be started.
func labCmd(args []string) error {
	path, err := findLab()
	if err != nil {
		return err
	}
	if err := syscall.Exec(path, append([]string{labProgram}, args...), os.Environ()); err != nil {
		return fmt.Errorf("running %s: %w", path, err)
	}
	return nil
}

func findLab() (string, error) {
	if self, err := os.Executable(); err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			p := filepath.Join(filepath.Dir(self), labProgram)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	p, err := exec.LookPath(labProgram)
	if err != nil {
		return "", errors.New("nodemesh lab needs the nodemesh-lab program beside nodemesh or on PATH (make build puts it in bin/)")
	}
	return p, nil
}
