package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
)

// A broker loads the key once, then hands out a token per call with the
// scopes that call needs. The token goes straight into the upstream
// request; printing it shows REDACTED.
func Example() {
	key, err := broker.LoadKey("/var/run/secrets/chat-app/key.json")
	if err != nil {
		fmt.Println(err) // names the file and the fix; never key material
		return
	}
	b, err := broker.New(broker.Config{Key: key, Logger: slog.Default()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	ctx := context.Background()
	tok, err := b.Token(ctx, "", []chatapi.Scope{chatapi.ScopeBot})
	if err != nil {
		if d, ok := broker.RetryAfter(err); ok {
			fmt.Printf("token endpoint unavailable, answer 503 with Retry-After: %.0f: %v\n", d.Seconds(), err)
			return
		}
		fmt.Println("cannot mint; fix the key or the grant:", err)
		if h := b.Health(); h.Failing {
			fmt.Println("/readyz: not ready:", h.LastError)
		}
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://chat.googleapis.com/v1/spaces", nil)
	tok.SetAuthHeader(req)
	fmt.Println(tok, tok.Scopes, tok.Expiry) // REDACTED [chat.bot] 2026-…
}
