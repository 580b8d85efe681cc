// Package cgroup2 finds the cgroup v2 hierarchy of the caller's mount
// namespace, for the datapath (which attaches socket programs to a cgroup)
// and the lab (which runs each node's Pods in one).
package cgroup2

import (
	"fmt"
	"os"
	"strings"
)

// Mount returns where the cgroup v2 hierarchy is mounted in this mount
// namespace, at its root ("" when it is not: a cgroup v1 machine, or a
// namespace whose /sys was replaced, as `ip netns exec` does).
func Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading mounts: %w", err)
	}
	return parse(string(b)), nil
}

func parse(mountinfo string) string {
	for _, line := range strings.Split(mountinfo, "\n") {
		// "id parent major:minor root mountpoint options... - fstype source super-options"
		left, right, ok := strings.Cut(line, " - ")
		lf, rf := strings.Fields(left), strings.Fields(right)
		if ok && len(lf) >= 5 && len(rf) >= 1 && rf[0] == "cgroup2" && lf[3] == "/" {
			return unescape(lf[4])
		}
	}
	return ""
}

// unescape undoes mountinfo's octal escapes (\040 for a space, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}
