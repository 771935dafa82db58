package shaping

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/refusal"
	"github.com/chat-broker/chat-broker/internal/retry"
)

// Config is how calls are paced before they reach Chat. Per-caller limits
// come from the policy, through CallerLimit; everything here is optional
// except the adaptive hold, which is always on.
type Config struct {
	// Wait is how long a call may wait for a token of a full bucket
	// (per caller, space or project) before it is answered 429 with
	// Retry-After. Waiting briefly smooths bursts instead of refusing
	// them. 0 means 1 s; negative means never wait.
	Wait time.Duration
	// HoldBackoff is how long a space is held after Chat answered 429
	// without Retry-After: the first time, between HoldBackoff/2 and
	// HoldBackoff (jittered); doubling each time Chat answers 429 again
	// soon after a hold, up to 32×. 0 means 1 s.
	HoldBackoff time.Duration
	// SpaceReads and SpaceWrites, when set, limit the calls to each space
	// (keyed by space name; calls that name no space are not counted).
	// Chat's own per-space limits are shared by every app in the space,
	// so these only keep this broker below them. Zero: off.
	SpaceReads, SpaceWrites Rate
	// Project limits calls per Chat quota class (chatapi.QuotaClass,
	// "message-writes", …) for the whole broker, mirroring Chat's
	// per-project quotas. Empty: off.
	Project map[chatapi.QuotaClass]Rate
	// MaxInFlight caps the calls admitted at once (Admit); 0 means 256.
	MaxInFlight int
	// MaxWaiting caps the calls waiting at once, for an in-flight slot,
	// a bucket's token or the end of a hold; past it a call is refused
	// with 503 OVERLOADED at once. 0 means 1024; negative means none may
	// wait.
	MaxWaiting int
	// Now and After are the clock (time.Now and time.After when nil).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// OnInFlight and OnWaiting, if set, are told the number of calls in
	// flight and waiting whenever it changes (for gauges).
	OnInFlight func(int)
	OnWaiting  func(int64)
	// Shared, when set, keeps the per-space and per-project buckets and
	// the holds in a store every broker of the app shares (see Pace);
	// the buckets above are then this broker's fallback when the store
	// is unreachable. Per-caller limits stay with each broker.
	Shared *Shared
}

// Defaults of Config.
const (
	defaultLimitWait   = time.Second
	defaultHoldBackoff = time.Second
	defaultMaxInFlight = 256
	defaultMaxWaiting  = 1024
	// maxCallerLimiters bounds the per-caller buckets kept; the least
	// recently used caller's bucket is dropped (and starts full again).
	maxCallerLimiters = 1 << 14
)

// Shaper paces calls: per-caller, per-space and per-project token
// buckets, holds after Chat's 429s, and a cap on the calls in flight and
// waiting. It is safe for concurrent use.
type Shaper struct {
	cfg         Config
	wait        time.Duration
	now         func() time.Time
	after       func(time.Duration) <-chan time.Time
	project     map[chatapi.QuotaClass]Limit
	spaceReads  *lru.Cache[string, Limit]
	spaceWrites *lru.Cache[string, Limit]
	callers     *lru.Cache[callerKey, []Limit]
	holds       *holds
	slots       chan struct{}
	waiting     *waitCap
	shared      *Shared
	brokers     int    // SharedConfig.Brokers: the local buckets pace at 1/brokers
	shareNote   string // what refusals add when brokers > 1
}

