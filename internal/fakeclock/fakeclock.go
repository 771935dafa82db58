package fakeclock

import (
	"slices"
	"sync"
	"sync/atomic"
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
	asked   []time.Time   // every deadline After was asked for, in order
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
	c.asked = append(c.asked, c.now.Add(d))
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
	c.fireLocked()
}

// Move moves the clock by d (which may be negative) and fires nothing:
// time has passed but the runtime has not yet run the timers, the moment
// a test of "what if the timer is late" needs. Fire runs them.
func (c *Clock) Move(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Fire fires every timer due by the clock and returns how many. Timers
// whose reader has given up fire into their buffer, unread, as real ones
// would.
func (c *Clock) Fire() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fireLocked()
}

func (c *Clock) fireLocked() int {
	kept, n := c.timers[:0], 0
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
		n++
	}
	clear(c.timers[len(kept):])
	c.timers = kept
	c.notifyLocked()
	return n
}

// Asked returns every deadline After was asked for so far, in order.
func (c *Clock) Asked() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.asked)
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

// Skew is real time plus an offset the test moves: a second party's
// clock (the emulator's, say) run ahead, so that a token one side still
// trusts has expired at the other.
type Skew struct{ offset atomic.Int64 }

func (c *Skew) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Set makes the clock run d ahead of real time.
func (c *Skew) Set(d time.Duration) { c.offset.Store(int64(d)) }
