package broker

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/retry"
)

// Back-off for background refreshes that failed. The step after the n-th
// failure in a row is drawn from [c/2, c] with c = min(backoffBase·2ⁿ⁻¹,
// backoffMax) ("equal jitter"): the jitter spreads a fleet that failed
// together, and the lower half-bound keeps a long outage at one attempt
// per 30 to 60 seconds per token rather than the bursts full jitter
// allows. A permanent error waits permanentRetry instead: retrying cannot
// fix it, but an operator's fix (a restored grant, a re-enabled account)
// is picked up without a restart. Either step is cut to the time left
// before the token stops being handed out, so the last try comes while
// the old token is still served.
const (
	backoffBase    = time.Second
	backoffMax     = time.Minute
	permanentRetry = 5 * time.Minute
)

// backoffCeiling is c above, for the n-th failure in a row: the proxy's
// back-off, from other bounds.
func backoffCeiling(failures int) time.Duration {
	return retry.Backoff(backoffBase, backoffMax, failures)
}

// retryDelay is the wait after the failures-th failure in a row; left is
// the time until the token stops being handed out (≤ 0: already).
func retryDelay(failures int, temporary bool, left time.Duration) time.Duration {
	d := permanentRetry
	if temporary {
		d = retry.Jitter(backoffCeiling(failures))
	}
	if left > 0 {
		d = min(d, max(left, backoffBase))
	}
	return d
}

// RetryAfter reports whether an error from Token is worth retrying, and
// after how long: for a transient MintError (MintError.Temporary), the
// back-off the broker itself waits before its next try for that token,
// rounded up to whole seconds and at least one second. It reports false
// for a permanent MintError (the key, its domain-wide delegation grant or
// the scopes need a fix), for a closed broker, and for errors that are
// not mint failures (a refused request, the caller's own context ending).
// The proxy uses it for the Retry-After of its 503.
func RetryAfter(err error) (time.Duration, bool) {
	var me *MintError
	if !errors.As(err, &me) || !me.Temporary() {
		return 0, false
	}
	d := max(me.retryAfter, time.Second)
	return (d + time.Second - 1).Truncate(time.Second), true
}