// New returns a Shaper for cfg, or an error naming a bad setting.
func New(cfg Config) (*Shaper, error) {
	s := &Shaper{cfg: cfg, now: cfg.Now, after: cfg.After, project: map[chatapi.QuotaClass]Limit{}, shared: cfg.Shared, brokers: 1}
	if cfg.Shared != nil && cfg.Shared.cfg.Brokers > 1 {
		s.brokers = cfg.Shared.cfg.Brokers
		s.shareNote = fmt.Sprintf("; %d brokers share it, and while the shared store is unreachable each paces at 1/%d of it (--shared-limits-brokers)", s.brokers, s.brokers)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.after == nil {
		s.after = time.After
	}
	switch {
	case cfg.Wait == 0:
		s.wait = defaultLimitWait
	case cfg.Wait > 0:
		s.wait = cfg.Wait
	}
	if s.cfg.HoldBackoff <= 0 {
		s.cfg.HoldBackoff = defaultHoldBackoff
	}
	known := quotaClasses()
	for class, rt := range cfg.Project {
		if !known[class] {
			return nil, fmt.Errorf("shaping: Config.Project: unknown quota class %q", class)
		}
		if !rt.IsZero() {
			s.project[class] = Limit{lim: rt.share(s.brokers).limiter(), reason: reasonRateLimited,
				msg:  fmt.Sprintf("calls are over the broker's project limit of %s for %s (--project-limit%s)", rt, class, s.shareNote),
				meta: map[string]string{"quota": string(class), "limit": "project"}}
		}
	}
	s.spaceReads = newSpaceLimiters(cfg.SpaceReads)
	s.spaceWrites = newSpaceLimiters(cfg.SpaceWrites)
	s.callers, _ = lru.New[callerKey, []Limit](maxCallerLimiters)
	s.holds = &holds{now: s.now, after: s.after, base: s.cfg.HoldBackoff, m: map[string]*holdEntry{}}
	inFlight := cfg.MaxInFlight
	switch {
	case inFlight < 0:
		return nil, fmt.Errorf("shaping: MaxInFlight %d is negative", inFlight)
	case inFlight == 0:
		inFlight = defaultMaxInFlight
	}
	s.slots = make(chan struct{}, inFlight)
	waiting := cfg.MaxWaiting
	switch {
	case waiting < 0:
		waiting = 0
	case waiting == 0:
		waiting = defaultMaxWaiting
	}
	s.waiting = &waitCap{max: int64(waiting), onChange: cfg.OnWaiting}
	return s, nil
}

// Holds is the number of holds Chat's 429s have started.
func (s *Shaper) Holds() int64 { return s.holds.count.Load() }

// InFlight is the number of calls admitted now.
func (s *Shaper) InFlight() int64 { return int64(len(s.slots)) }

// Waiting is the number of calls waiting now.
func (s *Shaper) Waiting() int64 { return s.waiting.n.Load() }

// Rate is a token-bucket limit: Events per Per, with bursts of up to
// Burst. The zero Rate means no limit.
type Rate struct {
	Events int
	Per    time.Duration
	// Burst is how many calls may go at once; 0 means one second's worth
	// of the rate, at least 1 (as the policy's limits.burst).
	Burst int
}

// IsZero reports whether r limits nothing.
func (r Rate) IsZero() bool { return r.Events <= 0 || r.Per <= 0 }

func (r Rate) burst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return DefaultBurst(r.Events, r.Per)
}

// DefaultBurst is the burst of a limit of events per per that names none:
// one second's worth, rounded up, at least 1. The policy's per-caller
// limits and the broker's own flags share it.
func DefaultBurst(events int, per time.Duration) int {
	if events <= 0 || per <= 0 {
		return 1
	}
	return int(max(1, (int64(events)*int64(time.Second)+int64(per)-1)/int64(per)))
}

// share is what one of n brokers paces at alone: 1/n of r, and of its
// burst (at least 1).
func (r Rate) share(n int) Rate {
	if n <= 1 || r.IsZero() {
		return r
	}
	return Rate{Events: r.Events, Per: r.Per * time.Duration(n), Burst: max(1, (r.burst()+n-1)/n)}
}

func (r Rate) limiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(r.Events)/r.Per.Seconds()), r.burst())
}

// String formats r as ParseRate reads it.
func (r Rate) String() string {
	if r.IsZero() {
		return "off"
	}
	unit := r.Per.String()
	switch r.Per {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	}
	s := strconv.Itoa(r.Events) + "/" + unit
	if r.Burst > 0 {
		s += ":" + strconv.Itoa(r.Burst)
	}
	return s
}

