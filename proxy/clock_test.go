package proxy

import (
	"sync"
	"testing"
	"time"
)

// The test clocks live in an internal test file so that the external
// tests (package proxy_test) can use them as proxy.FakeClock and the
// internal ones as FakeClock.

// FakeClock is a manual clock: Now stands still until Advance, and the
// channels After returns fire when Advance reaches their time. Tests use
// it as Config.Now and Config.After, so back-off, holds and rate limits
// run without sleeping.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	changed chan struct{} // closed and replaced when timers change
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func NewFakeClock() *FakeClock {
	return &FakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.notifyLocked()
	return ch
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock on by d and fires every timer due by then.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
	c.notifyLocked()
}

// Pending is the number of timers not yet fired (including those of
// waits given up since).
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitPending blocks until at least n timers are pending: the proxy has
// reached the waits the test expects. It fails the test after 10 s.
func (c *FakeClock) WaitPending(t testing.TB, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got, ch := len(c.timers), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("%d timers pending after 10s, want %d", got, n)
		}
	}
}

// InstantClock is a clock that stands still and whose timers fire at
// once: every back-off is skipped and no time passes, so a retry budget
// gets nothing from its per-second floor. Holds never end on it; use it
// only where Chat answers no 429.
type InstantClock struct{ now time.Time }

func NewInstantClock() *InstantClock {
	return &InstantClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *InstantClock) Now() time.Time { return c.now }

func (c *InstantClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// WarpClock runs Factor times faster than real time from its start: a
// one-second Retry-After from the emulator waits a hundredth of a
// second at Factor 100. It is for end-to-end runs whose waits cannot be
// driven by hand, and keeps them to milliseconds.
type WarpClock struct {
	start, realStart time.Time
	Factor           float64
}

func NewWarpClock(factor float64) *WarpClock {
	return &WarpClock{start: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), realStart: time.Now(), Factor: factor}
}

func (c *WarpClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.realStart)) * c.Factor))
}

func (c *WarpClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	time.AfterFunc(time.Duration(float64(d)/c.Factor), func() { ch <- c.Now() })
	return ch
}

// Elapsed is the clock's time since it started.
func (c *WarpClock) Elapsed() time.Duration { return c.Now().Sub(c.start) }
