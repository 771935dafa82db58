package broker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
)

var bot = []chatapi.Scope{chatapi.ScopeBot}

// mustToken returns the app's token for scopes, cached or minted, and
// fails the test when there is none.
func mustToken(t *testing.T, b *Broker, scopes []chatapi.Scope) Token {
	t.Helper()
	tok, err := b.Token(context.Background(), "", scopes)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// newBrokerWithToken is newTestBroker holding the app's chat.bot token:
// minted, and the mint settled (waitMint).
func newBrokerWithToken(t *testing.T, ep *fakeEndpoint) (b *Broker, clock *fakeclock.Clock, done chan error, first Token) {
	t.Helper()
	b, clock, done = newTestBroker(t, ep, nil)
	first = mustToken(t, b, bot)
	waitMint(t, b, done)
	return b, clock, done, first
}

// newIdleBroker is newTestBroker holding the app's chat.bot token, with
// nothing in flight after its mint (quiesce); refreshAt is when the
// token is due for refresh.
func newIdleBroker(t *testing.T, ep *fakeEndpoint, edit func(*Config)) (b *Broker, clock *fakeclock.Clock, first Token, refreshAt time.Time) {
	t.Helper()
	b, clock, _ = newTestBroker(t, ep, edit)
	first = mustToken(t, b, bot)
	quiesce(t, b)
	return b, clock, first, b.Health().Tokens[0].RefreshAt
}

func TestConcurrentFirstCallsMintOnce(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	ep.hold()

	const n = 200
	var wg sync.WaitGroup
	tokens := make([]Token, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { tokens[i], errs[i] = b.Token(context.Background(), "", bot) })
	}
	ep.next()
	// Hold the mint until every caller has missed the cache and is waiting,
	// so that they really are concurrent.
	for b.Stats().CacheMisses < n {
		runtime.Gosched()
	}
	ep.release()
	wg.Wait()

	want := header(tokens[0])
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if got := header(tokens[i]); got != want {
			t.Fatalf("call %d got a different token than call 0", i)
		}
	}
	if !strings.HasPrefix(want, "Bearer ya29.fake-") {
		t.Errorf("Authorization = %q, want a Bearer token from the fake endpoint", want)
	}
	ep.wantMints(t, 1, "concurrent first calls share one mint")
	if got := b.Stats(); got.Mints != 1 || got.CacheMisses != n {
		t.Errorf("Stats = %+v, want 1 mint, %d misses", got, n)
	}
	if !b.Ready() {
		t.Error("Ready() = false after a mint")
	}
}

func TestScopeSetsAndSubjects(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, _ := newTestBroker(t, ep, nil)
	ctx := context.Background()
	const user = "alice@example.com"

	tests := []struct {
		desc      string
		subject   string
		scopes    []chatapi.Scope
		sameAs    int // index of an earlier call whose token this one shares; -1: new
		wantScope string
	}{
		{"bot", "", bot, -1, "https://www.googleapis.com/auth/chat.bot"},
		{"two app scopes", "", []chatapi.Scope{chatapi.ScopeAppSpaces, chatapi.ScopeAppMemberships}, -1,
			"https://www.googleapis.com/auth/chat.app.memberships https://www.googleapis.com/auth/chat.app.spaces"},
		{"same set, other order, duplicate", "", []chatapi.Scope{chatapi.ScopeAppMemberships, chatapi.ScopeAppSpaces, chatapi.ScopeAppSpaces}, 1, ""},
		{"user scope as a user", user, []chatapi.Scope{chatapi.ScopeMessages}, -1, "https://www.googleapis.com/auth/chat.messages"},
		{"same scope as the app", "", []chatapi.Scope{chatapi.ScopeMessages}, -1, "https://www.googleapis.com/auth/chat.messages"},
		{"bot again", "", bot, 0, ""},
	}
	var got []Token
	for i, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tok, err := b.Token(ctx, tc.subject, tc.scopes)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, tok)
			if tc.sameAs >= 0 {
				if header(tok) != header(got[tc.sameAs]) {
					t.Errorf("got a new token, want the one from %q", tests[tc.sameAs].desc)
				}
				return
			}
			for j := range i {
				if header(tok) == header(got[j]) {
					t.Errorf("got the token of %q, want a new one", tests[j].desc)
				}
			}
			m := ep.next()
			if m.Claims.Scope != tc.wantScope || m.Claims.Sub != tc.subject {
				t.Errorf("assertion scope %q, sub %q; want %q, %q", m.Claims.Scope, m.Claims.Sub, tc.wantScope, tc.subject)
			}
			if tok.Subject != tc.subject {
				t.Errorf("Token.Subject = %q, want %q", tok.Subject, tc.subject)
			}
			if want := clock.Now().Add(time.Hour); !tok.Expiry.Equal(want) {
				t.Errorf("Expiry = %v, want %v (clock + expires_in)", tok.Expiry, want)
			}
		})
		if len(got) != i+1 {
			t.FailNow() // the rows after compare their tokens with this one's
		}
	}
	ep.wantMints(t, 4, "one mint per (subject, scope set)")
	if s := got[1].Scopes; len(s) != 2 || s[0] != chatapi.ScopeAppMemberships || s[1] != chatapi.ScopeAppSpaces {
		t.Errorf("Scopes = %v, want sorted [chat.app.memberships chat.app.spaces]", s)
	}
	got[1].Scopes[0] = "changed" // a caller's slice is its own
	if tok, _ := b.Token(ctx, "", tests[1].scopes); tok.Scopes[0] != chatapi.ScopeAppMemberships {
		t.Errorf("cached Scopes changed through a returned token: %v", tok.Scopes)
	}
}

