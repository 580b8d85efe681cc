package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nodemesh/nodemesh/proxylib"
)

// loopsFlag is --event-loops: "auto" (the default) or a count.
type loopsFlag struct {
	auto bool
	n    int
}

func (f *loopsFlag) String() string {
	if f.auto {
		return "auto"
	}
	return strconv.Itoa(f.n)
}

func (f *loopsFlag) Set(s string) error {
	if s == "auto" {
		*f = loopsFlag{auto: true}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > proxylib.MaxEventLoops {
		return fmt.Errorf("want auto or a count 0..%d", proxylib.MaxEventLoops)
	}
	*f = loopsFlag{n: n}
	return nil
}

// count is the number of loops to run with the given --workers: auto
// resolves to proxylib.DefaultEventLoops; a count above 0 is refused with
// workers, whose single-P processes would each need a loop of their own
// (loops live in one process).
func (f *loopsFlag) count(workers int) (int, error) {
	if f.auto {
		return proxylib.DefaultEventLoops(workers), nil
	}
	if f.n > 0 && workers > 1 {
		return 0, errors.New("--event-loops above 0 and --workers above 1 exclude each other: set one of them")
	}
	return f.n, nil
}
