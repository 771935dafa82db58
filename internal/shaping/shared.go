package shaping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Store keeps the per-space and per-project buckets and the holds that
// Chat's 429s set outside the broker, so that every broker of one app
// shares them (internal/sharedlimits keeps them on Redis). A bucket is
// named by its Key and paced by its Rate (a GCRA: Rate.Events per
// Rate.Per, bursts of Rate.Burst); brokers that share a Store should be
// given the same rates. A Store must be safe for concurrent use; the
// Shaper bounds each call with a context deadline (SharedConfig.Budget)
// and treats any error as "the store is unreachable".
type Store interface {
	// Take checks the hold on t.Hold and, when there is none, takes one
	// token from each of t.Buckets, all or none: when the longest wait
	// for a token is at most t.MaxWait, every token is taken and Taken.Wait
	// is that wait; otherwise nothing is taken and Taken.Over names the
	// bucket, with Taken.Wait its wait. One round trip.
	Take(ctx context.Context, t Take) (Taken, error)
	// Hold starts or extends the hold on key so that it lasts at least d
	// from now; it never shortens one.
	Hold(ctx context.Context, key string, d time.Duration) error
	// Return gives back the token a Take took from each of buckets, for
	// a call that did not go after all (its caller went away during its
	// wait, or it was refused); a bucket never gets back more than a
	// full burst.
	Return(ctx context.Context, buckets []Bucket) error
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}

// Bucket is one shared token bucket: the store's name for it and its rate.
type Bucket struct {
	Key  string // "project:message-writes", "space-writes:spaces/AAAA"
	Rate Rate
}

// Take is what Store.Take is asked: a hold to check and buckets to take a
// token from.
type Take struct {
	// Hold is the hold key: the call's space, or "project" for calls that
	// name none.
	Hold    string
	Buckets []Bucket
	// MaxWait is the longest a call may wait for its tokens.
	MaxWait time.Duration
}

// Taken is Store.Take's answer.
type Taken struct {
	// Held is how long the hold on Take.Hold lasts from now; when above 0
	// nothing was taken and the rest is unset.
	Held time.Duration
	// Wait is how long the call must wait for its tokens before it goes
	// (Over < 0: they are taken), or would have had to (Over >= 0).
	Wait time.Duration
	// Over is the index in Take.Buckets of the bucket whose wait is
	// longest and past MaxWait, with nothing taken; -1 when every token
	// was taken.
	Over int
}

// SharedConfig configures NewShared.
type SharedConfig struct {
	// Store is where the limits live; required.
	Store Store
	// Budget bounds each round trip to the store: past it (or on any
	// error) the call is paced by the broker's own limits instead. 0
	// means 5 ms.
	Budget time.Duration
	// Failures is how many store calls in a row must fail before the
	// broker stops asking the store and paces every call with its own
	// limits until the store answers a probe again; one slow answer (a
	// pause of the garbage collector, a busy CPU) then costs one call its
	// shared pacing, not a second of the fleet's. 0 means 3.
	Failures int
	// Probe is how often, while the store is unreachable, the broker asks
	// it again. 0 means 1 s.
	Probe time.Duration
	// Brokers is how many brokers share the store's limits (the app's
	// replicas). While the store is unreachable, each broker paces at
	// 1/Brokers of every per-space and per-project rate, and of its burst
	// (at least 1), so that the fleet stays near the limits it shares;
	// per-caller limits are each broker's own and do not change. 0 or 1:
	// each paces at the full rates, and N brokers may then send up to N
	// times them until the store is back.
	Brokers int
	// Logger is told once when the broker falls back to its local limits
	// and once when it goes back; nil discards.
	Logger *slog.Logger
	// OnChange, if set, is called with true when the broker goes back to
	// the store and false when it falls back (for a gauge).
	OnChange func(shared bool)
	// After is the probe's clock (time.After when nil).
	After func(time.Duration) <-chan time.Time
}

// MaxSharedBrokers bounds SharedConfig.Brokers.
const MaxSharedBrokers = 10_000

