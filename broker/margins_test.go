package broker

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/internal/fakeclock"
)

// marginCase is one mode of minting for the margin tests: a broker on a
// fake clock whose endpoint grants lifetime, and a switch that makes
// every later mint fail.
type marginCase struct {
	desc  string
	setup func(t *testing.T, lifetime time.Duration) (b *Broker, clock *fakeclock.Clock, done chan error, breakIt func())
}

var marginModes = []marginCase{
	{"key", func(t *testing.T, lifetime time.Duration) (*Broker, *fakeclock.Clock, chan error, func()) {
		ep := newFakeEndpoint(t)
		ep.setExpiresIn(int(lifetime / time.Second))
		b, clock, done := newTestBroker(t, ep, nil)
		return b, clock, done, func() { ep.answer(http.StatusServiceUnavailable, "") }
	}},
	{"keyless", func(t *testing.T, lifetime time.Duration) (*Broker, *fakeclock.Clock, chan error, func()) {
		env := newKeylessEnv(t)
		env.emu.SetTokenLifetime(lifetime)
		b, done := env.broker(t, nil)
		return b, env.clock, done, func() { env.emu.SetTokenCreator(false) }
	}},
}

// The margins scale with the lifetime Google granted: a token is
// refreshed from about half its life and handed out until a quarter of
// it (at most Config.MinRemaining, 1 min) is left, never after; so any
// lifetime of a minute or more works, with a key and keyless.
func TestMarginsScaleWithLifetime(t *testing.T) {
	tests := []struct {
		lifetime, margin time.Duration
	}{
		{time.Minute, 15 * time.Second},
		{2 * time.Minute, 30 * time.Second},
		{4 * time.Minute, time.Minute},
		{time.Hour, time.Minute},
	}
	for _, mode := range marginModes {
		for _, tc := range tests {
			t.Run(mode.desc+"/"+tc.lifetime.String(), func(t *testing.T) {
				b, clock, done, breakIt := mode.setup(t, tc.lifetime)
				ctx := context.Background()
				start := clock.Now()
				first, err := b.Token(ctx, "", bot)
				if err != nil {
					t.Fatal(err)
				}
				waitMint(t, b, done)
				if got := first.Expiry.Sub(start); got != tc.lifetime {
					t.Fatalf("lifetime %v, want %v", got, tc.lifetime)
				}
				h := b.Health().Tokens[0]
				if at := h.RefreshAt.Sub(start); at < tc.lifetime*45/100 || at > tc.lifetime*55/100 {
					t.Errorf("refresh at %v of %v, want 45%% to 55%%", at, tc.lifetime)
				}
				breakIt()

				// The last moment it is handed out: exactly its margin left.
				clock.Move(tc.lifetime - tc.margin)
				tok, err := b.Token(ctx, "", bot)
				if err != nil || header(tok) != header(first) {
					t.Fatalf("with %v left: %v, or another token; want the cached one", tc.margin, err)
				}
				waitMint(t, b, done) // the background refresh that hit started, failing

				clock.Move(time.Second)
				tok, err = b.Token(ctx, "", bot)
				if err == nil || !tok.IsZero() {
					t.Fatalf("with %v left: a token (err %v), want an error", tc.margin-time.Second, err)
				}
				waitMint(t, b, done)
			})
		}
	}
}

// A token granted for less than a minute is refused with a permanent
// error that says what to change, not a setting no flag exposes.
func TestLifetimeUnderAMinute(t *testing.T) {
	for _, mode := range marginModes {
		t.Run(mode.desc, func(t *testing.T) {
			b, _, _, _ := mode.setup(t, 30*time.Second)
			_, err := b.Token(context.Background(), "", bot)
			const want = "broker: mint token for [chat.bot]: Google granted a token for 30s, less than the 1m0s the broker needs to refresh it ahead of expiry: grant tokens of a minute or more"
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
			var me *MintError
			if !errors.As(err, &me) || me.Temporary() || strings.Contains(err.Error(), "MinRemaining") {
				t.Errorf("err = %#v, want a permanent MintError that does not mention MinRemaining", err)
			}
		})
	}
}
