package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitShare is the part of the container's memory limit the Go
// runtime aims to stay under when GOMEMLIMIT is not set. The rest is room
// for what the runtime does not count (the binary's own pages, kernel
// buffers charged to the container) before the kernel's OOM killer acts.
const memoryLimitShare = 0.9

// containerMemoryLimit reports the memory limit of the cgroup this
// process runs in: automemlimit reads cgroup v2 (memory.max, the lowest
// limit on the way up the hierarchy) and cgroup v1
// (memory.limit_in_bytes), finding them through /proc/self/mountinfo and
// /proc/self/cgroup. No limit is memlimit.ErrNoLimit; outside Linux it is
// an error.
var containerMemoryLimit memlimit.Provider = memlimit.FromCgroup

// setMemoryLimit sets the Go runtime's memory limit to memoryLimitShare
// of the limit provider reports, and returns it. It leaves the runtime's
// limit alone, returning 0, when GOMEMLIMIT is set (even empty: the
// runtime then applies it), when provider reports no limit, and when
// provider fails, which it returns. It reads no other variable:
// automemlimit's AUTOMEMLIMIT, which memlimit.Set would honour, has no
// effect here.
//
// Why the broker cares: it runs with GOGC=200, which lets the heap grow to
// three times what is live between collections. A memory limit makes the
// collector work harder near the container's limit instead of letting the
// kernel kill the sidecar, and with it the pod's access to Chat.
func setMemoryLimit(provider memlimit.Provider) (int64, error) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0, nil
	}
	limit, err := memlimit.ApplyRatio(provider, memoryLimitShare)()
	switch {
	case errors.Is(err, memlimit.ErrNoLimit), err == nil && limit == 0:
		return 0, nil
	case err != nil:
		return 0, err
	}
	n := int64(min(limit, math.MaxInt64))
	debug.SetMemoryLimit(n)
	return n, nil
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
