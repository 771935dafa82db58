package main

import (
	"errors"
	"math"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// keepMemoryLimit restores the runtime's memory limit after the test.
func keepMemoryLimit(t *testing.T) int64 {
	t.Helper()
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	return before
}

// The fake limits are large (10 GiB) so that the limit set while the
// test runs cannot make the collector work harder for tests in parallel.
const fakeContainerLimit = 10 << 30

func TestSetMemoryLimit(t *testing.T) {
	t.Run("90% of the container's limit", func(t *testing.T) {
		keepMemoryLimit(t)
		// automemlimit's own variable does not change the share.
		t.Setenv("AUTOMEMLIMIT", "0.5")
		got, err := setMemoryLimit(memlimit.Limit(fakeContainerLimit))
		want := int64(fakeContainerLimit * 9 / 10)
		if err != nil || got != want {
			t.Fatalf("setMemoryLimit = %d, %v; want %d, nil", got, err, want)
		}
		if in := debug.SetMemoryLimit(-1); in != want {
			t.Errorf("runtime memory limit = %d, want %d", in, want)
		}
		if got := goMemoryLimit(); got != "9216MiB" {
			t.Errorf("goMemoryLimit() = %q, want 9216MiB", got)
		}
	})
	for _, env := range []string{"3GiB", ""} {
		t.Run("GOMEMLIMIT="+env+" wins", func(t *testing.T) {
			before := keepMemoryLimit(t)
			t.Setenv("GOMEMLIMIT", env)
			called := false
			got, err := setMemoryLimit(func() (uint64, error) { called = true; return fakeContainerLimit, nil })
			if got != 0 || err != nil || called {
				t.Fatalf("setMemoryLimit = %d, %v (provider called: %v); want 0, nil, no call", got, err, called)
			}
			if in := debug.SetMemoryLimit(-1); in != before {
				t.Errorf("runtime memory limit = %d, want it unchanged (%d)", in, before)
			}
		})
	}
	for _, tc := range []struct {
		name    string
		limit   uint64
		err     error
		wantErr bool
	}{
		{name: "no limit (memory.max is max)", err: memlimit.ErrNoLimit},
		{name: "a limit of 0", limit: 0},
		{name: "unreadable cgroup files", err: errors.New("failed to open /proc/self/mountinfo"), wantErr: true},
		{name: "not Linux", err: memlimit.ErrCgroupsNotSupported, wantErr: true},
	} {
		t.Run(tc.name+" leaves Go's default", func(t *testing.T) {
			keepMemoryLimit(t)
			debug.SetMemoryLimit(math.MaxInt64)
			got, err := setMemoryLimit(func() (uint64, error) { return tc.limit, tc.err })
			if got != 0 || (err != nil) != tc.wantErr {
				t.Fatalf("setMemoryLimit = %d, %v; want 0 and an error: %v", got, err, tc.wantErr)
			}
			if in := debug.SetMemoryLimit(-1); in != math.MaxInt64 {
				t.Errorf("runtime memory limit = %d, want none", in)
			}
			if got := goMemoryLimit(); got != "none" {
				t.Errorf("goMemoryLimit() = %q, want none", got)
			}
		})
	}
}