func TestRefreshAhead(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, clock, done, first := newBrokerWithToken(t, ep)
	ctx := context.Background()
	ep.next()

	// RefreshAfter 0.5 jittered ±10%: the refresh point lies between 45%
	// and 55% of the hour.
	clock.Move(time.Hour * 45 / 100)
	clock.Move(-time.Second)
	tok, err := b.Token(ctx, "", bot)
	if err != nil || header(tok) != header(first) {
		t.Fatalf("before the refresh point: got a different token or %v, want the cached one", err)
	}
	if got := b.Stats(); got.CacheHits != 1 || got.Mints != 1 {
		t.Errorf("before the refresh point: Stats = %+v, want 1 hit, 1 mint", got)
	}

	clock.Move(time.Hour*10/100 + 2*time.Second) // past 55%
	refreshStart := clock.Now()
	ep.hold()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			tok, err := b.Token(ctx, "", bot)
			if err != nil || header(tok) != header(first) {
				t.Errorf("after the refresh point: got a different token or %v, want the cached one at once", err)
			}
		})
	}
	wg.Wait() // all answered while the refresh is held: none waited for it
	ep.next()
	ep.release()
	if err := waitMint(t, b, done); err != nil {
		t.Fatalf("background refresh: %v", err)
	}

	second := mustToken(t, b, bot)
	if header(second) == header(first) {
		t.Error("after the refresh: still the old token, want the refreshed one")
	}
	if want := refreshStart.Add(time.Hour); !second.Expiry.Equal(want) {
		t.Errorf("refreshed Expiry = %v, want %v", second.Expiry, want)
	}
	for range 5 {
		if tok, _ := b.Token(ctx, "", bot); header(tok) != header(second) {
			t.Fatal("the refreshed token is not served")
		}
	}
	ep.wantMints(t, 2, "one first, one background")
	if got := b.Stats(); got.Mints != 2 || got.CacheMisses != 1 {
		t.Errorf("Stats = %+v, want 2 mints, 1 miss", got)
	}
}

// newBrokerWithTokenFailing is newBrokerWithToken whose token endpoint
// answers 503 from then on.
func newBrokerWithTokenFailing(t *testing.T) (ep *fakeEndpoint, b *Broker, clock *fakeclock.Clock, done chan error, first Token) {
	t.Helper()
	ep = newFakeEndpoint(t)
	b, clock, done, first = newBrokerWithToken(t, ep)
	ep.answer(http.StatusServiceUnavailable, "")
	return ep, b, clock, done, first
}