// Defaults of SharedConfig.
const (
	DefaultSharedBudget   = 5 * time.Millisecond
	defaultSharedProbe    = time.Second
	defaultSharedFailures = 3
)

// Shared puts a Shaper's per-space and per-project buckets and its holds
// in a Store shared by every broker of the app, and falls back to the
// broker's own when the store is slow or down: no call fails because of
// the store. Give it to Config.Shared. It is safe for concurrent use;
// Close stops its probe.
type Shared struct {
	cfg       SharedConfig
	log       *slog.Logger
	after     func(time.Duration) <-chan time.Time
	up        atomic.Bool
	fallbacks atomic.Int64
	errors    atomic.Int64
	inARow    atomic.Int64 // store calls failed since the last success

	mu      sync.Mutex
	probing bool
	closed  chan struct{}
	stop    sync.Once
}

// NewShared returns a Shared over cfg.Store, which it starts out using.
func NewShared(cfg SharedConfig) (*Shared, error) {
	if cfg.Store == nil {
		return nil, errors.New("shaping: SharedConfig.Store is nil")
	}
	if cfg.Brokers < 0 || cfg.Brokers > MaxSharedBrokers {
		return nil, fmt.Errorf("shaping: SharedConfig.Brokers %d: want 1 to %d (0 means 1)", cfg.Brokers, MaxSharedBrokers)
	}
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultSharedBudget
	}
	if cfg.Probe <= 0 {
		cfg.Probe = defaultSharedProbe
	}
	if cfg.Failures <= 0 {
		cfg.Failures = defaultSharedFailures
	}
	s := &Shared{cfg: cfg, log: cfg.Logger, after: cfg.After, closed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.after == nil {
		s.after = time.After
	}
	s.up.Store(true)
	return s, nil
}

// Up reports whether calls are paced by the store (true) or by the
// broker's own limits after the store failed (false).
func (s *Shared) Up() bool { return s.up.Load() }

// Fallbacks is the number of times the broker fell back to its own limits.
func (s *Shared) Fallbacks() int64 { return s.fallbacks.Load() }

// Errors is the number of store calls that failed or ran past the budget.
func (s *Shared) Errors() int64 { return s.errors.Load() }

// Close stops the probe; the Store is the caller's to close.
func (s *Shared) Close() { s.stop.Do(func() { close(s.closed) }) }

// take asks the store, within the budget; ok is false when the call must
// be paced locally.
func (s *Shared) take(ctx context.Context, t Take) (Taken, bool) {
	if !s.up.Load() {
		return Taken{}, false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Budget)
	defer cancel()
	got, err := s.cfg.Store.Take(ctx, t)
	if err != nil {
		s.fail(err)
		return Taken{}, false
	}
	s.inARow.Store(0)
	return got, true
}

// hold tells the store of a hold, within the budget.
func (s *Shared) hold(key string, d time.Duration) {
	if !s.up.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Budget)
	defer cancel()
	if err := s.cfg.Store.Hold(ctx, key, d); err != nil {
		s.fail(err)
		return
	}
	s.inARow.Store(0)
}

// giveBack returns the tokens of a call that did not go, within the
// budget (the call's own context may be done already).
func (s *Shared) giveBack(ctx context.Context, buckets []Bucket) {
	if len(buckets) == 0 || !s.up.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Budget)
	defer cancel()
	if err := s.cfg.Store.Return(ctx, buckets); err != nil {
		s.fail(err)
		return
	}
	s.inARow.Store(0)
}

// fail counts a failed store call; after Failures in a row it switches
// to local limits, saying so once, and starts the probe that switches
// back.
func (s *Shared) fail(err error) {
	s.errors.Add(1)
	if s.inARow.Add(1) < int64(s.cfg.Failures) {
		return
	}
	if !s.up.CompareAndSwap(true, false) {
		return
	}
	s.fallbacks.Add(1)
	if errors.Is(err, context.DeadlineExceeded) {
		err = errBudget{s.cfg.Budget}
	}
	s.log.Warn("shared limits: the store did not answer within its budget; pacing with this broker's own limits until it does",
		"err", err.Error(), "budget", s.cfg.Budget.String())
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(false)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.probing {
		s.probing = true
		go s.probe()
	}
}