// claim starts a background refresh of e if one is due at now: it moves
// e.next a lease ahead and reports true to exactly one caller. The
// lock-free first check keeps cache hits cheap.
func (e *entry) claim(now time.Time, lease time.Duration) bool {
	if now.UnixNano() < e.next.Load() {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.UnixNano() < e.next.Load() {
		return false
	}
	e.next.Store(now.Add(lease).UnixNano())
	return true
}

// fail records a failed mint for e at now and schedules the next
// background try one back-off step later. It returns the step and the
// number of failures in a row.
func (e *entry) fail(now time.Time, msg string, temporary bool) (time.Duration, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures++
	e.lastErr, e.permanent = msg, !temporary
	d := retryDelay(e.failures, temporary, e.tok.Expiry.Add(-e.margin).Sub(now))
	e.next.Store(now.Add(d).UnixNano())
	return d, e.failures
}

// usable reports whether e may be handed out at now: it has at least its
// margin left.
func (e *entry) usable(now time.Time) bool {
	return e.tok.Expiry.Sub(now) >= e.margin
}

// startRefresh refreshes e in the background, with k, unless the broker
// is closed. The goroutine is tracked, so Close waits for it; if a
// caller's mint for the same token is already running it joins that one.
func (b *Broker) startRefresh(k minter, e *entry) {
	if !b.track() {
		return
	}
	flightKey := k.account() + "\x00" + e.cacheKey
	go func() {
		defer b.untrack()
		b.sf.Do(flightKey, func() (any, error) {
			return b.mint(k, e, e.cacheKey, flightKey, e.tok.Subject, true)
		})
	}()
}

// poke tells the refresher that the schedule changed.
func (b *Broker) poke() {
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// refresher is the broker's one long-lived goroutine. It refreshes every
// cached token whose next refresh is due, even if no caller asks for it,
// so a quiet caller's token is fresh when it is next needed; then it
// sleeps until the earliest next refresh, or until a mint finishes (which
// may have added a token or moved a back-off). Tokens evicted from the
// cache are not in it, so they are not refreshed.
func (b *Broker) refresher() {
	defer close(b.refreshDone)
	var reply chan struct{}
	for {
		now := b.now()
		next := b.refreshDue(now)
		var timer <-chan time.Time // nil, so never ready, while the cache is empty
		if !next.IsZero() {
			timer = b.after(next.Sub(now))
		}
		if reply != nil {
			close(reply)
			reply = nil
		}
	wait:
		for {
			select {
			case <-b.ctx.Done():
				return
			case <-timer:
				break wait
			case <-b.wake:
				break wait
			case r := <-b.probe:
				// Tests only: answer once every wake-up and timer that
				// came before the probe has been acted on, so a test
				// knows what the refresher started.
				select {
				case <-b.wake:
				case <-timer:
				default:
					close(r)
					continue
				}
				reply = r
				break wait
			}
		}
	}
}

// refreshDue starts a background refresh of every cached token whose next
// refresh is due at now, and returns the earliest next refresh of all
// (zero if the cache is empty).
func (b *Broker) refreshDue(now time.Time) time.Time {
	k := b.minter()
	var next time.Time
	for _, e := range b.cache.Values() {
		if e.claim(now, b.mintTimeout) {
			b.startRefresh(k, e)
		}
		if at := time.Unix(0, e.next.Load()); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// Health is a snapshot of how minting goes, for /readyz, /metrics and the
// people reading them. It holds no token or key material: errors are
// MintError texts, which never carry any.
type Health struct {
	// Ready reports that at least one token has been minted since New.
	Ready bool `json:"ready"`
	// LastError is the most recent failed mint's error, "" if none has
	// failed since New. It is kept after later successes, for the record;
	// ConsecutiveFailures tells whether minting is failing now.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
	// Permanent reports that LastError is permanent: invalid_grant,
	// invalid_scope, unauthorized_client and the like, which no retry
	// fixes (MintError.Temporary is false).
	Permanent bool `json:"permanent,omitempty"`
	// ConsecutiveFailures counts failed mints, for any token, since the
	// last successful one: 0 when the latest mint succeeded.
	ConsecutiveFailures int       `json:"consecutiveFailures"`
	LastSuccessTime     time.Time `json:"lastSuccessTime,omitzero"`
	// Failing reports that the latest mint of a token for the app itself
	// (no delegated subject) failed with a permanent error: the key or
	// the service account needs a fix, no retry will help, and /readyz
	// should say so at once. A delegated subject's permanent error (say
	// unauthorized_client: no domain-wide delegation for that user or
	// scope) concerns that user only, so it shows in LastError and Tokens
	// but does not set Failing: one misconfigured caller must not take
	// the pod out of service.
	Failing bool `json:"failing"`
	// Tokens describes each cached token, by subject, then scopes.
	Tokens []TokenHealth `json:"tokens"`
}

// TokenHealth describes one cached token, never its value.
type TokenHealth struct {
	Subject string          `json:"subject,omitempty"`
	Scopes  []chatapi.Scope `json:"scopes"`
	// Expiry is when the token stops working; it is handed out until
	// Config.MinRemaining before.
	Expiry time.Time `json:"expiry"`
	// RefreshAt is its refresh point.
	RefreshAt time.Time `json:"refreshAt"`
	// NextAttempt is when the next background refresh may start: the
	// refresh point, or the end of the back-off after a failure.
	NextAttempt time.Time `json:"nextAttempt"`
	// Failures counts failed refreshes of this token in a row, and
	// LastError is the latest one's error.
	Failures  int    `json:"failures,omitempty"`
	LastError string `json:"lastError,omitempty"`
	// Permanent reports that LastError is permanent.
	Permanent bool `json:"permanent,omitempty"`
}

// Health returns a snapshot of the broker's minting and cached tokens.
func (b *Broker) Health() Health {
	b.health.mu.Lock()
	h := b.health.Health
	b.health.mu.Unlock()
	h.Ready = b.ready.Load()
	entries := b.cache.Values()
	h.Tokens = make([]TokenHealth, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		h.Tokens = append(h.Tokens, TokenHealth{
			Subject:     e.tok.Subject,
			Scopes:      slices.Clone(e.tok.Scopes),
			Expiry:      e.tok.Expiry,
			RefreshAt:   e.refreshAt,
			NextAttempt: time.Unix(0, e.next.Load()).In(e.refreshAt.Location()),
			Failures:    e.failures,
			LastError:   e.lastErr,
			Permanent:   e.permanent,
		})
		e.mu.Unlock()
	}
	slices.SortFunc(h.Tokens, func(x, y TokenHealth) int {
		return cmp.Or(cmp.Compare(x.Subject, y.Subject), cmp.Compare(chatapi.ScopeKey(x.Scopes), chatapi.ScopeKey(y.Scopes)))
	})
	return h
}

// SecondsUntilExpiry is the least time any cached token has left, in
// seconds, for a gauge: 0 if the cache is empty or a cached token has
// expired.
func (b *Broker) SecondsUntilExpiry() float64 {
	now := b.now()
	var least time.Duration
	for i, e := range b.cache.Values() {
		if d := e.tok.Expiry.Sub(now); i == 0 || d < least {
			least = d
		}
	}
	return max(least, 0).Seconds()
}

// health is the broker-wide record behind Health.
type health struct {
	mu sync.Mutex
	Health
	// logged holds, per cache key, the permanent error last logged at
	// Error level for it (key fingerprint and text), so that a permanent
	// error is logged once, not on every retry; a success for the key
	// forgets it. Bounded: when full, it starts over, which at worst logs
	// an error once more.
	logged map[string]string
}

const maxLogged = 1024

// failed records a failed mint and returns the number of failures in a
// row and whether this permanent error is new for cacheKey.
func (h *health) failed(cacheKey, subject, sig, msg string, temporary bool, now time.Time) (run int, newPermanent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.LastError, h.LastErrorTime, h.Permanent = msg, now, !temporary
	h.ConsecutiveFailures++
	if subject == "" {
		h.Failing = !temporary
	}
	if !temporary && h.logged[cacheKey] != sig {
		if h.logged == nil || len(h.logged) >= maxLogged {
			h.logged = make(map[string]string)
		}
		h.logged[cacheKey] = sig
		newPermanent = true
	}
	return h.ConsecutiveFailures, newPermanent
}

// succeeded records a successful mint and returns how many failures in a
// row it ended.
func (h *health) succeeded(cacheKey, subject string, now time.Time) (ended int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ended = h.ConsecutiveFailures
	h.ConsecutiveFailures = 0
	if subject == "" {
		h.Failing = false
	}
	h.LastSuccessTime = now
	delete(h.logged, cacheKey)
	return ended
}