func TestRefreshFailureKeepsServingAndBacksOff(t *testing.T) {
	ep, b, clock, done, first := newBrokerWithTokenFailing(t)
	ctx := context.Background()
	clock.Move(time.Hour * 56 / 100)

	tokenIs := func(desc string, want Token) {
		t.Helper()
		tok, err := b.Token(ctx, "", bot)
		if err != nil || header(tok) != header(want) {
			t.Fatalf("%s: got another token or %v", desc, err)
		}
	}
	tokenIs("refresh due", first)
	for failures := 1; failures <= 3; failures++ {
		failedAt := clock.Now()
		if err := waitMint(t, b, done); err == nil {
			t.Fatalf("refresh %d succeeded against a failing endpoint", failures)
		}
		h := b.Health().Tokens[0]
		// Equal jitter: the step after the n-th failure lies in [c/2, c],
		// c = 1s·2ⁿ⁻¹.
		c := time.Second << (failures - 1)
		if step := h.NextAttempt.Sub(failedAt); h.Failures != failures || step < c/2 || step > c {
			t.Fatalf("after failure %d: Failures %d, next attempt in %v; want %d, in [%v, %v]", failures, h.Failures, step, failures, c/2, c)
		}
		clock.Move(h.NextAttempt.Sub(clock.Now()) - time.Nanosecond)
		tokenIs("retry not yet due", first)
		if got := ep.count.Load(); got != int64(1+failures) {
			t.Fatalf("mints = %d, want %d: no retry before the back-off ends", got, 1+failures)
		}
		clock.Move(time.Nanosecond)
		if failures == 3 {
			ep.answer(0, "")
		}
		tokenIs("retry due", first)
	}
	if err := waitMint(t, b, done); err != nil {
		t.Fatalf("refresh once the endpoint is back: %v", err)
	}
	tok, _ := b.Token(ctx, "", bot)
	if header(tok) == header(first) {
		t.Error("after a successful refresh: still the old token")
	}
	ep.wantMints(t, 5, "first, failed refreshes, then the one that worked")
	want := Stats{Mints: 2, MintErrors: 3, CacheHits: 8, CacheMisses: 1, TransientErrors: 3, BackgroundAttempts: 4, SyncAttempts: 1}
	if got := b.Stats(); got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
	h := b.Health()
	if h.ConsecutiveFailures != 0 || h.Permanent || !strings.Contains(h.LastError, "503") || len(h.Tokens) != 1 || h.Tokens[0].Failures != 0 {
		t.Errorf("Health after recovery = %+v, want no failures in a row, the 503 kept as LastError, a fresh token", h)
	}
}

func TestNeverHandsOutExpiringToken(t *testing.T) {
	ep, b, clock, done, first := newBrokerWithTokenFailing(t)
	ctx := context.Background()

	clock.Move(time.Hour - time.Minute) // exactly MinRemaining left: still good
	if tok, err := b.Token(ctx, "", bot); err != nil || header(tok) != header(first) {
		t.Fatalf("with MinRemaining left: got another token or %v, want the cached one", err)
	}
	waitMint(t, b, done) // the background refresh it started, failing

	for _, step := range []struct {
		desc    string
		advance time.Duration
	}{
		{"59s left", time.Second},
		{"1s left", 58 * time.Second},
		{"expired", time.Second},
		{"long expired", 24 * time.Hour},
	} {
		finished := false
		t.Run(step.desc, func(t *testing.T) {
			clock.Move(step.advance)
			tok, err := b.Token(ctx, "", bot)
			if err == nil {
				t.Fatal("Token returned a token, want an error")
			}
			if !tok.IsZero() || header(tok) != "" {
				t.Fatal("Token returned a token with its error")
			}
			var me *MintError
			if !errors.As(err, &me) || me.StatusCode != http.StatusServiceUnavailable || !me.Temporary() {
				t.Errorf("err = %v, want a temporary MintError with status 503", err)
			}
			waitMint(t, b, done)
			finished = true
		})
		if !finished {
			t.FailNow() // the next step would start where this one stopped
		}
	}

	// Once the endpoint is back, the next call mints synchronously.
	ep.answer(0, "")
	tok, err := b.Token(ctx, "", bot)
	if err != nil || header(tok) == header(first) || tok.Expiry.Sub(clock.Now()) != time.Hour {
		t.Fatalf("endpoint back: got %v, expiry in %v; want a fresh token", err, tok.Expiry.Sub(clock.Now()))
	}
}

