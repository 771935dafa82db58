package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of the container's memory limit the Go
// runtime aims to stay under when GOMEMLIMIT is not set. The rest is room
// for what the runtime does not count (the binary's own pages, kernel
// buffers charged to the container) before the kernel's OOM killer acts.
const memoryLimitShare = 0.9

// containerMemoryLimit returns the memory limit (memory.max) of the cgroup
// v2 this process runs in, with root standing for "/" (tests use a
// directory), or 0 when there is none. It reads the cgroup's own file when
// /proc/self/cgroup names a path under /sys/fs/cgroup, else the one at
// /sys/fs/cgroup itself (a container with its own cgroup namespace sees
// its cgroup there). cgroup v1, which Kubernetes has deprecated, is not
// read.
//
// Why the broker cares: it runs with GOGC=200, which lets the heap grow to
// three times what is live between collections. A memory limit makes the
// collector work harder near the container's limit instead of letting the
// kernel kill the sidecar, and with it the pod's access to Chat.
func containerMemoryLimit(root string) (int64, error) {
	var candidates []string
	if b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup")); err == nil {
		for line := range strings.Lines(string(b)) {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok && p != "/" && !strings.Contains(p, "..") {
				candidates = append(candidates, filepath.Join(root, "sys/fs/cgroup", p, "memory.max"))
			}
		}
	}
	candidates = append(candidates, filepath.Join(root, "sys/fs/cgroup/memory.max"))
	for _, file := range candidates {
		b, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%s: %q is not a memory limit", file, v)
		}
		return n, nil
	}
	return 0, nil
}

// goMemoryLimit describes the Go runtime's memory limit for the log:
// "none", or the limit in MiB.
func goMemoryLimit() string {
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return "none"
	}
	return fmt.Sprintf("%.0fMiB", float64(limit)/(1<<20))
}
