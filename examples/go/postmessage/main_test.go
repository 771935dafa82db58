package main

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	chat "google.golang.org/api/chat/v1"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/examples/internal/brokertest"
)

// The example, against a real broker in front of the emulator: the
// message is stored, and Google saw the broker's tokens, never the
// caller's secret.
func TestRun(t *testing.T) {
	env := brokertest.Start(t, false)
	var out strings.Builder
	if err := run(context.Background(), env.URL, brokertest.Secret, brokertest.Space, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !regexp.MustCompile(`(?m)^created spaces/DEMO/messages/\S+\nlisted 1\n$`).MatchString(out.String()) {
		t.Errorf("output %q, want a created message and a list of one", out.String())
	}
	env.CheckPosted(t)
}

// A wrong secret gets the broker's 401, and nothing reaches Google.
func TestRunUnknownCaller(t *testing.T) {
	env := brokertest.Start(t, false)
	err := run(context.Background(), env.URL, "not-the-secret-0123456789abcdef", brokertest.Space, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("run with a wrong secret: %v, want a 401", err)
	}
	if reqs := env.Emu.Requests(); len(reqs) != 0 {
		t.Errorf("emulator saw %+v, want nothing", reqs)
	}
}

// The client of deploy/README.md's Unix-socket variant: the same service,
// with an HTTP client that dials the socket and no credential at all; the
// broker knows the caller by the uid the kernel reports.
func TestSocketClient(t *testing.T) {
	env := brokertest.Start(t, true)
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", env.Socket)
		},
	}}
	svc, err := chat.NewService(context.Background(), option.WithEndpoint("http://localhost/"), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Spaces.Messages.Create(brokertest.Space, &chat.Message{Text: "Hello, world!"}).Do(); err != nil {
		t.Fatalf("create over the socket: %v", err)
	}
	if _, err := svc.Spaces.Messages.List(brokertest.Space).Do(); err != nil {
		t.Fatalf("list over the socket: %v", err)
	}
	env.CheckPosted(t)
}
