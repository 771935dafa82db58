// Package brokertest starts a real chat-broker in front of the emulator
// for the examples' tests: the broker, policy and proxy packages wired as
// `chat-broker serve` wires them, on loopback sockets, with a policy that
// lets one caller create and list messages in spaces/DEMO.
//
// It is for tests only and not part of chat-broker's API.
package brokertest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/identity"
	"github.com/chat-broker/chat-broker/internal/testenv"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// Space is where the examples post by default (CHAT_SPACE unset).
const Space = "spaces/DEMO"

// Secret is the example caller's secret.
const Secret = "example-caller-secret-0123456789abcdef"

// Env is a broker in front of an emulator.
type Env struct {
	Emu *emulator.Emulator
	// URL is the broker's proxy listener, http://127.0.0.1:PORT.
	URL string
	// Socket is the broker's Unix socket, where the caller is identified
	// by the test process's uid; "" unless started WithSocket.
	Socket string
}

// Start starts an emulator with Space, whose admin has approved
// chat.app.messages.readonly (listing messages needs it), and a broker in
// front of it whose policy knows one caller, by Secret (and, WithSocket,
// another by this process's uid on a Unix socket), allowed to create,
// get and list messages in Space. Everything stops when the test ends.
func Start(t testing.TB, withSocket bool) *Env {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	g := testenv.Start(t, emulator.Config{
		Spaces:   []string{Space},
		Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly},
	}, logger)

	rule := `
    allow:
      - methods: [spaces.messages.create, spaces.messages.get, spaces.messages.list]
        spaces: [` + Space + `]
    scopes: [chat.bot, chat.app.messages.readonly]`
	text := "version: 1\ncallers:\n  - name: example\n    identify: {secretSHA256: " + policy.HashSecret(Secret) + "}" + rule + "\n"
	if withSocket {
		text += fmt.Sprintf("  - name: by-uid\n    identify: {unixUID: %d}%s\n", os.Getuid(), rule)
	}
	pol, err := policy.Parse("policy.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Config{
		Upstream: g.URL,
		Policy:   policy.NewStore(pol),
		Tokens:   g.Broker.Source(),
		Audit:    logger,
		Logger:   logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	env := &Env{Emu: g.Emu, URL: srv.URL}
	if withSocket {
		// A short path: Unix socket paths are limited to about 100 bytes,
		// and t.TempDir's can be longer.
		dir, err := os.MkdirTemp("", "cb")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		env.Socket = filepath.Join(dir, "broker.sock")
		l, err := net.Listen("unix", env.Socket)
		if err != nil {
			t.Fatal(err)
		}
		// ConnContext hands the proxy the kernel's peer credentials, as
		// `chat-broker serve --socket` does.
		s := &http.Server{Handler: px, ConnContext: identity.ConnContext}
		go s.Serve(l)
		t.Cleanup(func() { s.Close() })
	}
	return env
}

// CheckPosted checks that the emulator holds exactly one "Hello, world!"
// in Space, was called for a create and then a list, and never saw the
// caller's secret: only the broker's tokens, each with one scope.
func (e *Env) CheckPosted(t testing.TB) {
	t.Helper()
	if msgs := e.Emu.Messages(Space); len(msgs) != 1 || msgs[0].Text != "Hello, world!" {
		t.Errorf("emulator holds %+v, want one \"Hello, world!\"", msgs)
	}
	reqs := e.Emu.Requests()
	if len(reqs) != 2 || reqs[0].MethodID != "spaces.messages.create" || reqs[1].MethodID != "spaces.messages.list" {
		t.Fatalf("emulator saw %+v, want a create then a list", reqs)
	}
	for _, r := range reqs {
		if strings.Contains(r.Authorization, Secret) || !strings.HasPrefix(r.Authorization, "Bearer ") || len(r.Scopes) != 1 {
			t.Errorf("%s reached Google with Authorization %q and scopes %v", r.MethodID, r.Authorization, r.Scopes)
		}
	}
}