// ParseRate reads a rate written "N/s", "N/m" or "N/h", optionally with
// a burst, "N/m:B": 60/m is 60 calls per minute in bursts of 1 (one
// second's worth); 60/m:10 allows bursts of 10. "" and "off" are the zero
// Rate.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return Rate{}, nil
	}
	spec, burst, hasBurst := strings.Cut(s, ":")
	n, unit, ok := strings.Cut(spec, "/")
	events, err := strconv.Atoi(n)
	if !ok || err != nil || events <= 0 {
		return Rate{}, fmt.Errorf("rate %q: want calls per unit such as 60/m or 15/s, optionally with a burst (60/m:10)", s)
	}
	r := Rate{Events: events}
	switch unit {
	case "s":
		r.Per = time.Second
	case "m":
		r.Per = time.Minute
	case "h":
		r.Per = time.Hour
	default:
		return Rate{}, fmt.Errorf("rate %q: unit %q: want s, m or h", s, unit)
	}
	if hasBurst {
		if r.Burst, err = strconv.Atoi(burst); err != nil || r.Burst <= 0 {
			return Rate{}, fmt.Errorf("rate %q: burst %q: want a whole number above 0", s, burst)
		}
	}
	return r, nil
}

// ParseProjectLimits reads per-project limits written
// "CLASS=RATE,CLASS=RATE", e.g. "message-writes=3000/m,space-writes=60/m",
// where CLASS is a chatapi.QuotaClass of the catalog.
func ParseProjectLimits(s string) (map[chatapi.QuotaClass]Rate, error) {
	out := map[chatapi.QuotaClass]Rate{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		class, spec, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("project limit %q: want CLASS=RATE, e.g. message-writes=3000/m", part)
		}
		qc := chatapi.QuotaClass(strings.TrimSpace(class))
		if !quotaClasses()[qc] {
			return nil, fmt.Errorf("project limit %q: unknown quota class %q; known: %s", part, qc, strings.Join(quotaClassNames(), ", "))
		}
		if _, dup := out[qc]; dup {
			return nil, fmt.Errorf("project limit %q: %s is given twice", part, qc)
		}
		r, err := ParseRate(spec)
		if err != nil {
			return nil, err
		}
		out[qc] = r
	}
	return out, nil
}

// quotaClasses are the classes the catalog charges methods to.
func quotaClasses() map[chatapi.QuotaClass]bool {
	set := map[chatapi.QuotaClass]bool{}
	for _, m := range chatapi.Methods() {
		set[m.Quota] = true
	}
	return set
}

func quotaClassNames() []string {
	var names []string
	for c := range quotaClasses() {
		names = append(names, string(c))
	}
	sort.Strings(names)
	return names
}

// Limit is one token bucket a call must pass, with what to tell the
// caller when it is over. Its metadata goes into every refusal it makes
// and is never changed.
type Limit struct {
	lim    *rate.Limiter
	reason string
	msg    string
	meta   map[string]string
}

// Throttle takes a token from each bucket at once. When the longest
// wait is within the bound (Shaping.Wait, and the call's deadline) the
// call waits for it; otherwise every reservation is given back and the
// call is answered 429 with Retry-After, before anything goes upstream.
func (s *Shaper) Throttle(ctx context.Context, deadline time.Time, limits []Limit) error {
	if len(limits) == 0 {
		return nil
	}
	now := s.now()
	var worst time.Duration
	var worstLimit *Limit
	rs := make([]*rate.Reservation, 0, len(limits))
	cancel := func(at time.Time) {
		for _, r := range rs {
			r.CancelAt(at)
		}
	}
	for i := range limits {
		r := limits[i].lim.ReserveN(now, 1)
		if !r.OK() {
			cancel(now)
			return limits[i].refusal(time.Minute)
		}
		rs = append(rs, r)
		if d := r.DelayFrom(now); d > worst || worstLimit == nil {
			worst, worstLimit = d, &limits[i]
		}
	}
	if worst <= 0 {
		return nil
	}
	if worst > min(s.wait, deadline.Sub(now)) {
		cancel(now)
		return worstLimit.refusal(worst)
	}
	if !s.waiting.take() {
		cancel(now)
		return s.waiting.refusal()
	}
	defer s.waiting.done()
	select {
	case <-s.after(worst):
		return nil
	case <-ctx.Done():
		cancel(s.now())
		return ErrCancelled
	}
}

