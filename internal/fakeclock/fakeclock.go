package fakeclock

import (
	"sync"
	"testing"
	"time"
)

// Clock is a manual clock: Now stands still until Advance, and the
// channels After returns fire when Advance reaches their time. Tests give
// its Now and After to the code under test, so back-off, holds and rate
// limits run without sleeping.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	changed chan struct{} // closed and replaced when timers change
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

// New returns a Clock standing at a fixed time (2026-11-27 12:00 UTC).
func New() *Clock { return NewAt(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)) }

// NewAt returns a Clock standing at t.
func NewAt(t time.Time) *Clock {
	return &Clock{now: t, changed: make(chan struct{})}
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Clock) After(d time.Duration) <-chan time.Time {
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

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock on by d and fires every timer due by then.
func (c *Clock) Advance(d time.Duration) {
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
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitPending blocks until at least n timers are pending: the code under
// test has reached the waits the test expects. It fails the test after 10 s.
func (c *Clock) WaitPending(t testing.TB, n int) {
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

// Instant is a clock that stands still and whose timers fire at
// once: every back-off is skipped and no time passes, so a retry budget
// gets nothing from its per-second floor. Holds never end on it; use it
// only where Chat answers no 429.
type Instant struct{ now time.Time }

func NewInstant() *Instant {
	return &Instant{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *Instant) Now() time.Time { return c.now }

func (c *Instant) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// Warp runs Factor times faster than real time from its start: a
// one-second Retry-After from the emulator waits a hundredth of a
// second at Factor 100. It is for end-to-end runs whose waits cannot be
// driven by hand, and keeps them to milliseconds.
type Warp struct {
	start, realStart time.Time
	Factor           float64
}

func NewWarp(factor float64) *Warp {
	return &Warp{start: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), realStart: time.Now(), Factor: factor}
}

func (c *Warp) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.realStart)) * c.Factor))
}

func (c *Warp) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	time.AfterFunc(time.Duration(float64(d)/c.Factor), func() { ch <- c.Now() })
	return ch
}

// Elapsed is the clock's time since it started.
func (c *Warp) Elapsed() time.Duration { return c.Now().Sub(c.start) }
