package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/policy"
)

// demoPolicy lets the demo caller create, get and list messages in
// spaces/DEMO and nothing else. Listing needs chat.app.messages.readonly
// (Chat does not accept chat.bot for it), so the demo shows least
// privilege at work: creates carry chat.bot, lists the app scope.
const demoPolicy = `version: 1
callers:
  - name: demo
    identify:
      secretSHA256: %q
    allow:
      - methods: [spaces.messages.create, spaces.messages.get, spaces.messages.list]
        spaces: [spaces/DEMO]
    scopes: [chat.bot, chat.app.messages.readonly]
`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	c.register(fs)
	keylessFlag := fs.Bool("keyless", false, "no key: the broker mints through its own identity from the emulator's metadata server and IAM Credentials API (sets GCE_METADATA_HOST for this process), as with --impersonate on GKE")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("demo: unexpected argument %q", fs.Arg(0))
	}
	if err := c.check(); err != nil {
		return err
	}
	level, _ := parseLevel(c.logLevel)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	// The broker's own addresses first: the emulator then takes a free
	// port, which can never be one of them.
	var pl net.Listener
	var err error
	if c.listen != "" {
		if pl, err = net.Listen("tcp", c.listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		defer pl.Close()
	}
	al, err := net.Listen("tcp", c.admin)
	if err != nil {
		return fmt.Errorf("--admin: %w", err)
	}
	defer al.Close()

	emu, err := emulator.New(emulator.Config{
		Spaces:   []string{"spaces/DEMO"},
		Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly},
		Logger:   log.With("component", "emulator"),
	})
	if err != nil {
		return err
	}
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	emuSrv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	go emuSrv.Serve(el)
	defer emuSrv.Close()
	emuURL := "http://" + el.Addr().String()

	var key *broker.Key
	var keyless *broker.Impersonation
	mode := "a generated service-account key"
	if *keylessFlag {
		// Application Default Credentials find the emulator's metadata
		// server as Google's libraries find GKE's: GCE_METADATA_HOST. The
		// demo owns its process, so it may set it.
		os.Setenv("GCE_METADATA_HOST", el.Addr().String())
		keyless = &broker.Impersonation{ServiceAccount: emu.ClientEmail(), IAMEndpoint: emuURL, TokenEndpoint: emuURL + "/token"}
		mode = "no key: its own identity from the emulated metadata server, impersonating " + emu.ClientEmail() + " through IAM Credentials"
	} else if key, err = broker.ParseKey(emu.ServiceAccountJSON(emuURL + "/token")); err != nil {
		return err
	}
	secret := newSecret()
	pol, err := policy.Parse("demo-policy.yaml", fmt.Appendf(nil, demoPolicy, policy.HashSecret(secret)))
	if err != nil {
		return err
	}
	up, _ := url.Parse(emuURL)
	in := &instance{
		cfg:           c,
		key:           key,
		keyless:       keyless,
		policy:        pol,
		upstream:      up,
		log:           log,
		audit:         slog.New(slog.NewJSONHandler(stderr, nil)),
		proxyListener: pl,
		adminListener: al,
		onListening: func(proxyAddr, adminAddr string) {
			fmt.Fprintf(stdout, `chat-broker demo: the broker at http://%s fronts an emulated Google (token endpoint
and Chat API at %s); it mints with %s. The demo caller may create, get and list messages in
spaces/DEMO and nothing else. Paste:

export CHAT_BROKER_URL=http://%s
export CHAT_BROKER_TOKEN=%s
curl -sS -H "Authorization: Bearer $CHAT_BROKER_TOKEN" -H 'Content-Type: application/json' \
  -d '{"text":"Hello, world!"}' "$CHAT_BROKER_URL/v1/spaces/DEMO/messages"

List them (this call carries chat.app.messages.readonly; the create carried chat.bot):
curl -sS -H "Authorization: Bearer $CHAT_BROKER_TOKEN" "$CHAT_BROKER_URL/v1/spaces/DEMO/messages"

Health: http://%s/readyz. Audit lines go to stderr. Ctrl-C stops.
`, proxyAddr, emuURL, mode, proxyAddr, secret, adminAddr)
		},
	}
	return in.run(ctx)
}

// newSecret returns a caller secret: 32 random bytes, URL-safe base64.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
