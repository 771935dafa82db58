package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/testlog"
)

// newLoggedIdleBroker is newIdleBroker logging, at debug, to logs.
func newLoggedIdleBroker(t *testing.T, ep *fakeEndpoint) (b *Broker, clock *fakeclock.Clock, first Token, refreshAt time.Time, logs *testlog.Buffer) {
	t.Helper()
	logs = &testlog.Buffer{}
	b, clock, first, refreshAt = newIdleBroker(t, ep, func(c *Config) { c.Logger = logs.Logger() })
	return b, clock, first, refreshAt, logs
}

// An outage of the token endpoint shorter than what is left of the cached
// token costs callers nothing, and the broker retries on its back-off, not
// once per call.
func TestOutageShorterThanLifetime(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, _, refreshAt, logs := newLoggedIdleBroker(t, ep)
	ctx := context.Background()
	start := clock.Now()

	const (
		step       = 10 * time.Second
		callers    = 4
		callsEach  = 3
		outageFrom = 25 * time.Minute // before the refresh point (27 to 33 min)
		outageTo   = 55 * time.Minute // 4 min before the token stops being handed out
		end        = 100 * time.Minute
	)
	// The outage mixes what a token endpoint does when it is in trouble:
	// 503, 429, and connections reset without an answer.
	outage := func(w http.ResponseWriter, r *http.Request) {
		switch ep.count.Load() % 3 {
		case 0:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case 1:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"rate_limit_exceeded"}`)
		default:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}

	var calls, failed, tooShort, outageCalls atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	var down bool
	var countAtOutage, outageAttempts int64
	var recovered time.Duration // since start, when a refresh succeeded again
	for clock.Now().Sub(start) < end {
		clock.Move(step)
		elapsed := clock.Now().Sub(start)
		switch {
		case !down && elapsed >= outageFrom && elapsed < outageTo:
			down = true
			countAtOutage = ep.count.Load()
			ep.override(outage)
		case down && elapsed >= outageTo:
			down = false
			outageAttempts = ep.count.Load() - countAtOutage
			ep.override(nil)
		}
		clock.Fire()
		quiesce(t, b)

		now := clock.Now()
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for range callsEach {
					tok, err := b.Token(ctx, "", bot)
					calls.Add(1)
					if down {
						outageCalls.Add(1)
					}
					if err != nil {
						failed.Add(1)
						errMu.Lock()
						firstErr = cmp.Or(firstErr, err)
						errMu.Unlock()
						continue
					}
					if tok.Expiry.Sub(now) < time.Minute {
						tooShort.Add(1)
					}
				}
			})
		}
		wg.Wait()
		quiesce(t, b)
		if recovered == 0 && elapsed >= outageTo && b.Health().ConsecutiveFailures == 0 {
			recovered = elapsed
		}
	}

	t.Logf("refresh point at %v; outage %v to %v: %d mint attempts during %d Token calls; refresh succeeded again at %v; %d calls in all, %d failed",
		refreshAt.Sub(start), outageFrom, outageTo, outageAttempts, outageCalls.Load(), recovered, calls.Load(), failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d Token calls failed, want 0; first: %v", n, calls.Load(), firstErr)
	}
	if n := tooShort.Load(); n != 0 {
		t.Errorf("%d tokens handed out with less than MinRemaining left", n)
	}
	// Retries start at the refresh point. The first six steps of the
	// back-off (ceilings 1 s to 32 s) take at least one clock step each;
	// from then on the ceiling is 1 min and a step at least 30 s. So at
	// most 6 + 30 min / 30 s attempts, against 2,000-odd calls.
	const maxAttempts = 6 + int64((outageTo-outageFrom)/(30*time.Second))
	if outageAttempts == 0 || outageAttempts > maxAttempts {
		t.Errorf("%d mint attempts during the outage, want 1 to %d", outageAttempts, maxAttempts)
	}
	// The endpoint is back at 55 min; the next try, at most one back-off
	// step (1 min) later, succeeds.
	if recovered == 0 || recovered > outageTo+time.Minute+step {
		t.Errorf("refresh succeeded again at %v, want by %v", recovered, outageTo+time.Minute+step)
	}
	s := b.Stats()
	if s.TransientErrors != outageAttempts || s.PermanentErrors != 0 || s.SyncAttempts != 1 || s.CacheMisses != 1 {
		t.Errorf("Stats = %+v: want %d transient errors, no permanent one, 1 synchronous mint and 1 miss (the first call)", s, outageAttempts)
	}
	// One successful refresh after the outage, and one at the next
	// token's refresh point (about 27 to 33 min after that).
	if after := ep.count.Load() - countAtOutage - outageAttempts; after < 1 || after > 2 {
		t.Errorf("%d mints after the outage, want 1 or 2", after)
	}

	// Transient failures are logged at warn with the back-off; none at
	// error.
	warns := logs.Records(t, slog.LevelWarn)
	if int64(len(warns)) != outageAttempts {
		t.Errorf("%d warnings, want one per failed attempt (%d)", len(warns), outageAttempts)
	}
	statuses := map[float64]bool{}
	for _, w := range warns {
		if w["retry_in"] == nil || w["temporary"] != true {
			t.Errorf("warning without retry_in or temporary=true: %v", w)
		}
		statuses[w["status"].(float64)] = true
	}
	if !statuses[0] || !statuses[429] || !statuses[503] {
		t.Errorf("failures seen with statuses %v, want 0 (reset), 429 and 503", statuses)
	}
	if errs := logs.Records(t, slog.LevelError); len(errs) != 0 {
		t.Errorf("transient failures logged at error: %v", errs)
	}
	if strings.Contains(logs.String(), "ya29.") || strings.Contains(logs.String(), "eyJ") {
		t.Error("the log contains a token or an assertion")
	}
}

// Past the point where the token is no longer handed out, Token fails
// with an error worth retrying, never an expired token; once the endpoint
// is back, the refresher mints within one back-off step.
func TestOutagePastExpiry(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, first, _ := newIdleBroker(t, ep, nil)
	ctx := context.Background()
	ep.answer(http.StatusServiceUnavailable, "")

	last := first.Expiry.Add(-time.Minute) // MinRemaining before expiry
	for clock.Now().Before(last) {
		clock.Move(min(10*time.Second, last.Sub(clock.Now())))
		clock.Fire()
		quiesce(t, b)
		if tok, err := b.Token(ctx, "", bot); err != nil || header(tok) != header(first) {
			t.Fatalf("at %v before expiry: got another token or %v, want the cached one", first.Expiry.Sub(clock.Now()), err)
		}
	}
	if got := b.SecondsUntilExpiry(); got != 60 {
		t.Errorf("SecondsUntilExpiry = %v at the last moment, want 60", got)
	}

	clock.Move(time.Second)
	syncBefore := b.Stats().SyncAttempts
	tok, err := b.Token(ctx, "", bot)
	if err == nil || !tok.IsZero() {
		t.Fatalf("59 s before expiry: got a token (err %v), want an error", err)
	}
	var me *MintError
	if !errors.As(err, &me) || me.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("err = %v, want a MintError with status 503", err)
	}
	d, ok := RetryAfter(err)
	if !ok || d < time.Second || d > time.Minute || d%time.Second != 0 {
		t.Fatalf("RetryAfter = %v, %v; want whole seconds in [1s, 1m], true", d, ok)
	}
	quiesce(t, b)
	if got := b.SecondsUntilExpiry(); got != 59 {
		t.Errorf("SecondsUntilExpiry = %v, want 59", got)
	}
	h := b.Health()
	if h.Tokens[0].NextAttempt.After(clock.Now().Add(d)) || h.Tokens[0].Failures < 2 {
		t.Errorf("token health %+v: want a next attempt within RetryAfter (%v)", h.Tokens[0], d)
	}

	ep.answer(0, "")
	clock.Move(d)
	if clock.Fire() == 0 {
		t.Fatal("no timer was due after RetryAfter")
	}
	quiesce(t, b)
	hits := b.Stats().CacheHits
	tok, err = b.Token(ctx, "", bot)
	if err != nil || header(tok) == header(first) || tok.Expiry.Sub(clock.Now()) < 59*time.Minute {
		t.Fatalf("endpoint back: got %v, expiring in %v; want a fresh token", err, tok.Expiry.Sub(clock.Now()))
	}
	if s := b.Stats(); s.CacheHits != hits+1 || s.SyncAttempts != syncBefore+1 {
		t.Errorf("Stats = %+v: want the refresher to have minted and the call to hit the cache", s)
	}
	if h := b.Health(); h.ConsecutiveFailures != 0 || h.Tokens[0].Failures != 0 {
		t.Errorf("Health = %+v, want no failures after the refresh", h)
	}
	clock.Move(24 * time.Hour)
	if got := b.SecondsUntilExpiry(); got != 0 {
		t.Errorf("SecondsUntilExpiry = %v with an expired token, want 0", got)
	}
}

// A permanent error shows in Health at once, is logged at error once, and
// is retried only every few minutes.
func TestPermanentError(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, first, refreshAt, logs := newLoggedIdleBroker(t, ep)
	ctx := context.Background()
	start := clock.Now()
	usableUntil := first.Expiry.Add(-time.Minute)
	ep.answer(http.StatusBadRequest, `{"error":"invalid_grant","error_description":"Invalid grant: account not found"}`)

	// No calls at all: the refresher alone tries.
	const step = 10 * time.Second
	var attempts []time.Time
	for seen := ep.count.Load(); clock.Now().Sub(start) < 90*time.Minute; {
		clock.Move(step)
		clock.Fire()
		quiesce(t, b)
		for ; seen < ep.count.Load(); seen++ {
			attempts = append(attempts, clock.Now())
		}
		if len(attempts) == 1 {
			if h := b.Health(); !h.Failing || !strings.Contains(h.LastError, "invalid_grant") {
				t.Fatalf("after the first failure: Health = %+v, want a permanent failure naming invalid_grant", h)
			}
		}
	}
	var offsets []string
	for _, a := range attempts {
		offsets = append(offsets, a.Sub(start).String())
	}
	t.Logf("refresh point %v, token handed out until %v; attempts at %v", refreshAt.Sub(start), usableUntil.Sub(start), offsets)

	if len(attempts) < 2 || attempts[0].Sub(refreshAt) < 0 || attempts[0].Sub(refreshAt) > step {
		t.Fatalf("attempts at %v, want the first at the refresh point %v", offsets, refreshAt.Sub(start))
	}
	// 5 min apart, but for one shorter step that ends when the token
	// stops being handed out: the last try while it is still served.
	short := 0
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		if gap >= permanentRetry && gap <= permanentRetry+step {
			continue
		}
		if short++; short > 1 || attempts[i].Before(usableUntil) || attempts[i].After(usableUntil.Add(step)) {
			t.Errorf("attempts at %v: want %v apart, but for one try at %v", offsets, permanentRetry, usableUntil.Sub(start))
			break
		}
	}

	h := b.Health()
	if !h.Failing || !h.Permanent || !strings.Contains(h.LastError, "400 invalid_grant: Invalid grant: account not found") ||
		h.ConsecutiveFailures != len(attempts) || !h.Ready {
		t.Errorf("Health = %+v, want ready, failing permanently with invalid_grant, %d failures in a row", h, len(attempts))
	}
	if th := h.Tokens[0]; th.Failures != len(attempts) || !th.Permanent || !strings.Contains(th.LastError, "invalid_grant") {
		t.Errorf("token health %+v, want %d failures, permanent, invalid_grant", th, len(attempts))
	}

	// A caller now gets the error: no retry will help.
	_, err := b.Token(ctx, "", bot)
	var me *MintError
	if !errors.As(err, &me) || me.Code != "invalid_grant" || me.Temporary() {
		t.Errorf("err = %v, want a permanent invalid_grant MintError", err)
	}
	if d, ok := RetryAfter(err); ok {
		t.Errorf("RetryAfter = %v, true for invalid_grant; want false", d)
	}
	quiesce(t, b)
	if s := b.Stats(); s.PermanentErrors != int64(len(attempts))+1 || s.TransientErrors != 0 {
		t.Errorf("Stats = %+v, want %d permanent errors", s, len(attempts)+1)
	}

	errs := logs.Records(t, slog.LevelError)
	if len(errs) != 1 || errs[0]["code"] != "invalid_grant" || !strings.Contains(errs[0]["err"].(string), "invalid_grant") {
		t.Errorf("error records: %v; want one, naming invalid_grant", errs)
	}
	if warns := logs.Records(t, slog.LevelWarn); len(warns) != 0 {
		t.Errorf("warnings: %v; want none", warns)
	}
	// Fixed: the next try succeeds, which is logged, and a new permanent
	// error would be logged again.
	ep.answer(0, "")
	mustToken(t, b, bot)
	quiesce(t, b)
	if infos := logs.Records(t, slog.LevelInfo); len(infos) != 1 || infos[0]["after_failures"] != float64(len(attempts)+1) {
		t.Errorf("info records: %v; want one saying minting works again", infos)
	}
	if h := b.Health(); h.Failing {
		t.Errorf("Health = %+v after a success, want not failing", h)
	}
	b.Invalidate("", bot)
	ep.answer(http.StatusBadRequest, `{"error":"invalid_grant","error_description":"Invalid grant: account not found"}`)
	b.Token(ctx, "", bot)
	quiesce(t, b)
	if errs := logs.Records(t, slog.LevelError); len(errs) != 2 {
		t.Errorf("%d error records, want 2: the error came back after a success", len(errs))
	}
}

// With no calls at all, the refresher renews a token at its refresh
// point, so the next call is a cache hit.
func TestProactiveRefresh(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, first, refreshAt := newIdleBroker(t, ep, nil)
	ctx := context.Background()

	// The refresher sleeps until the refresh point: one timer, no polling.
	if asked := clock.Asked(); len(asked) != 1 || !asked[0].Equal(refreshAt) {
		t.Fatalf("timers asked for %v, want one, at the refresh point %v", asked, refreshAt)
	}
	clock.Move(refreshAt.Sub(clock.Now()) - time.Second)
	if n := clock.Fire(); n != 0 {
		t.Fatalf("%d timers fired before the refresh point", n)
	}
	quiesce(t, b)
	if got := ep.count.Load(); got != 1 {
		t.Fatalf("mints = %d before the refresh point, want 1", got)
	}

	clock.Move(2 * time.Second)
	if n := clock.Fire(); n != 1 {
		t.Fatalf("%d timers fired at the refresh point, want 1", n)
	}
	quiesce(t, b)
	if got := ep.count.Load(); got != 2 {
		t.Fatalf("mints = %d after the refresh point, want 2: exactly one refresh", got)
	}
	refreshedAt := clock.Now()

	before := b.Stats()
	tok, err := b.Token(ctx, "", bot)
	if err != nil || header(tok) == header(first) || !tok.Expiry.Equal(refreshedAt.Add(time.Hour)) {
		t.Fatalf("after the refresh: err %v, same token %v, expiry %v; want the new token, expiring at %v",
			err, header(tok) == header(first), tok.Expiry, refreshedAt.Add(time.Hour))
	}
	want := before
	want.CacheHits++
	if got := b.Stats(); got != want {
		t.Errorf("Stats = %+v\nwant    %+v: one more hit, nothing else", got, want)
	}
	if got := b.Stats(); got.BackgroundAttempts != 1 || got.SyncAttempts != 1 || got.Mints != 2 {
		t.Errorf("Stats = %+v, want 1 background and 1 synchronous mint", got)
	}

	// The refresher now sleeps until the new token's refresh point.
	h := b.Health()
	asked := clock.Asked()
	if len(h.Tokens) != 1 || !asked[len(asked)-1].Equal(h.Tokens[0].RefreshAt) || !h.Tokens[0].RefreshAt.After(refreshedAt.Add(20*time.Minute)) {
		t.Errorf("timers asked for %v, want the last at the new refresh point %v", asked, h.Tokens[0].RefreshAt)
	}
	if n := clock.Fire(); n != 0 {
		t.Errorf("%d timers fired with no refresh due", n)
	}
	quiesce(t, b)
	ep.wantMints(t, 2, "one refresh")

	// Health shows no token value.
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, string(js), ep.next())
	assertNoSecret(t, string(js), ep.next())
	if !strings.Contains(string(js), `"scopes":["chat.bot"]`) || !strings.Contains(string(js), `"ready":true`) {
		t.Errorf("Health JSON = %s", js)
	}
}

// Tokens evicted from the cache are not refreshed.
func TestEvictedNotRefreshed(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, _ := newTestBroker(t, ep, func(c *Config) { c.CacheSize = 1 })
	spaces := []chatapi.Scope{chatapi.ScopeAppSpaces}
	for _, scopes := range [][]chatapi.Scope{bot, spaces} { // spaces evicts bot
		mustToken(t, b, scopes)
		ep.next()
	}
	quiesce(t, b)
	clock.Move(time.Hour * 56 / 100) // past both refresh points
	clock.Fire()
	quiesce(t, b)
	if got := ep.count.Load(); got != 3 {
		t.Fatalf("mints = %d, want 3: one refresh", got)
	}
	if m := ep.next(); m.Claims.Scope != chatapi.ScopeAppSpaces.URL() {
		t.Errorf("refreshed %q, want only the cached %q", m.Claims.Scope, chatapi.ScopeAppSpaces.URL())
	}
	if h := b.Health(); len(h.Tokens) != 1 || h.Tokens[0].Scopes[0] != chatapi.ScopeAppSpaces {
		t.Errorf("Health().Tokens = %+v, want the chat.app.spaces token only", h.Tokens)
	}
}

// Close ends the refresher and every goroutine the broker started, even
// with a background refresh waiting on the endpoint.
func TestCloseStopsRefresher(t *testing.T) {
	ep := newFakeEndpoint(t)
	heldEP := newFakeEndpoint(t)
	baseline := runtime.NumGoroutine()
	var brokers []*Broker
	for range 10 {
		b, err := New(Config{Key: testKey(t, ep.URL())})
		if err != nil {
			t.Fatal(err)
		}
		mustToken(t, b, bot)
		brokers = append(brokers, b)
	}

	// One more with a background refresh held at the endpoint.
	b, clock, done, _ := newBrokerWithToken(t, heldEP)
	heldEP.next()
	heldEP.hold()
	clock.Move(time.Hour * 56 / 100)
	clock.Fire()
	settle(t, b)
	heldEP.next() // the refresh reached the endpoint and is held there
	if b.inflight.Load() == 0 {
		t.Fatal("no refresh in flight")
	}
	b.Close()
	select {
	case <-b.refreshDone:
	default:
		t.Error("Close returned with the refresher running")
	}
	if n := b.inflight.Load(); n != 0 {
		t.Errorf("Close returned with %d goroutines in flight", n)
	}
	if err := waitMint(t, nil, done); !errors.Is(err, ErrClosed) {
		t.Errorf("held refresh: err = %v, want ErrClosed", err)
	}
	heldEP.release()

	for _, b := range brokers {
		b.Close()
	}
	// Connections wind down on their own goroutines; wait for them,
	// without sleeping.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d as before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		desc   string
		err    error
		want   time.Duration
		wantOK bool
	}{
		{"503, no back-off known", &MintError{StatusCode: 503}, time.Second, true},
		{"503 with a back-off", &MintError{StatusCode: 503, retryAfter: 2300 * time.Millisecond}, 3 * time.Second, true},
		{"wrapped", fmt.Errorf("proxy: %w", &MintError{StatusCode: 429, retryAfter: 40 * time.Second}), 40 * time.Second, true},
		{"no answer", &MintError{Err: context.DeadlineExceeded, retryAfter: 500 * time.Millisecond}, time.Second, true},
		{"invalid_grant", &MintError{StatusCode: 400, Code: "invalid_grant", retryAfter: permanentRetry}, 0, false},
		{"closed", &MintError{Err: ErrClosed}, 0, false},
		{"caller gave up", fmt.Errorf("broker: token for [chat.bot]: %w", context.Canceled), 0, false},
		{"nil", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d, ok := RetryAfter(tc.err)
			if d != tc.want || ok != tc.wantOK {
				t.Errorf("RetryAfter = %v, %v; want %v, %v", d, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	for failures := 1; failures <= 12; failures++ {
		c := min(time.Second<<(failures-1), time.Minute)
		lo, hi := time.Hour, time.Duration(0)
		for range 200 {
			d := retryDelay(failures, true, time.Hour)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < c/2 || hi > c || hi-lo < c/4 {
			t.Errorf("failure %d: delays in [%v, %v], want spread over [%v, %v]", failures, lo, hi, c/2, c)
		}
	}
	tests := []struct {
		desc      string
		failures  int
		temporary bool
		left      time.Duration
		want      time.Duration
	}{
		{"permanent", 1, false, time.Hour, permanentRetry},
		{"permanent, 3 min left", 4, false, 3 * time.Minute, 3 * time.Minute},
		{"permanent, no longer served", 9, false, -time.Minute, permanentRetry},
		{"transient, 20 s left", 12, true, 20 * time.Second, 20 * time.Second},
		{"transient, 1 ms left", 12, true, time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := retryDelay(tc.failures, tc.temporary, tc.left); got != tc.want {
				t.Errorf("retryDelay = %v, want %v", got, tc.want)
			}
		})
	}
}

// A delegated subject's permanent error concerns that user: Health shows
// it, but Failing, which /readyz reads, stays false.
func TestSubjectPermanentErrorNotFailing(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	ctx := context.Background()
	mustToken(t, b, bot)
	ep.answer(http.StatusUnauthorized, `{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}`)
	_, err := b.Token(ctx, "alice@example.com", []chatapi.Scope{chatapi.ScopeMessages})
	if _, ok := RetryAfter(err); err == nil || ok {
		t.Fatalf("err = %v, RetryAfter ok = %v; want a permanent error", err, ok)
	}
	h := b.Health()
	if h.Failing || !h.Permanent || h.ConsecutiveFailures != 1 || !strings.Contains(h.LastError, "as alice@example.com: token endpoint answered 401 unauthorized_client") {
		t.Errorf("Health = %+v, want a permanent unauthorized_client error for alice, not failing", h)
	}
	b.Invalidate("", bot)
	b.Token(ctx, "", bot)
	if h := b.Health(); !h.Failing {
		t.Errorf("Health = %+v, want failing once the app's own token cannot be minted", h)
	}
}