func (l *Limit) refusal(retryAfter time.Duration) *refusal.Error {
	ref := refusal.New(http.StatusTooManyRequests, l.reason, fmt.Sprintf("%s; retry after %s", l.msg, retryAfter.Round(time.Millisecond)))
	ref.RetryAfter = max(retryAfter, time.Second)
	ref.Metadata = l.meta
	return ref
}

// buckets returns the buckets a call of m to space must pass after any
// hold on its space (the opt-in per-space and per-project limits) and,
// for each, its name and rate in a shared Store (nil without
// Config.Shared).
func (s *Shaper) buckets(m *chatapi.Method, space string) ([]Limit, []Bucket) {
	var out []Limit
	var shared []Bucket
	if space != "" {
		kind, r, lims := "write", s.cfg.SpaceWrites, s.spaceWrites
		if m.ReadOnly {
			kind, r, lims = "read", s.cfg.SpaceReads, s.spaceReads
		}
		if lims != nil {
			l, ok := lims.Get(space)
			if !ok {
				l = Limit{lim: r.share(s.brokers).limiter(), reason: reasonSpaceRateLimited,
					msg:  fmt.Sprintf("calls to %s are over the broker's per-space %s limit of %s (--space-%s-limit%s)", space, kind, r, kind, s.shareNote),
					meta: map[string]string{"space": space, "limit": "space-" + kind + "s"}}
				if prev, ok, _ := lims.PeekOrAdd(space, l); ok {
					l = prev // a concurrent first call added it: one bucket per space
				}
			}
			out = append(out, l)
			if s.shared != nil {
				shared = append(shared, Bucket{Key: "space-" + kind + "s:" + space, Rate: r})
			}
		}
	}
	if l, ok := s.project[m.Quota]; ok {
		out = append(out, l)
		if s.shared != nil {
			shared = append(shared, Bucket{Key: "project:" + string(m.Quota), Rate: s.cfg.Project[m.Quota]})
		}
	}
	return out, shared
}

// Reasons of the shaping refusals.
const (
	reasonRateLimited      = "RATE_LIMITED"
	reasonSpaceRateLimited = "SPACE_RATE_LIMITED"
	reasonOverloaded       = "OVERLOADED"
)

// maxSpaceLimiters bounds the per-space buckets kept; the least recently
// used space loses its bucket (and so starts again with a full one).
const maxSpaceLimiters = 10_000

func newSpaceLimiters(r Rate) *lru.Cache[string, Limit] {
	if r.IsZero() {
		return nil
	}
	c, _ := lru.New[string, Limit](maxSpaceLimiters) // only fails on a size <= 0
	return c
}

// callerKey names a caller's bucket by the caller's name and limits, so a
// policy reload that changes a caller's limits starts a new bucket, while
// one that leaves them alone keeps the bucket (and what the caller has
// spent).
type callerKey struct {
	name             string
	perMinute, burst int
}

// CallerLimit returns the bucket of caller name, allowed perMinute calls
// a minute in bursts of burst (both above 0), or none when perMinute is
// 0 or less. The bucket, with its message, is made once per caller and
// limits and handed out as it is: callers must not change it.
func (s *Shaper) CallerLimit(name string, perMinute, burst int) []Limit {
	if perMinute <= 0 {
		return nil
	}
	key := callerKey{name, perMinute, max(burst, 1)}
	if l, ok := s.callers.Get(key); ok {
		return l
	}
	l := []Limit{{lim: rate.NewLimiter(rate.Limit(float64(perMinute)/60), key.burst), reason: reasonRateLimited,
		msg:  fmt.Sprintf("caller %s is over its limit of %d calls per minute, bursts of %d (policy: limits of caller %s)", name, perMinute, key.burst, name),
		meta: map[string]string{"caller": name, "limit": "caller"}}}
	if prev, ok, _ := s.callers.PeekOrAdd(key, l); ok {
		return prev
	}
	return l
}

