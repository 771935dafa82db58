package broker

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// BenchmarkMintKeylessVsKey measures one mint, side by side in one run,
// against the emulator on loopback: with a key (sign an assertion, one
// exchange at /token) and keyless (generateAccessToken; for delegation
// signJwt and then the exchange), for app authentication and for a
// delegated user. Each iteration drops the cached token and mints once
// in every mode, so all modes see the same machine load; the metrics are
// the mean time per mint and keyless's ratio to the key's.
//
//	go test -run '^$' -bench MintKeylessVsKey -benchtime 2000x ./broker
func BenchmarkMintKeylessVsKey(b *testing.B) {
	env := newKeylessEnvOn(b, nil) // real time: x/oauth2 stamps the key's assertions with it
	key, err := ParseKey(env.emu.ServiceAccountJSON(env.srv.URL + "/token"))
	if err != nil {
		b.Fatal(err)
	}
	withKey, err := New(Config{Key: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(withKey.Close)
	keyless, _ := env.broker(b, func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) })
	keyless.afterMint = nil // nobody reads the test hook's channel here
	user := []chatapi.Scope{"chat.messages.readonly"}
	modes := []struct {
		name    string
		br      *Broker
		subject string
		scopes  []chatapi.Scope
	}{
		{"key", withKey, "", bot},
		{"keyless", keyless, "", bot},
		{"key-delegated", withKey, alice, user},
		{"keyless-delegated", keyless, alice, user},
	}
	ctx := context.Background()
	for _, m := range modes { // warm: connections, the broker's own token
		if _, err := m.br.Token(ctx, m.subject, m.scopes); err != nil {
			b.Fatalf("%s: %v", m.name, err)
		}
	}
	elapsed := make([]time.Duration, len(modes))
	n := 0
	for b.Loop() {
		for i, m := range modes {
			m.br.Invalidate(m.subject, m.scopes)
			start := time.Now()
			if _, err := m.br.Token(ctx, m.subject, m.scopes); err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			elapsed[i] += time.Since(start)
		}
		n++
	}
	per := func(i int) float64 { return float64(elapsed[i].Microseconds()) / float64(n) }
	for i, m := range modes {
		b.ReportMetric(per(i), "µs/mint-"+m.name)
	}
	b.ReportMetric(per(1)/per(0), "keyless/key")
	b.ReportMetric(per(3)/per(2), "keyless/key-delegated")
}

// TestSoakShortLivedTokens runs keyless and key brokers side by side for
// CHAT_BROKER_SOAK_DURATION (10m) on real time, with 2-minute tokens and
// callers asking all the time: after the first mint of each token, no
// caller ever waits for a mint (every refresh happens ahead, in the
// background), no call fails, and no token is handed out with less than
// its margin (30 s) left. Opt-in: CHAT_BROKER_SOAK=1.
//
//	CHAT_BROKER_SOAK=1 go test -run SoakShortLived -v -timeout 20m ./broker
func TestSoakShortLivedTokens(t *testing.T) {
	if os.Getenv("CHAT_BROKER_SOAK") != "1" {
		t.Skip("a 10-minute soak: set CHAT_BROKER_SOAK=1 (and CHAT_BROKER_SOAK_DURATION to shorten it) to run it")
	}
	duration := 10 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("CHAT_BROKER_SOAK_DURATION")); err == nil && d > 0 {
		duration = d
	}
	const lifetime = 2 * time.Minute
	env := newKeylessEnvOn(t, nil)
	env.emu.SetTokenLifetime(lifetime)
	key, err := ParseKey(env.emu.ServiceAccountJSON(env.srv.URL + "/token"))
	if err != nil {
		t.Fatal(err)
	}
	withKey, err := New(Config{Key: key, Logger: env.logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(withKey.Close)
	keyless, _ := env.broker(t, nil)
	keyless.afterMint = nil // nobody reads the test hook's channel here

	kinds := []struct {
		subject string
		scopes  []chatapi.Scope
	}{
		{"", bot},
		{"", []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}},
		{alice, []chatapi.Scope{"chat.messages.readonly"}},
	}
	ctx := context.Background()
	for name, br := range map[string]*Broker{"key": withKey, "keyless": keyless} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, k := range kinds { // warm-up: the first mint of each token
				if _, err := br.Token(ctx, k.subject, k.scopes); err != nil {
					t.Fatal(err)
				}
			}
			warm := br.Stats()
			var calls, failed, short atomic.Int64
			var wg sync.WaitGroup
			deadline := time.Now().Add(duration)
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pace := time.NewTicker(time.Millisecond) // a caller's pace: about 1,000 calls a second each
					defer pace.Stop()
					for i := 0; time.Now().Before(deadline); i++ {
						<-pace.C
						k := kinds[(w+i)%len(kinds)]
						tok, err := br.Token(ctx, k.subject, k.scopes)
						calls.Add(1)
						if err != nil {
							failed.Add(1)
							continue
						}
						if time.Until(tok.Expiry) < lifetime/4 {
							short.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			s := br.Stats()
			visible := s.SyncAttempts - warm.SyncAttempts
			t.Logf("%s, %v with %v tokens: %d calls, %d failed, %d tokens under the 30 s margin; after warm-up %d mints a caller waited for, %d background refreshes (%d ok), %d cache misses",
				name, duration, lifetime, calls.Load(), failed.Load(), short.Load(), visible, s.BackgroundAttempts-warm.BackgroundAttempts, s.Mints-warm.Mints, s.CacheMisses-warm.CacheMisses)
			if visible != 0 || failed.Load() != 0 || short.Load() != 0 || s.CacheMisses != warm.CacheMisses {
				t.Errorf("after warm-up: %d caller-visible mints, %d failed calls, %d short tokens, %d misses; want 0 of each", visible, failed.Load(), short.Load(), s.CacheMisses-warm.CacheMisses)
			}
			if min := int64(duration/lifetime) * int64(len(kinds)); s.Mints-warm.Mints < min {
				t.Errorf("%d background refreshes succeeded, want at least %d (each token about twice per lifetime)", s.Mints-warm.Mints, min)
			}
		})
	}
}
