package broker

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
)

// BenchmarkTokenCached measures Token answering from the cache, as it
// does for nearly every call the proxy forwards, with callers on every
// CPU at once: the token was minted before the timer starts and none is
// due for a refresh.
func BenchmarkTokenCached(b *testing.B) {
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"access_token":"ya29.bench","token_type":"Bearer","expires_in":3600}`)
	}))
	b.Cleanup(ep.Close)
	br, err := New(Config{Key: testKey(b, ep.URL+"/token")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(br.Close) // before the endpoint closes
	ctx := context.Background()
	scopes := []chatapi.Scope{chatapi.ScopeBot}
	if _, err := br.Token(ctx, "", scopes); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tok, err := br.Token(ctx, "", scopes); err != nil || tok.IsZero() {
				b.Errorf("Token = %v, %v; want a cached token", tok, err) // not Fatal: this is not the benchmark's goroutine
				return
			}
		}
	})
	b.StopTimer()
	if s := br.Stats(); s.Mints != 1 || s.CacheMisses != 1 {
		b.Errorf("Stats = %+v, want 1 mint and 1 miss: every timed call a cache hit", s)
	}
}
