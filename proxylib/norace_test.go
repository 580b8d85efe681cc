//go:build !race

package proxylib_test

const raceEnabled = false