func TestExpiresIn(t *testing.T) {
	tests := []struct {
		desc      string
		expiresIn any
		want      time.Duration // 0: an error
	}{
		{"number", 3599, 3599 * time.Second},
		// x/oauth2/jwt decodes expires_in into an int64 and refuses a
		// string; Google sends a number.
		{"string", "1800", 0},
		{"missing", nil, 0},
		{"zero", 0, 0},
		{"garbage string", "soon", 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ep := newFakeEndpoint(t)
			b, clock, _ := newTestBroker(t, ep, nil)
			ep.setExpiresIn(tc.expiresIn)
			tok, err := b.Token(context.Background(), "", bot)
			switch {
			case tc.want == 0 && err == nil:
				t.Errorf("got a token expiring in %v, want an error", tok.Expiry.Sub(clock.Now()))
			case tc.want != 0 && err != nil:
				t.Errorf("err = %v", err)
			case tc.want != 0 && tok.Expiry.Sub(clock.Now()) != tc.want:
				t.Errorf("expires in %v, want %v", tok.Expiry.Sub(clock.Now()), tc.want)
			}
		})
	}
}

func TestMintError(t *testing.T) {
	tests := []struct {
		desc     string
		subject  string
		scopes   []chatapi.Scope
		status   int
		body     string
		wantTemp bool
		wantCode string
		wantDesc string
		wantText string
	}{
		{
			desc: "invalid_grant", scopes: bot, status: 400,
			body:     `{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}`,
			wantCode: "invalid_grant", wantDesc: "Invalid JWT Signature.",
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 400 invalid_grant: Invalid JWT Signature.",
		},
		{
			desc: "503 without body", scopes: bot, status: 503, wantTemp: true,
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 503 Service Unavailable",
		},
		{
			desc: "unauthorized_client as a user", subject: "alice@example.com", scopes: []chatapi.Scope{chatapi.ScopeMessages}, status: 401,
			body:     `{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}`,
			wantCode: "unauthorized_client", wantDesc: "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
			wantText: "broker: mint token for [chat.messages] as alice@example.com: token endpoint answered 401 unauthorized_client: Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
		},
		{
			desc: "disabled_client", scopes: bot, status: 401,
			body:     `{"error":"disabled_client","error_description":"The OAuth client was disabled."}`,
			wantCode: "disabled_client", wantDesc: "The OAuth client was disabled.",
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 401 disabled_client: The OAuth client was disabled.",
		},
		{
			desc: "invalid_scope", scopes: []chatapi.Scope{chatapi.ScopeAppSpaces, chatapi.ScopeAppDelete}, status: 400,
			body:     `{"error":"invalid_scope","error_description":"Invalid OAuth scope or ID token audience provided."}`,
			wantCode: "invalid_scope", wantDesc: "Invalid OAuth scope or ID token audience provided.",
			wantText: "broker: mint token for [chat.app.delete chat.app.spaces]: token endpoint answered 400 invalid_scope: Invalid OAuth scope or ID token audience provided.",
		},
		{
			desc: "429", scopes: bot, status: 429, body: `{"error":"rate_limit_exceeded"}`, wantTemp: true,
			wantCode: "rate_limit_exceeded",
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 429 rate_limit_exceeded",
		},
		{
			desc: "400 temporarily_unavailable", scopes: bot, status: 400, body: `{"error":"temporarily_unavailable"}`, wantTemp: true,
			wantCode: "temporarily_unavailable",
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 400 temporarily_unavailable",
		},
		{
			desc: "502 with an HTML page", scopes: bot, status: 502, body: "<html>bad gateway</html>", wantTemp: true,
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 502 Bad Gateway",
		},
		{
			desc: "404", scopes: bot, status: 404, body: "not found",
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 404 Not Found",
		},
		{
			desc: "description echoing the assertion", scopes: bot, status: 400,
			body:     `{"error":"invalid_grant","error_description":"bad assertion {{assertion}}"}`,
			wantCode: "invalid_grant", wantDesc: "(description withheld: it looks like it contains a credential)",
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 400 invalid_grant: (description withheld: it looks like it contains a credential)",
		},
		{
			desc: "200 that is not a token response", scopes: bot, status: 200, body: `{"access_token": ya29.unquoted}`, wantTemp: true,
			wantText: "broker: mint token for [chat.bot]: token endpoint answered 200: the answer is not a token response",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ep := newFakeEndpoint(t)
			b, _, _ := newTestBroker(t, ep, nil)
			ep.answer(tc.status, tc.body)
			if tc.status == 200 { // a 200 with this body, not the fake's token
				ep.override(func(w http.ResponseWriter, r *http.Request) {
					ep.mints <- minted{}
					w.Write([]byte(tc.body))
				})
			}
			tok, err := b.Token(context.Background(), tc.subject, tc.scopes)
			m := ep.next()
			if err == nil {
				t.Fatalf("got a token, want an error")
			}
			if !tok.IsZero() {
				t.Error("got a token with the error")
			}
			var me *MintError
			if !errors.As(err, &me) {
				t.Fatalf("err = %T %v, want a *MintError", err, err)
			}
			if me.StatusCode != tc.status || me.Code != tc.wantCode || me.Description != tc.wantDesc || me.Temporary() != tc.wantTemp {
				t.Errorf("got status %d, code %q, description %q, temporary %v\nwant %d, %q, %q, %v",
					me.StatusCode, me.Code, me.Description, me.Temporary(), tc.status, tc.wantCode, tc.wantDesc, tc.wantTemp)
			}
			if err.Error() != tc.wantText {
				t.Errorf("Error() = %s\nwant      %s", err, tc.wantText)
			}
			assertNoSecret(t, err.Error(), m)
			if b.Ready() {
				t.Error("Ready() = true with no successful mint")
			}
		})
	}
}

