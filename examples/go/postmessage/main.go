// Command go posts "Hello, world!" through chat-broker and lists the
// space's messages with Google's official Go client,
// google.golang.org/api/chat/v1, changed only in endpoint and credential:
// CHAT_BROKER_URL is the broker, CHAT_BROKER_TOKEN this app's caller
// secret, which stands in for a Google access token. CHAT_SPACE is the
// space (default spaces/DEMO, the demo's).
//
//	go run ./cmd/chat-broker demo   # and paste its export lines, then:
//	go run ./examples/go/postmessage
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/oauth2"
	chat "google.golang.org/api/chat/v1"
	"google.golang.org/api/option"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	space := os.Getenv("CHAT_SPACE")
	if space == "" {
		space = "spaces/DEMO"
	}
	err := run(ctx, os.Getenv("CHAT_BROKER_URL"), os.Getenv("CHAT_BROKER_TOKEN"), space, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		stop()
		os.Exit(1)
	}
}

// run posts "Hello, world!" to space through the broker at url, as the
// caller whose secret is token, lists the space's messages and reports
// both on out.
func run(ctx context.Context, url, token, space string, out io.Writer) error {
	if url == "" || token == "" {
		return fmt.Errorf("set CHAT_BROKER_URL and CHAT_BROKER_TOKEN (go run ./cmd/chat-broker demo prints them)")
	}
	// The two changes from a direct client: the endpoint is the broker,
	// and the token is the caller secret. A static token source never
	// refreshes, which is right: the broker mints Google's tokens.
	svc, err := chat.NewService(ctx,
		option.WithEndpoint(strings.TrimSuffix(url, "/")+"/"),
		option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})))
	if err != nil {
		return err
	}
	msg, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "Hello, world!"}).Context(ctx).Do()
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Fprintln(out, "created", msg.Name)
	list, err := svc.Spaces.Messages.List(space).Context(ctx).Do()
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	fmt.Fprintln(out, "listed", len(list.Messages))
	return nil
}