type errBudget struct{ d time.Duration }

func (e errBudget) Error() string { return "no answer within " + e.d.String() }

// probe pings the store every Probe until it answers within the budget,
// then switches back to it.
func (s *Shared) probe() {
	for {
		select {
		case <-s.closed:
			return
		case <-s.after(s.cfg.Probe):
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Budget)
		err := s.cfg.Store.Ping(ctx)
		cancel()
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.probing = false
		s.inARow.Store(0)
		s.up.Store(true)
		s.mu.Unlock()
		s.log.Info("shared limits: the store answers again; pacing with the limits every broker shares")
		if s.cfg.OnChange != nil {
			s.cfg.OnChange(true)
		}
		return
	}
}

// Pace makes a call of m to space pass the opt-in per-space and
// per-project buckets (Buckets), once past any hold on its space
// (WaitHold). Without Config.Shared it is Throttle of those buckets.
// With it, the hold and the buckets that every broker of the app shares
// are checked in one round trip to the store: a hold another broker set
// after Chat's 429 is mirrored here and waited for in this broker's
// queue, and the call waits for its tokens as Throttle does. When the
// store does not answer within its budget, the broker's own buckets pace
// the call. When the call does not go after all (its caller goes away
// during its wait, or the cap on waiting calls refuses it), its tokens
// are given back.
func (s *Shaper) Pace(ctx context.Context, deadline time.Time, m *chatapi.Method, space string) error {
	limits, buckets := s.buckets(m, space)
	if s.shared == nil {
		return s.Throttle(ctx, deadline, limits)
	}
	key := holdKey(space)
	var passes []func()
	defer func() {
		for _, p := range passes {
			p()
		}
	}()
	for range maxSharedRounds {
		now := s.now()
		t, ok := s.shared.take(ctx, Take{Hold: key, Buckets: buckets, MaxWait: max(0, min(s.wait, deadline.Sub(now)))})
		if !ok {
			return s.Throttle(ctx, deadline, limits)
		}
		switch {
		case t.Held > 0:
			// Another broker (or this one) holds the space: wait in
			// this broker's queue for it, then ask again.
			s.holds.mirror(key, now.Add(t.Held))
			pass, err := s.holds.wait(ctx, key, deadline, s.waiting)
			if err != nil {
				return err
			}
			passes = append(passes, pass)
			continue
		case t.Over >= 0 && t.Over < len(limits):
			return limits[t.Over].refusal(t.Wait)
		case t.Wait <= 0:
			return nil
		}
		if !s.waiting.take() {
			s.shared.giveBack(ctx, buckets)
			return s.waiting.refusal()
		}
		defer s.waiting.done()
		select {
		case <-s.after(t.Wait):
			return nil
		case <-ctx.Done():
			s.shared.giveBack(ctx, buckets)
			return ErrCancelled
		}
	}
	// The store kept answering "held" after each local wait: its clock
	// and this broker's disagree by more than a hold. Refuse rather than
	// spin.
	return holdRefusal(key, s.holds.remaining(key))
}

// maxSharedRounds bounds how often Pace asks the store again after
// waiting for a hold.
const maxSharedRounds = 8

// mirror makes key held until at least until, as another broker's hold
// (seen in the shared store) says, without counting it as this broker's
// own hold or changing its back-off.
func (h *holds) mirror(key string, until time.Time) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entryLocked(key, now)
	if until.After(e.until) {
		if e.last == 0 {
			e.last = until.Sub(now)
		}
		e.until = until
	}
}

// SharedUp reports whether the Shaper paces calls with shared limits now:
// false without Config.Shared or while the store is unreachable.
func (s *Shaper) SharedUp() bool { return s.shared != nil && s.shared.Up() }