// assertNoSecret fails if s contains the assertion, a JWT or a token.
func assertNoSecret(t *testing.T, s string, m minted) {
	t.Helper()
	for _, secret := range []string{m.Assertion, "eyJ", "ya29."} {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%q contains a secret (%.12s…)", s, secret)
		}
	}
	if m.Token != "" && strings.Contains(s, m.Token) {
		t.Errorf("%q contains the access token", s)
	}
}

func TestMintErrorNoAnswer(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		ep := newFakeEndpoint(t)
		b, _, _ := newTestBroker(t, ep, nil)
		ep.srv.Close() // nothing listens at the token URL any more
		_, err := b.Token(context.Background(), "", bot)
		var me *MintError
		if !errors.As(err, &me) || me.StatusCode != 0 || !me.Temporary() {
			t.Fatalf("err = %v, want a temporary MintError without status", err)
		}
		if want := "broker: mint token for [chat.bot]: token endpoint unreachable: Post \"" + ep.URL() + "\": "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Error() = %s\nwant prefix %s", err, want)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		ep := newFakeEndpoint(t)
		b, _, _ := newTestBroker(t, ep, func(c *Config) { c.MintTimeout = 50 * time.Millisecond })
		ep.hold()
		_, err := b.Token(context.Background(), "", bot)
		var me *MintError
		if !errors.As(err, &me) || !me.Temporary() || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a temporary MintError wrapping DeadlineExceeded", err)
		}
		if want := "broker: mint token for [chat.bot]: no answer from the token endpoint within 50ms: context deadline exceeded"; err.Error() != want {
			t.Errorf("Error() = %s\nwant      %s", err, want)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Error("the broker followed a redirect from the token endpoint")
		}))
		defer elsewhere.Close()
		ep := newFakeEndpoint(t)
		b, _, _ := newTestBroker(t, ep, nil)
		ep.override(http.RedirectHandler(elsewhere.URL, http.StatusFound).ServeHTTP)
		_, err := b.Token(context.Background(), "", bot)
		var me *MintError
		if !errors.As(err, &me) || me.StatusCode != http.StatusFound || me.Temporary() {
			t.Fatalf("err = %v, want a permanent MintError with status 302", err)
		}
	})
}