// Hold starts or extends the hold on space ("" for calls that name none,
// which share one hold, the project's) after Chat answered 429: for
// retryAfter when Chat sent one, else for a jittered back-off that
// doubles while Chat keeps answering 429. It returns how long the hold
// lasts from now.
//
// With Config.Shared the hold is also put in the shared store, where
// every broker of the app sees it on its next call to space.
func (s *Shaper) Hold(space string, retryAfter time.Duration) time.Duration {
	d := s.holds.set(holdKey(space), retryAfter)
	if s.shared != nil {
		s.shared.hold(holdKey(space), d)
	}
	return d
}

// HoldRemaining is how long space is still held.
func (s *Shaper) HoldRemaining(space string) time.Duration {
	return s.holds.remaining(holdKey(space))
}

// WaitHold lets a call to space go at once when it is not held and
// nobody waits for it; otherwise it queues the call until the hold ends,
// or refuses it (429) when the hold outlasts deadline. A call that waited
// must call pass once it has gone through (or given up), which lets the
// next in the queue go, so the queue leaves in arrival order. capped
// counts the call among those waiting (MaxWaiting); a retry already
// holding a slot passes false.
func (s *Shaper) WaitHold(ctx context.Context, space string, deadline time.Time, capped bool) (pass func(), err error) {
	var tickets *waitCap
	if capped {
		tickets = s.waiting
	}
	return s.holds.wait(ctx, holdKey(space), deadline, tickets)
}

// holdKey is what a hold applies to: the call's space, or the whole
// project for calls that name none.
func holdKey(space string) string {
	if space == "" {
		return projectHoldKey
	}
	return space
}

const projectHoldKey = "project"

// holds pause the calls to a space after Chat answered 429 for it,
// instead of letting every caller hammer it. Callers that arrive during
// a hold wait in a queue, if the hold ends within their deadline, and are
// let go one by one in arrival order when it ends; the others are
// answered 429 at once.
type holds struct {
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	base  time.Duration
	count atomic.Int64 // holds started, for Stats

	mu sync.Mutex
	m  map[string]*holdEntry
}

type holdEntry struct {
	until   time.Time     // no call goes before this
	last    time.Duration // length of the latest hold
	strikes int           // 429s in a row, each soon after the previous hold
	queue   []*holdWaiter // FIFO
	// releasing is set while the queue is being let go: the head was
	// released and has not yet passed the turn on. Newcomers queue
	// behind, so nobody overtakes a caller that waited.
	releasing bool
	armed     bool // a goroutine waits for until to release the queue
}

type holdWaiter struct{ ready chan struct{} }

// maxHoldStrikes caps the doubling of holds without Retry-After (32×).
const maxHoldStrikes = 5

// entryLocked returns key's entry, made (after a sweep of ended ones)
// if there is none. h.mu is held.
func (h *holds) entryLocked(key string, now time.Time) *holdEntry {
	e := h.m[key]
	if e == nil {
		h.sweepLocked(now)
		e = &holdEntry{}
		h.m[key] = e
	}
	return e
}

// set starts or extends the hold on key after a 429: for retryAfter when
// Chat sent one, else for a jittered back-off that doubles while Chat
// keeps answering 429. It returns how long the hold lasts from now.
func (h *holds) set(key string, retryAfter time.Duration) time.Duration {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entryLocked(key, now)
	if !e.until.IsZero() && now.Before(e.until.Add(e.last)) {
		e.strikes = min(e.strikes+1, maxHoldStrikes)
	} else {
		e.strikes = 0
	}
	d := retryAfter
	if d <= 0 {
		d = retry.Jitter(h.base << e.strikes)
	}
	if until := now.Add(d); until.After(e.until) {
		if !now.Before(e.until) {
			h.count.Add(1) // a new hold, not an extension
		}
		e.until, e.last = until, d
	}
	return e.until.Sub(now)
}

