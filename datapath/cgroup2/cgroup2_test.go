package cgroup2

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"hybrid", "25 18 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n33 25 0:29 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified"},
		{"unified", "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup"},
		{"a bind mount of a sub-cgroup is not the root", "40 23 0:26 /kubepods /mnt/pods rw - cgroup2 cgroup2 rw\n", ""},
		{"escaped mount point", `41 23 0:26 / /run/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n", "/run/my cgroup"},
		{"v1 only", "34 25 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", ""},
		{"garbage", "x - \n - cgroup2\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parse(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