func TestCallerGivingUpDoesNotCancelMint(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	ep.hold()

	ctx, cancel := context.WithCancel(context.Background())
	quitter := make(chan error)
	go func() {
		_, err := b.Token(ctx, "", bot)
		quitter <- err
	}()
	ep.next()
	patient := make(chan error)
	go func() {
		tok, err := b.Token(context.Background(), "", bot)
		if err == nil && tok.IsZero() {
			err = errors.New("zero token")
		}
		patient <- err
	}()
	for b.Stats().CacheMisses < 2 {
		runtime.Gosched()
	}
	cancel()
	if err := <-quitter; !errors.Is(err, context.Canceled) {
		t.Errorf("caller that gave up: err = %v, want context.Canceled", err)
	}
	ep.release()
	if err := <-patient; err != nil {
		t.Errorf("caller still waiting: %v", err)
	}
	ep.wantMints(t, 1, "a caller that gave up does not cancel the mint")
}

// Scope sets besides bot, each a key of its own in the cache.
var (
	spacesScopes = []chatapi.Scope{chatapi.ScopeAppSpaces}
	deleteScopes = []chatapi.Scope{chatapi.ScopeAppDelete}
)

// newCacheOfTwo is a broker whose cache holds two tokens, holding those
// for each of scopes, minted in turn.
func newCacheOfTwo(t *testing.T, scopes ...[]chatapi.Scope) (*fakeEndpoint, *Broker, *fakeclock.Clock) {
	t.Helper()
	ep := newFakeEndpoint(t)
	b, clock, _ := newTestBroker(t, ep, func(c *Config) { c.CacheSize = 2 })
	for _, s := range scopes {
		mustToken(t, b, s)
	}
	return ep, b, clock
}

// wantMints reports whether the endpoint has minted want tokens, and
// records an error that names when if not.
func (ep *fakeEndpoint) wantMints(t *testing.T, want int64, when string) bool {
	t.Helper()
	if got := ep.count.Load(); got != want {
		t.Errorf("%s: mints = %d, want %d", when, got, want)
		return false
	}
	return true
}

func TestCacheBounded(t *testing.T) {
	ep, b, _ := newCacheOfTwo(t, bot, spacesScopes, deleteScopes)
	if !ep.wantMints(t, 3, "one for each key") {
		t.FailNow()
	}
	mustToken(t, b, deleteScopes) // still cached
	ep.wantMints(t, 3, "after the newest key")
	mustToken(t, b, bot) // evicted
	ep.wantMints(t, 4, "after the evicted key")
}

// Cache hits take no lock, yet the LRU still learns which tokens are in
// use (at most once a second per token): the one hit since is kept, the
// idle one is evicted.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	ep, b, clock := newCacheOfTwo(t, bot, spacesScopes)
	clock.Move(2 * touchEvery)
	mustToken(t, b, bot)          // a hit: bot is now the most recent
	mustToken(t, b, deleteScopes) // evicts spacesScopes, the least recent
	if !ep.wantMints(t, 3, "one for each key") {
		t.FailNow()
	}
	mustToken(t, b, bot)
	ep.wantMints(t, 3, "the token in use was evicted")
	mustToken(t, b, spacesScopes)
	ep.wantMints(t, 4, "the idle token was not evicted")
}

func TestInvalidate(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	ctx := context.Background()
	first, _ := b.Token(ctx, "", bot)

	b.Invalidate("", bot)
	second, err := b.Token(ctx, "", bot)
	if err != nil || header(second) == header(first) {
		t.Fatalf("after Invalidate: got the old token or %v", err)
	}

	b.InvalidateToken(first) // stale: must not drop second
	if tok, _ := b.Token(ctx, "", bot); header(tok) != header(second) {
		t.Error("InvalidateToken of an old token dropped the current one")
	}
	b.InvalidateToken(second)
	if tok, _ := b.Token(ctx, "", bot); header(tok) == header(second) {
		t.Error("InvalidateToken of the current token did not drop it")
	}
	ep.wantMints(t, 3, "invalidating the current token mints once more")
}