// remaining is how long key is still held.
func (h *holds) remaining(key string) time.Duration {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[key]; e != nil && now.Before(e.until) {
		return e.until.Sub(now)
	}
	return 0
}

// sweepLocked drops entries that hold nothing and whose back-off memory
// has run out, once the map has grown.
func (h *holds) sweepLocked(now time.Time) {
	if len(h.m) < 64 {
		return
	}
	for k, e := range h.m {
		if len(e.queue) == 0 && !e.releasing && !e.armed && !now.Before(e.until.Add(e.last)) {
			delete(h.m, k)
		}
	}
}

// wait lets a call go at once when key is not held and nobody waits for
// it; otherwise it queues the call until the hold ends, or answers 429
// when the hold outlasts the call's deadline. A call that waited must
// call pass when it has gone through (or given up), which lets the next
// one in the queue go: so the queue leaves in arrival order. tickets, if
// not nil, caps how many calls wait at once.
func (h *holds) wait(ctx context.Context, key string, deadline time.Time, tickets *waitCap) (pass func(), err error) {
	now := h.now()
	h.mu.Lock()
	e := h.m[key]
	if e == nil || (!now.Before(e.until) && len(e.queue) == 0 && !e.releasing) {
		h.mu.Unlock()
		return func() {}, nil
	}
	if now.Before(e.until) && deadline.Before(e.until) {
		left := e.until.Sub(now)
		h.mu.Unlock()
		return nil, holdRefusal(key, left)
	}
	if tickets != nil && !tickets.take() {
		h.mu.Unlock()
		return nil, tickets.refusal()
	}
	if tickets != nil {
		defer tickets.done()
	}
	w := &holdWaiter{ready: make(chan struct{})}
	e.queue = append(e.queue, w)
	if now.Before(e.until) {
		h.armLocked(key, e, now)
	}
	h.mu.Unlock()

	pass = sync.OnceFunc(func() { h.handoff(key) })
	select {
	case <-w.ready:
		return pass, nil
	case <-ctx.Done():
	case <-h.after(deadline.Sub(now)):
	}
	h.mu.Lock()
	if i := slices.Index(e.queue, w); i >= 0 {
		e.queue = slices.Delete(e.queue, i, i+1)
		left := e.until.Sub(h.now())
		h.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ErrCancelled
		}
		return nil, holdRefusal(key, left)
	}
	h.mu.Unlock()
	// Released just as it gave up: pass the turn on.
	if ctx.Err() != nil {
		pass()
		return nil, ErrCancelled
	}
	return pass, nil
}

// armLocked starts the goroutine that releases key's queue when its hold
// ends, unless one runs.
func (h *holds) armLocked(key string, e *holdEntry, now time.Time) {
	if e.armed {
		return
	}
	e.armed = true
	ch := h.after(e.until.Sub(now))
	go func() {
		<-ch
		h.expire(key)
	}()
}

// rearmIfHeldLocked reports whether key's hold is still on at now; if
// it is and callers wait, it arms their release for its end.
func (h *holds) rearmIfHeldLocked(key string, e *holdEntry, now time.Time) bool {
	if !now.Before(e.until) {
		return false
	}
	if len(e.queue) > 0 {
		h.armLocked(key, e, now)
	}
	return true
}

// expire runs when a hold may have ended: it re-arms for an extended
// hold, or lets the head of the queue go.
func (h *holds) expire(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[key]
	if e == nil {
		return
	}
	e.armed = false
	if h.rearmIfHeldLocked(key, e, h.now()) {
		return
	}
	if e.releasing || len(e.queue) == 0 {
		return
	}
	e.releasing = true
	releaseHeadLocked(e)
}

// handoff is a released caller passing the turn to the next in the
// queue, unless a new hold has begun meanwhile.
func (h *holds) handoff(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[key]
	if e == nil {
		return
	}
	switch {
	case h.rearmIfHeldLocked(key, e, h.now()):
		e.releasing = false
	case len(e.queue) == 0:
		e.releasing = false
	default:
		releaseHeadLocked(e)
	}
}

func releaseHeadLocked(e *holdEntry) {
	w := e.queue[0]
	e.queue = e.queue[1:]
	close(w.ready)
}

