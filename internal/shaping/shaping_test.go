package shaping

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

func newTestHolds(clk *fakeclock.Clock) *holds {
	return &holds{now: clk.Now, after: clk.After, base: time.Second, m: map[string]*holdEntry{}}
}

// Callers queued behind a hold go in the order they arrived, including
// one that arrives while the queue is being let go; one that gives up
// leaves the line without stopping it.
func TestHoldReleasesInOrder(t *testing.T) {
	clk := fakeclock.New()
	h := newTestHolds(clk)
	if got := h.set("spaces/A", 2*time.Second); got != 2*time.Second {
		t.Fatalf("hold of %v, want 2s", got)
	}
	deadline := clk.Now().Add(time.Minute)
	const n = 5
	order := make(chan int, n+1)
	ctxs := make([]context.CancelFunc, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		ctxs[i] = cancel
		go func() {
			pass, err := h.wait(ctx, "spaces/A", deadline, nil)
			if err != nil {
				order <- -i - 1 // gave up
				return
			}
			order <- i
			if i == 1 {
				// A newcomer while the queue is let go waits its turn.
				go func() {
					p, err := h.wait(context.Background(), "spaces/A", deadline, nil)
					if err == nil {
						order <- n
						p()
					}
				}()
				clk.WaitPending(t, n+1) // the deadlines of the first n, and its own
			}
			pass()
		}()
		clk.WaitPending(t, i+2) // the deadline of each, and the hold's own timer
	}
	ctxs[3]()
	if got := <-order; got != -4 {
		t.Fatalf("first out %d, want caller 3 giving up", got)
	}
	clk.Advance(2 * time.Second)
	for _, want := range []int{0, 1, 2, 4, n} {
		if got := <-order; got != want {
			t.Fatalf("released %d, want %d", got, want)
		}
	}
	// The line is empty: the next caller goes at once.
	pass, err := h.wait(context.Background(), "spaces/A", deadline, nil)
	if err != nil {
		t.Fatal(err)
	}
	pass()
}

// A hold that outlasts a call's deadline is answered 429 at once; a new
// 429 during a hold extends it; without Retry-After the hold is a
// jittered back-off that doubles while Chat keeps answering 429.
func TestHoldDeadlinesAndBackoff(t *testing.T) {
	clk := fakeclock.New()
	h := newTestHolds(clk)
	h.set("spaces/A", 3*time.Second)
	_, err := h.wait(context.Background(), "spaces/A", clk.Now().Add(time.Second), nil)
	var ref *refusal.Error
	if !errors.As(err, &ref) || ref.Code != http.StatusTooManyRequests || ref.Reason != reasonSpaceRateLimited || ref.RetryAfter != 3*time.Second {
		t.Fatalf("wait past the deadline: %v, want 429 SPACE_RATE_LIMITED with Retry-After 3s", err)
	}
	if _, err := h.wait(context.Background(), "project", clk.Now(), nil); err != nil {
		t.Errorf("another key is held: %v", err)
	}

	h = newTestHolds(clk)
	first := h.set("spaces/B", 0)
	if first < 500*time.Millisecond || first > time.Second {
		t.Errorf("first hold without Retry-After %v, want between 0.5s and 1s", first)
	}
	clk.Advance(first)
	second := h.set("spaces/B", 0) // soon after: doubles
	if second < time.Second || second > 2*time.Second {
		t.Errorf("second hold %v, want between 1s and 2s", second)
	}
	clk.Advance(time.Hour)
	if third := h.set("spaces/B", 0); third > time.Second {
		t.Errorf("a hold long after the last %v, want back to at most 1s", third)
	}
	if h.count.Load() != 3 {
		t.Errorf("%d holds counted, want 3", h.count.Load())
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{in: "60/m", want: Rate{Events: 60, Per: time.Minute}},
		{in: "15/s", want: Rate{Events: 15, Per: time.Second}},
		{in: "3000/m:50", want: Rate{Events: 3000, Per: time.Minute, Burst: 50}},
		{in: "10/h", want: Rate{Events: 10, Per: time.Hour}},
		{in: "", want: Rate{}},
		{in: "off", want: Rate{}},
		{in: "60", wantErr: true},
		{in: "60/min", wantErr: true},
		{in: "0/s", wantErr: true},
		{in: "-1/s", wantErr: true},
		{in: "x/s", wantErr: true},
		{in: "60/m:0", wantErr: true},
		{in: "60/m:x", wantErr: true},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseRate(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
			if err == nil && !got.IsZero() {
				if back, _ := ParseRate(got.String()); back != got {
					t.Errorf("ParseRate(%q).String() = %q does not read back", tc.in, got.String())
				}
			}
		})
	}
	if b := (Rate{Events: 60, Per: time.Minute}).burst(); b != 1 {
		t.Errorf("burst of 60/m = %d, want 1", b)
	}
	if b := (Rate{Events: 15, Per: time.Second}).burst(); b != 15 {
		t.Errorf("burst of 15/s = %d, want 15", b)
	}
}

func TestParseProjectLimits(t *testing.T) {
	got, err := ParseProjectLimits("message-writes=3000/m, space-writes=60/m:5")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[chatapi.QuotaMessageWrites] != (Rate{3000, time.Minute, 0}) || got[chatapi.QuotaSpaceWrites] != (Rate{60, time.Minute, 5}) {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{"message-writes", "nonsense=1/s", "message-writes=1/s,message-writes=2/s", "message-writes=fast"} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseProjectLimits(bad); err == nil {
				t.Errorf("ParseProjectLimits(%q) succeeded", bad)
			}
		})
	}
}