func TestClose(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	ctx := context.Background()
	cached := mustToken(t, b, bot)
	ep.next()

	ep.hold()
	waiting := make(chan error)
	go func() {
		_, err := b.Token(ctx, "", []chatapi.Scope{chatapi.ScopeAppSpaces})
		waiting <- err
	}()
	ep.next()
	b.Close() // cancels the held mint and waits for it
	err := <-waiting
	var me *MintError
	if !errors.As(err, &me) || !errors.Is(err, ErrClosed) || me.Temporary() {
		t.Errorf("mint cut short by Close: err = %v, want a permanent MintError wrapping ErrClosed", err)
	}
	if want := "broker: mint token for [chat.app.spaces]: the broker is closed"; err.Error() != want {
		t.Errorf("Error() = %s\nwant      %s", err, want)
	}
	if tok, err := b.Token(ctx, "", bot); err != nil || header(tok) != header(cached) {
		t.Errorf("after Close, cached token: %v", err)
	}
	if _, err := b.Token(ctx, "", []chatapi.Scope{chatapi.ScopeAppDelete}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close, new mint: err = %v, want ErrClosed", err)
	}
	b.Close() // twice is fine
}

func TestRefusedRequests(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	tests := []struct {
		desc    string
		subject string
		scopes  []chatapi.Scope
		want    string
	}{
		{"no scopes", "", nil, "broker: token: no scopes requested"},
		{"chat.bot with a subject", "alice@example.com", []chatapi.Scope{chatapi.ScopeMessages, chatapi.ScopeBot},
			"broker: token: chat.bot never goes with a delegated subject: use a user scope to act as a user"},
		{"scope with a space", "", []chatapi.Scope{"chat.bot chat.delete"}, `broker: token: scope "chat.bot chat.delete" is empty or contains white space or NUL`},
		{"empty scope", "", []chatapi.Scope{""}, `broker: token: scope "" is empty or contains white space or NUL`},
		{"subject with a NUL", "a\x00b", []chatapi.Scope{chatapi.ScopeMessages}, "broker: token: subject contains white space or NUL"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := b.Token(context.Background(), tc.subject, tc.scopes)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
	ep.wantMints(t, 0, "refused requests mint nothing")
}

func TestSetKey(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	ctx := context.Background()
	first, _ := b.Token(ctx, "", bot)

	// Same account, same endpoint (a rotated key): cached tokens stay.
	if err := b.SetKey(testKey(t, ep.URL())); err != nil {
		t.Fatal(err)
	}
	if tok, _ := b.Token(ctx, "", bot); header(tok) != header(first) {
		t.Error("after rotating within the account: cached token dropped")
	}

	// Another token endpoint: cached tokens are not used.
	other := newFakeEndpoint(t)
	b.SetKey(testKey(t, other.URL()))
	tok, err := b.Token(ctx, "", bot)
	if err != nil || header(tok) == header(first) {
		t.Fatalf("after changing endpoint: got the old token or %v", err)
	}
	if ep.count.Load() != 1 || other.count.Load() != 1 {
		t.Errorf("mints: old endpoint %d, new endpoint %d; want 1, 1", ep.count.Load(), other.count.Load())
	}
	if err := b.SetKey(nil); err == nil {
		t.Error("SetKey(nil) succeeded")
	}
}

func TestNewConfig(t *testing.T) {
	key := testKey(t, "https://oauth2.googleapis.com/token")
	tests := []struct {
		desc string
		cfg  Config
		want string
	}{
		{"no key", Config{}, "broker: Config.Key is required: load it with LoadKey or ParseKey (or set Config.Impersonate for keyless mode)"},
		{"RefreshAfter 1", Config{Key: key, RefreshAfter: 1}, "broker: Config.RefreshAfter is 1, want a fraction in [0, 1) (0 for the default 0.5)"},
		{"negative size", Config{Key: key, CacheSize: -1}, "broker: Config.MinRemaining, CacheSize and MintTimeout must not be negative (0 for the defaults)"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
	b, err := New(Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestSetAuthHeader(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer caller-secret")
	Token{}.SetAuthHeader(r)
	if got := r.Header.Values("Authorization"); len(got) != 0 {
		t.Errorf("zero Token: Authorization = %q, want none", got)
	}
	Token{value: newSecretValue("ya29.x")}.SetAuthHeader(r)
	if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer ya29.x" {
		t.Errorf("Authorization = %q, want [Bearer ya29.x]", got)
	}
}
