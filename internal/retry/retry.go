package retry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Backoff is the wait before the n-th retry (n from 1): base doubled for
// each retry before it, at most ceiling.
func Backoff(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// Jitter draws a wait from [d/2, d] ("equal jitter"): it spreads the
// retries of many callers that failed together while keeping at least
// half the back-off.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// UpTo draws a duration from [0, d].
func UpTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// maxRetryAfter caps a Retry-After the broker honours.
const maxRetryAfter = time.Hour

// After reads a Retry-After header, in seconds or as an HTTP date (then
// from now), capped at maxRetryAfter. ok is false when there is none or
// it cannot be read.
func After(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// budgetReserveWindow is how many seconds of the floor a Budget saves up.
const budgetReserveWindow = 10 * time.Second

// Budget is a token bucket of retries, as Finagle's RetryBudget: every
// call deposits ratio of a retry, time deposits floor retries a second,
// and a retry withdraws one. The balance is capped at floor × 10 s (at
// least 1), where it starts, so a quiet client can still retry. A Budget
// is safe for concurrent use.
type Budget struct {
	ratio, floor, reserve float64

	mu      sync.Mutex
	balance float64
	last    time.Time
}

// NewBudget returns a full budget as of now.
func NewBudget(ratio, floor float64, now time.Time) *Budget {
	reserve := max(floor*budgetReserveWindow.Seconds(), 1)
	return &Budget{ratio: ratio, floor: floor, reserve: reserve, balance: reserve, last: now}
}

func (b *Budget) refillLocked(now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.balance = min(b.reserve, b.balance+b.floor*dt.Seconds())
		b.last = now
	}
}

// Deposit is called once per call.
func (b *Budget) Deposit(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked(now)
	b.balance = min(b.reserve, b.balance+b.ratio)
}

// Withdraw reports whether a retry may go, spending one if so.
func (b *Budget) Withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked(now)
	// Deposits of 0.2 add up to a little under 1 in floating point.
	if b.balance < 1-1e-9 {
		return false
	}
	b.balance--
	return true
}
