package retry

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The budget allows its reserve (10 s of the floor), then 20% of the
// calls, then the floor per second.
func TestRetryBudget(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewBudget(0.2, 10, now)
	n := 0
	for b.Withdraw(now) {
		n++
	}
	if n != 100 {
		t.Errorf("reserve allowed %d retries, want 100", n)
	}
	for range 50 {
		b.Deposit(now)
	}
	n = 0
	for b.Withdraw(now) {
		n++
	}
	if n != 10 {
		t.Errorf("50 calls allowed %d retries, want 10", n)
	}
	now = now.Add(time.Second)
	n = 0
	for b.Withdraw(now) {
		n++
	}
	if n != 10 {
		t.Errorf("a second allowed %d retries, want 10", n)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		desc string
		v    string
		want time.Duration
		ok   bool
	}{
		{"seconds", "2", 2 * time.Second, true},
		{"zero", "0", 0, true},
		{"empty", "", 0, false},
		{"negative", "-1", 0, false},
		{"not a number or date", "soon", 0, false},
		{"capped", "99999999999999", maxRetryAfter, true},
		{"date ahead", now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{"date past", now.Add(-5 * time.Second).Format(http.TimeFormat), 0, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := After(http.Header{"Retry-After": {tc.v}}, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Retry-After %q = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {8, 10 * time.Second}, {1000, 10 * time.Second}} {
		t.Run(fmt.Sprintf("attempt %d", tc.attempt), func(t *testing.T) {
			if got := Backoff(100*time.Millisecond, 10*time.Second, tc.attempt); got != tc.want {
				t.Errorf("backoff after attempt %d = %v, want %v", tc.attempt, got, tc.want)
			}
		})
	}
	if got := Backoff(time.Hour, time.Hour, 100); got != time.Hour {
		t.Errorf("a large base overflowed: %v", got)
	}
}