func holdRefusal(key string, left time.Duration) *refusal.Error {
	if left <= 0 {
		// The hold is over but the callers queued ahead of this one did
		// not all go within its deadline.
		ref := refusal.New(http.StatusTooManyRequests, reasonSpaceRateLimited, "calls queued after Chat answered 429 (quota exceeded) did not all go within this call's deadline; retry shortly")
		ref.RetryAfter = time.Second
		ref.Metadata = map[string]string{"limit": "chat-429"}
		if key != projectHoldKey {
			ref.Metadata["space"] = key
		}
		return ref
	}
	if key == projectHoldKey {
		ref := refusal.New(http.StatusTooManyRequests, reasonRateLimited, fmt.Sprintf("Chat answered 429 (quota exceeded) for this project; chat-broker holds such calls for %s", left.Round(time.Millisecond)))
		ref.RetryAfter = max(left, time.Second)
		ref.Metadata = map[string]string{"limit": "chat-429"}
		return ref
	}
	ref := refusal.New(http.StatusTooManyRequests, reasonSpaceRateLimited, fmt.Sprintf("Chat answered 429 (quota exceeded) for %s; chat-broker holds calls to it for %s", key, left.Round(time.Millisecond)))
	ref.RetryAfter = max(left, time.Second)
	ref.Metadata = map[string]string{"space": key, "limit": "chat-429"}
	return ref
}

// waitCap counts the calls waiting (for a bucket's token, a hold or an
// in-flight slot) and caps them: past the cap a call is refused at once
// instead of joining an unbounded queue.
type waitCap struct {
	n   atomic.Int64
	max int64
	// onChange, if set, reports the number waiting (a gauge).
	onChange func(int64)
}

func (w *waitCap) take() bool {
	n := w.n.Add(1)
	if n > w.max {
		w.n.Add(-1)
		return false
	}
	if w.onChange != nil {
		w.onChange(n)
	}
	return true
}

func (w *waitCap) done() {
	n := w.n.Add(-1)
	if w.onChange != nil {
		w.onChange(n)
	}
}

func (w *waitCap) refusal() *refusal.Error {
	ref := refusal.New(http.StatusServiceUnavailable, reasonOverloaded, fmt.Sprintf("chat-broker already has %d calls waiting (--max-waiting); retry shortly", w.max))
	ref.RetryAfter = time.Second
	return ref
}

// Admit takes one of the MaxInFlight slots for calls to Chat, waiting
// for one (within the call's deadline, among at most MaxWaiting waiting
// calls) when all are taken. release gives the slot back.
func (s *Shaper) Admit(ctx context.Context, deadline time.Time) (release func(), err error) {
	release = func() {
		<-s.slots
		s.inFlightChanged()
	}
	select {
	case s.slots <- struct{}{}:
		s.inFlightChanged()
		return release, nil
	default:
	}
	if !s.waiting.take() {
		return nil, s.waiting.refusal()
	}
	defer s.waiting.done()
	left := deadline.Sub(s.now())
	if left <= 0 {
		return nil, s.slotsRefusal()
	}
	select {
	case s.slots <- struct{}{}:
		s.inFlightChanged()
		return release, nil
	case <-ctx.Done():
		return nil, ErrCancelled
	case <-s.after(left):
		return nil, s.slotsRefusal()
	}
}

func (s *Shaper) inFlightChanged() {
	if s.cfg.OnInFlight != nil {
		s.cfg.OnInFlight(len(s.slots))
	}
}

func (s *Shaper) slotsRefusal() *refusal.Error {
	ref := refusal.New(http.StatusServiceUnavailable, reasonOverloaded, fmt.Sprintf("chat-broker is at its limit of %d concurrent calls to Chat (--max-in-flight) and none finished within the call's deadline; retry shortly", cap(s.slots)))
	ref.RetryAfter = time.Second
	return ref
}

// ErrCancelled is a wait cut short because the caller went away.
var ErrCancelled = refusal.New(499, "CANCELLED", "the caller went away while the call waited")
