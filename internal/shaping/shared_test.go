package shaping

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

// fakeStore answers Take from a script of answers and records what it
// was asked.
type fakeStore struct {
	mu      sync.Mutex
	answers []Taken
	err     error
	takes   []Take
	holds   map[string]time.Duration
	returns [][]Bucket
}

func (f *fakeStore) Return(_ context.Context, b []Bucket) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.returns = append(f.returns, b)
	return nil
}

func (f *fakeStore) returned() [][]Bucket {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]Bucket(nil), f.returns...)
}

func (f *fakeStore) Take(_ context.Context, t Take) (Taken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.takes = append(f.takes, t)
	if f.err != nil {
		return Taken{}, f.err
	}
	if len(f.answers) == 0 {
		return Taken{Over: -1}, nil
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return a, nil
}

func (f *fakeStore) Hold(_ context.Context, key string, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.holds == nil {
		f.holds = map[string]time.Duration{}
	}
	f.holds[key] = d
	return nil
}

func (f *fakeStore) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeStore) asked() []Take {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Take(nil), f.takes...)
}

func newSharedShaper(t *testing.T, clk *fakeclock.Clock, st Store) (*Shaper, *Shared) {
	t.Helper()
	sh, err := NewShared(SharedConfig{Store: st, After: clk.After})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sh.Close)
	s, err := New(Config{
		Now: clk.Now, After: clk.After, Wait: 2 * time.Second, Shared: sh,
		SpaceWrites: Rate{Events: 60, Per: time.Minute},
		Project:     map[chatapi.QuotaClass]Rate{chatapi.QuotaMessageWrites: {Events: 3000, Per: time.Minute, Burst: 50}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, sh
}

// Pace asks the store once per call, with the hold key, both buckets and
// the longest wait, and does what it answers.
func TestPaceShared(t *testing.T) {
	create, _ := chatapi.Lookup("spaces.messages.create")
	list, _ := chatapi.Lookup("spaces.list")
	tests := []struct {
		name      string
		m         *chatapi.Method
		space     string
		answers   []Taken
		wantTake  Take
		wantWait  time.Duration // the call waits this long on the clock
		wantLimit string        // the refusal's limit metadata; "" for none
	}{
		{"taken", create, "spaces/A", nil,
			Take{Hold: "spaces/A", MaxWait: 2 * time.Second, Buckets: []Bucket{
				{Key: "space-writes:spaces/A", Rate: Rate{Events: 60, Per: time.Minute}},
				{Key: "project:message-writes", Rate: Rate{Events: 3000, Per: time.Minute, Burst: 50}}}},
			0, ""},
		{"no space: the project's hold", list, "", nil,
			Take{Hold: "project", MaxWait: 2 * time.Second}, 0, ""},
		{"waits for its token", create, "spaces/A", []Taken{{Wait: 700 * time.Millisecond, Over: -1}},
			Take{}, 700 * time.Millisecond, ""},
		{"over the space bucket", create, "spaces/A", []Taken{{Wait: 5 * time.Second, Over: 0}},
			Take{}, 0, "space-writes"},
		{"over the project bucket", create, "spaces/A", []Taken{{Wait: 5 * time.Second, Over: 1}},
			Take{}, 0, "project"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New()
			st := &fakeStore{answers: tc.answers}
			s, _ := newSharedShaper(t, clk, st)
			done := make(chan error, 1)
			go func() { done <- s.Pace(context.Background(), clk.Now().Add(time.Minute), tc.m, tc.space) }()
			if tc.wantWait > 0 {
				clk.WaitPending(t, 1)
				if got := clk.Asked()[0].Sub(clk.Now()); got != tc.wantWait {
					t.Errorf("waits %v, want %v", got, tc.wantWait)
				}
				clk.Advance(tc.wantWait)
			}
			err := <-done
			var ref *refusal.Error
			switch {
			case tc.wantLimit == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantLimit != "" && (!errors.As(err, &ref) || ref.Code != http.StatusTooManyRequests || ref.Metadata["limit"] != tc.wantLimit || ref.RetryAfter != 5*time.Second):
				t.Fatalf("got %v, want 429 of limit %s with Retry-After 5s", err, tc.wantLimit)
			}
			asked := st.asked()
			if len(asked) != 1 {
				t.Fatalf("%d round trips, want 1", len(asked))
			}
			if tc.wantTake.Hold != "" && !equalTake(asked[0], tc.wantTake) {
				t.Errorf("asked %+v, want %+v", asked[0], tc.wantTake)
			}
		})
	}
}

func equalTake(a, b Take) bool {
	if a.Hold != b.Hold || a.MaxWait != b.MaxWait || len(a.Buckets) != len(b.Buckets) {
		return false
	}
	for i := range a.Buckets {
		if a.Buckets[i] != b.Buckets[i] {
			return false
		}
	}
	return true
}

// A hold another broker set is mirrored here: the call waits for it in
// this broker's queue, asks again when it ends, and a later call sees
// the hold locally (HoldRemaining) for its retries.
func TestPaceSharedHold(t *testing.T) {
	clk := fakeclock.New()
	st := &fakeStore{answers: []Taken{{Held: 3 * time.Second, Over: -1}}}
	s, _ := newSharedShaper(t, clk, st)
	create, _ := chatapi.Lookup("spaces.messages.create")
	done := make(chan error, 1)
	go func() { done <- s.Pace(context.Background(), clk.Now().Add(time.Minute), create, "spaces/A") }()
	clk.WaitPending(t, 2) // the hold's end and the call's deadline
	if got := s.HoldRemaining("spaces/A"); got != 3*time.Second {
		t.Errorf("hold mirrored for %v, want 3s", got)
	}
	if s.Holds() != 0 {
		t.Errorf("a mirrored hold counted as this broker's own: Holds %d", s.Holds())
	}
	clk.Advance(3 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(st.asked()); n != 2 {
		t.Errorf("%d round trips, want 2 (before and after the hold)", n)
	}
	// A hold that outlasts the deadline is refused at once.
	st.answers = []Taken{{Held: time.Hour, Over: -1}}
	err := s.Pace(context.Background(), clk.Now().Add(time.Minute), create, "spaces/A")
	var ref *refusal.Error
	if !errors.As(err, &ref) || ref.Metadata["limit"] != "chat-429" {
		t.Errorf("hold past the deadline: %v, want a chat-429 refusal", err)
	}
}

// Chat's 429 seen here is a hold every broker sees: Hold puts it in the
// store too.
func TestHoldGoesToStore(t *testing.T) {
	clk := fakeclock.New()
	st := &fakeStore{}
	s, _ := newSharedShaper(t, clk, st)
	s.Hold("spaces/A", 4*time.Second)
	s.Hold("", 2*time.Second)
	for key, want := range map[string]time.Duration{"spaces/A": 4 * time.Second, "project": 2 * time.Second} {
		if got := st.holds[key]; got != want {
			t.Errorf("store hold %s = %v, want %v", key, got, want)
		}
	}
}

// When the store fails, the call is paced by the local buckets: the
// local per-space bucket (60/m, bursts of 1) refuses the second call at
// once when no wait is allowed.
func TestPaceSharedFallsBack(t *testing.T) {
	clk := fakeclock.New()
	st := &fakeStore{err: errors.New("connection refused")}
	changes := make(chan bool, 4)
	sh, err := NewShared(SharedConfig{Store: st, After: clk.After, OnChange: func(up bool) { changes <- up }})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	s, err := New(Config{Now: clk.Now, After: clk.After, Wait: -1, Shared: sh, SpaceWrites: Rate{Events: 60, Per: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	create, _ := chatapi.Lookup("spaces.messages.create")
	deadline := clk.Now().Add(time.Minute)
	if err := s.Pace(context.Background(), deadline, create, "spaces/A"); err != nil {
		t.Fatalf("first call with the store down: %v", err)
	}
	// The local bucket (a burst of 1) is spent: the next calls are
	// refused by it, while the store is still asked twice more.
	var ref *refusal.Error
	for i := range 3 {
		if err := s.Pace(context.Background(), deadline, create, "spaces/A"); !errors.As(err, &ref) || ref.Metadata["limit"] != "space-writes" {
			t.Fatalf("call %d: %v, want the local space bucket's 429", i+2, err)
		}
		if want := i < 1; s.SharedUp() != want {
			t.Fatalf("after %d failures: shared %v, want %v (the third in a row turns it off)", i+2, s.SharedUp(), want)
		}
	}
	if <-changes {
		t.Fatal("told shared after the store failed")
	}
	if n := len(st.asked()); n != 3 {
		t.Errorf("%d takes sent to the store, want 3 (then it is known down)", n)
	}
	// The probe brings it back once the store answers.
	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	clk.WaitPending(t, 1)
	clk.Advance(time.Second)
	if !<-changes || !s.SharedUp() {
		t.Fatal("not back after a probe got through")
	}
	if err := s.Pace(context.Background(), deadline, create, "spaces/A"); err != nil {
		t.Fatalf("after the store is back: %v", err)
	}
	if n := len(st.asked()); n != 4 {
		t.Errorf("%d takes, want 4", n)
	}
}

// With Brokers, the store gets the full rates, while the broker's own
// buckets, which pace it alone while the store is down, get its share:
// 1/Brokers of the rate and of the burst.
func TestPaceSharedFallbackShare(t *testing.T) {
	full := Rate{Events: 60, Per: time.Minute, Burst: 4}
	create, _ := chatapi.Lookup("spaces.messages.create")
	for _, tc := range []struct {
		brokers    int
		wantPassed int // calls through the local bucket at once
		wantNote   bool
	}{
		{0, 4, false},
		{1, 4, false},
		{2, 2, true},
		{4, 1, true},
		{10, 1, true},
	} {
		t.Run(fmt.Sprint(tc.brokers, " brokers"), func(t *testing.T) {
			clk := fakeclock.New()
			st := &fakeStore{}
			sh, err := NewShared(SharedConfig{Store: st, After: clk.After, Brokers: tc.brokers, Failures: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer sh.Close()
			s, err := New(Config{Now: clk.Now, After: clk.After, Wait: -1, Shared: sh, SpaceWrites: full})
			if err != nil {
				t.Fatal(err)
			}
			deadline := clk.Now().Add(time.Minute)
			if err := s.Pace(context.Background(), deadline, create, "spaces/A"); err != nil {
				t.Fatal(err)
			}
			if got := st.asked()[0].Buckets[0].Rate; got != full {
				t.Errorf("the store was asked for %+v, want the full %+v", got, full)
			}

			st.mu.Lock()
			st.err = errors.New("connection refused")
			st.mu.Unlock()
			passed := 0
			var ref *refusal.Error
			for range 12 {
				err := s.Pace(context.Background(), deadline, create, "spaces/A")
				if err == nil {
					passed++
					continue
				}
				if !errors.As(err, &ref) {
					t.Fatal(err)
				}
			}
			if passed != tc.wantPassed {
				t.Errorf("%d calls passed the local bucket at once, want %d", passed, tc.wantPassed)
			}
			if note := strings.Contains(ref.Message, fmt.Sprintf("%d brokers share it", tc.brokers)); note != tc.wantNote {
				t.Errorf("refusal %q: names the share %v, want %v", ref.Message, note, tc.wantNote)
			}
			// The next token comes after Brokers times the rate's interval.
			wantRetry := time.Second * time.Duration(max(1, tc.brokers))
			if ref.RetryAfter != wantRetry {
				t.Errorf("Retry-After %v, want %v", ref.RetryAfter, wantRetry)
			}
		})
	}
	for _, n := range []int{-1, MaxSharedBrokers + 1} {
		if _, err := NewShared(SharedConfig{Store: &fakeStore{}, Brokers: n}); err == nil {
			t.Errorf("Brokers %d accepted", n)
		}
	}
}

// A call that took its tokens from the store but did not go gives them
// back: its caller went away during the wait, or the cap on waiting
// calls refused it. A call that went, or was refused before anything
// was taken, gives nothing back.
func TestPaceSharedGivesBack(t *testing.T) {
	create, _ := chatapi.Lookup("spaces.messages.create")
	waitAnswer := []Taken{{Wait: 700 * time.Millisecond, Over: -1}}
	for _, tc := range []struct {
		name       string
		answers    []Taken
		maxWaiting int
		cancel     bool // the caller goes away during the wait
		wantErr    string
		wantReturn bool
	}{
		{"the caller goes away", waitAnswer, 0, true, "CANCELLED", true},
		{"no room to wait", waitAnswer, -1, false, "OVERLOADED", true},
		{"waited and went", waitAnswer, 0, false, "", false},
		{"over a bucket: nothing taken", []Taken{{Wait: 5 * time.Second, Over: 0}}, 0, false, "SPACE_RATE_LIMITED", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New()
			st := &fakeStore{answers: tc.answers}
			sh, err := NewShared(SharedConfig{Store: st, After: clk.After})
			if err != nil {
				t.Fatal(err)
			}
			defer sh.Close()
			s, err := New(Config{Now: clk.Now, After: clk.After, Wait: 2 * time.Second, Shared: sh, MaxWaiting: tc.maxWaiting,
				SpaceWrites: Rate{Events: 60, Per: time.Minute}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Pace(ctx, clk.Now().Add(time.Minute), create, "spaces/A") }()
			if tc.answers[0].Over < 0 && tc.maxWaiting >= 0 {
				clk.WaitPending(t, 1)
				if tc.cancel {
					cancel()
				} else {
					clk.Advance(700 * time.Millisecond)
				}
			}
			err = <-done
			var ref *refusal.Error
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (!errors.As(err, &ref) || ref.Reason != tc.wantErr):
				t.Fatalf("got %v, want %s", err, tc.wantErr)
			}
			got := st.returned()
			if !tc.wantReturn {
				if len(got) != 0 {
					t.Errorf("gave back %v, want nothing", got)
				}
				return
			}
			if want := st.asked()[0].Buckets; len(got) != 1 || !slices.Equal(got[0], want) {
				t.Errorf("gave back %v, want the buckets taken, %v", got, want)
			}
		})
	}
}
