package proxy

import (
	"context"
	"fmt"
	"math"
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
	"github.com/chat-broker/chat-broker/policy"
)

// Shaping is how the proxy paces calls before they reach Chat (DESIGN.md
// step 6). Per-caller limits come from the policy; everything here is
// optional except the adaptive hold, which is always on.
type Shaping struct {
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
}

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
	return max(1, int(math.Ceil(float64(r.Events)/r.Per.Seconds())))
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
		return Rate{}, fmt.Errorf("proxy: rate %q: want calls per unit such as 60/m or 15/s, optionally with a burst (60/m:10)", s)
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
		return Rate{}, fmt.Errorf("proxy: rate %q: unit %q: want s, m or h", s, unit)
	}
	if hasBurst {
		if r.Burst, err = strconv.Atoi(burst); err != nil || r.Burst <= 0 {
			return Rate{}, fmt.Errorf("proxy: rate %q: burst %q: want a whole number above 0", s, burst)
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
			return nil, fmt.Errorf("proxy: project limit %q: want CLASS=RATE, e.g. message-writes=3000/m", part)
		}
		qc := chatapi.QuotaClass(strings.TrimSpace(class))
		if !quotaClasses()[qc] {
			return nil, fmt.Errorf("proxy: project limit %q: unknown quota class %q; known: %s", part, qc, strings.Join(quotaClassNames(), ", "))
		}
		if _, dup := out[qc]; dup {
			return nil, fmt.Errorf("proxy: project limit %q: %s is given twice", part, qc)
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

// limit is one token bucket a call must pass, with what to tell the
// caller when it is over.
type limit struct {
	lim    *rate.Limiter
	reason string
	msg    string
	meta   map[string]string
}

// throttle takes a token from each bucket at once. When the longest
// wait is within the bound (Shaping.Wait, and the call's deadline) the
// call waits for it; otherwise every reservation is given back and the
// call is answered 429 with Retry-After, before anything goes upstream.
func (p *Proxy) throttle(ctx context.Context, deadline time.Time, limits []limit) error {
	if len(limits) == 0 {
		return nil
	}
	now := p.now()
	var worst time.Duration
	var worstLimit *limit
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
	if worst > min(p.limitWait, deadline.Sub(now)) {
		cancel(now)
		return worstLimit.refusal(worst)
	}
	if !p.waiting.take() {
		cancel(now)
		return p.overloaded()
	}
	defer p.waiting.done()
	select {
	case <-p.after(worst):
		return nil
	case <-ctx.Done():
		cancel(p.now())
		return errCancelled
	}
}

func (l *limit) refusal(retryAfter time.Duration) *refusal.Error {
	ref := refusal.New(http.StatusTooManyRequests, l.reason, fmt.Sprintf("%s; retry after %s", l.msg, retryAfter.Round(time.Millisecond)))
	ref.RetryAfter = max(retryAfter, time.Second)
	ref.Metadata = l.meta
	return ref
}

// limitsFor returns the buckets a call must pass after any hold on its
// space: the opt-in per-space and per-project limits.
func (p *Proxy) limitsFor(m *chatapi.Method, space string) []limit {
	var out []limit
	if space != "" {
		kind, r, lims := "write", p.shaping.SpaceWrites, p.spaceWrites
		if m.ReadOnly {
			kind, r, lims = "read", p.shaping.SpaceReads, p.spaceReads
		}
		if lims != nil {
			lim, ok := lims.Get(space)
			if !ok {
				lim = r.limiter()
				lims.Add(space, lim)
			}
			out = append(out, limit{lim: lim, reason: reasonSpaceRateLimited,
				msg:  fmt.Sprintf("calls to %s are over the broker's per-space %s limit of %s (--space-%s-limit)", space, kind, r, kind),
				meta: map[string]string{"space": space, "limit": "space-" + kind + "s"}})
		}
	}
	if lim := p.project[m.Quota]; lim != nil {
		out = append(out, limit{lim: lim, reason: reasonRateLimited,
			msg:  fmt.Sprintf("%s calls are over the broker's project limit of %s for %s (--project-limit)", m.ID, p.shaping.Project[m.Quota], m.Quota),
			meta: map[string]string{"quota": string(m.Quota), "limit": "project"}})
	}
	return out
}

// Reasons of the shaping refusals (metrics.go counts them as rate
// limiting).
const (
	reasonRateLimited      = "RATE_LIMITED"
	reasonSpaceRateLimited = "SPACE_RATE_LIMITED"
	reasonOverloaded       = "OVERLOADED"
)

// maxSpaceLimiters bounds the per-space buckets kept; the least recently
// used space loses its bucket (and so starts again with a full one).
const maxSpaceLimiters = 10_000

func newSpaceLimiters(r Rate) *lru.Cache[string, *rate.Limiter] {
	if r.IsZero() {
		return nil
	}
	c, _ := lru.New[string, *rate.Limiter](maxSpaceLimiters) // only fails on a size <= 0
	return c
}

// callerLimiters are the per-caller token buckets of the policy's
// limits. They are keyed by caller name and limits, so a policy reload
// that changes a caller's limits starts a new bucket, while one that
// leaves them alone keeps the bucket (and what the caller has spent).
type callerLimiters struct {
	mu  sync.Mutex
	pol *policy.Policy // the policy m was last pruned for
	m   map[callerLimitKey]*rate.Limiter
}

type callerLimitKey struct {
	name   string
	limits policy.Limits
}

func (l *callerLimiters) get(pol *policy.Policy, c *policy.Caller) *rate.Limiter {
	if c.Limits.PerMinute <= 0 {
		return nil
	}
	key := callerLimitKey{c.Name, c.Limits}
	l.mu.Lock()
	defer l.mu.Unlock()
	if pol != l.pol {
		// A reload: keep only the buckets the new policy still has.
		keep := map[callerLimitKey]*rate.Limiter{}
		for _, cc := range pol.Callers() {
			k := callerLimitKey{cc.Name, cc.Limits}
			if lim, ok := l.m[k]; ok {
				keep[k] = lim
			}
		}
		l.m, l.pol = keep, pol
	}
	lim := l.m[key]
	if lim == nil {
		burst := c.Limits.Burst
		if burst <= 0 {
			burst = max(1, (c.Limits.PerMinute+59)/60)
		}
		lim = rate.NewLimiter(rate.Limit(float64(c.Limits.PerMinute)/60), burst)
		l.m[key] = lim
	}
	return lim
}

func (p *Proxy) callerLimit(pol *policy.Policy, c *policy.Caller) []limit {
	lim := p.callers.get(pol, c)
	if lim == nil {
		return nil
	}
	return []limit{{lim: lim, reason: reasonRateLimited,
		msg:  fmt.Sprintf("caller %s is over its limit of %d calls per minute, bursts of %d (policy: limits of caller %s)", c.Name, c.Limits.PerMinute, lim.Burst(), c.Name),
		meta: map[string]string{"caller": c.Name, "limit": "caller"}}}
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

// set starts or extends the hold on key after a 429: for retryAfter when
// Chat sent one, else for a jittered back-off that doubles while Chat
// keeps answering 429. It returns how long the hold lasts from now.
func (h *holds) set(key string, retryAfter time.Duration) time.Duration {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.m[key]
	if e == nil {
		h.sweepLocked(now)
		e = &holdEntry{}
		h.m[key] = e
	}
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
			return nil, errCancelled
		}
		return nil, holdRefusal(key, left)
	}
	h.mu.Unlock()
	// Released just as it gave up: pass the turn on.
	if ctx.Err() != nil {
		pass()
		return nil, errCancelled
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
	now := h.now()
	if now.Before(e.until) {
		if len(e.queue) > 0 {
			h.armLocked(key, e, now)
		}
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
	now := h.now()
	switch {
	case now.Before(e.until):
		e.releasing = false
		if len(e.queue) > 0 {
			h.armLocked(key, e, now)
		}
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

func (p *Proxy) overloaded() *refusal.Error { return p.waiting.refusal() }

// admit takes one of the MaxInFlight slots for calls to Chat, waiting
// for one (within the call's deadline, among at most MaxWaiting waiting
// calls) when all are taken. release gives the slot back.
func (p *Proxy) admit(ctx context.Context, deadline time.Time) (release func(), err error) {
	release = func() {
		<-p.slots
		p.metrics.setInFlight(len(p.slots))
	}
	select {
	case p.slots <- struct{}{}:
		p.metrics.setInFlight(len(p.slots))
		return release, nil
	default:
	}
	if !p.waiting.take() {
		return nil, p.overloaded()
	}
	defer p.waiting.done()
	left := deadline.Sub(p.now())
	if left <= 0 {
		return nil, p.slotsRefusal()
	}
	select {
	case p.slots <- struct{}{}:
		p.metrics.setInFlight(len(p.slots))
		return release, nil
	case <-ctx.Done():
		return nil, errCancelled
	case <-p.after(left):
		return nil, p.slotsRefusal()
	}
}

func (p *Proxy) slotsRefusal() *refusal.Error {
	ref := refusal.New(http.StatusServiceUnavailable, reasonOverloaded, fmt.Sprintf("chat-broker is at its limit of %d concurrent calls to Chat (--max-in-flight) and none finished within the call's deadline; retry shortly", cap(p.slots)))
	ref.RetryAfter = time.Second
	return ref
}

// errCancelled is a wait cut short because the caller went away.
var errCancelled = refusal.New(499, "CANCELLED", "the caller went away while the call waited")
