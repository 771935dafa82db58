package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/policy"
)

// demoPolicy lets the demo caller create, get and list messages in
// spaces/DEMO and nothing else. Listing needs chat.app.messages.readonly
// (Chat does not accept chat.bot for it), so the demo shows least
// privilege at work: creates carry chat.bot, lists the app scope.
const demoPolicy = `# The demo's policy. The demo reloads it on save: add spaces/OTHER to the
# spaces below, and the call to spaces/OTHER that was refused goes through.
version: 1
callers:
  - name: demo
    identify:
      secretSHA256: %q
    allow:
      - methods: [spaces.messages.create, spaces.messages.get, spaces.messages.list]
        spaces: [spaces/DEMO]
    scopes: [chat.bot, chat.app.messages.readonly]
`

// demoFiles are the files the demo writes into its folder.
const (
	demoKeyFile    = "sa.json"
	demoPolicyFile = "policy.yaml"
)

func newDemoCommand() *cobra.Command {
	var c serveConfig
	var keyless bool
	var dir string
	cmd := &cobra.Command{
		Use:   "demo [--dir DIR] [flags]",
		Short: "run the broker in front of an emulated Google, ready to try",
		Long: `Run the broker and the emulator (Google's token endpoint and the Chat API, in
memory) in one process, with a generated key and a policy that lets one caller
create, get and list messages in spaces/DEMO. It prints the commands to paste.

The key (sa.json) and the policy (policy.yaml) are written into a folder it names
at start: a new temporary folder, removed when the demo stops, or --dir, kept.
Edit policy.yaml while the demo runs: it is reloaded on save, as serve reloads it,
and refusals name the rule to change in it.`,
		Example: `  chat-broker demo
  chat-broker demo --dir demo-files --listen 127.0.0.1:8080
  chat-broker demo --keyless`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), c, keyless, dir, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	c.register(fs)
	bindEnv(fs, "")
	fs.StringVar(&dir, "dir", "", "`folder` to write the demo's key and policy into (sa.json and policy.yaml, replaced at each start), kept after the demo stops; default: a new temporary folder, removed")
	fs.BoolVar(&keyless, "keyless", false, "no key: the broker mints through its own identity from the emulator's metadata server and IAM Credentials API (sets GCE_METADATA_HOST for this process), as with --impersonate on GKE")
	bindEnv(fs, "DEMO_")
	return cmd
}

func runDemo(ctx context.Context, c serveConfig, keylessFlag bool, dir string, stdout, stderr io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	level, _ := parseLevel(c.logLevel)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	if dir == "" {
		tmp, err := os.MkdirTemp("", "chat-broker-demo-")
		if err != nil {
			return fmt.Errorf("a temporary folder for the demo's files: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return usageError("--dir %s: %v", dir, err)
	}

	// The broker's own addresses first: the emulator then takes a free
	// port, which can never be one of them.
	var pl net.Listener
	var err error
	if c.listen != "" {
		if pl, err = net.Listen("tcp", c.listen); err != nil {
			return listenError("--listen", c.listen, err)
		}
		defer pl.Close()
	}
	al, err := net.Listen("tcp", c.admin)
	if err != nil {
		return listenError("--admin", c.admin, err)
	}
	defer al.Close()

	emu, err := emulator.New(emulator.Config{
		Spaces:   []string{"spaces/DEMO", "spaces/OTHER"}, // OTHER: refused until the policy allows it
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
	if keylessFlag {
		// Application Default Credentials find the emulator's metadata
		// server as Google's libraries find GKE's: GCE_METADATA_HOST. The
		// demo owns its process, so it may set it.
		os.Setenv("GCE_METADATA_HOST", el.Addr().String())
		keyless = &broker.Impersonation{ServiceAccount: emu.ClientEmail(), IAMEndpoint: emuURL, TokenEndpoint: emuURL + "/token"}
		mode = "no key: its own identity from the emulated metadata server, impersonating " + emu.ClientEmail() + " through IAM Credentials"
	} else {
		c.keyFile = filepath.Join(dir, demoKeyFile)
		if err := os.WriteFile(c.keyFile, emu.ServiceAccountJSON(emuURL+"/token"), 0o600); err != nil {
			return fmt.Errorf("--dir %s: %w", dir, err)
		}
		if key, err = loadKey(c.keyFile); err != nil {
			return err
		}
	}
	secret := newSecret()
	c.policyFile = filepath.Join(dir, demoPolicyFile)
	if err := os.WriteFile(c.policyFile, fmt.Appendf(nil, demoPolicy, policy.HashSecret(secret)), 0o600); err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	pol, err := loadPolicy("", c.policyFile)
	if err != nil {
		return err
	}
	files := demoPolicyFile + " (the policy)"
	if !keylessFlag {
		files += " and " + demoKeyFile + " (the emulator's key)"
	}
	fmt.Fprintf(stdout, "chat-broker demo: files in %s: %s. Edit the policy while the demo runs: it is reloaded on save.\n\n", dir, files)
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

Try a call the policy refuses: the answer names the rule to change in %s.
curl -sS -H "Authorization: Bearer $CHAT_BROKER_TOKEN" "$CHAT_BROKER_URL/v1/spaces/OTHER/messages"

Health: http://%s/readyz. Audit lines go to stderr. Ctrl-C stops.
`, proxyAddr, emuURL, mode, proxyAddr, secret, c.policyFile, adminAddr)
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
