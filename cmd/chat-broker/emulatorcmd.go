package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// emulatorFlags are the emulator command's flags.
type emulatorFlags struct {
	listen, writeKey, spaces, approve, delegate, quotas string
	lifetime                                            time.Duration
	unsafeListen                                        bool
}

func newEmulatorCommand() *cobra.Command {
	var f emulatorFlags
	cmd := &cobra.Command{
		Use:   "emulator --write-key FILE [flags]",
		Short: "run the emulator alone: Google's token endpoint and the Chat API, in memory, for tests",
		Long: `Run the emulator: an in-memory fake of Google's token endpoint (it verifies the
broker's signed assertions), IAM Credentials, the metadata server and the Chat API,
with fault injection. It writes a service-account key file whose token_uri points
at it, for 'chat-broker serve --key FILE --upstream URL'. docs/emulator.md
describes its control API.`,
		Example: `  chat-broker emulator --write-key /tmp/sa.json
  chat-broker emulator --write-key /tmp/sa.json --spaces spaces/AAAA,spaces/BBBB --approve chat.app.messages.readonly`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEmulator(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.writeKey, "write-key", "", "write a service-account key `file` whose token_uri points at the emulator; required")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8081", "`address` to serve the token endpoint and Chat API on")
	fs.BoolVar(&f.unsafeListen, "unsafe-listen", false, "allow a non-loopback --listen")
	fs.StringVar(&f.spaces, "spaces", "spaces/AAAA", "comma-separated `spaces` where the app is a member")
	fs.StringVar(&f.approve, "approve", "", "comma-separated chat.app.* `scopes` an admin has approved (default none, like a new app)")
	fs.StringVar(&f.delegate, "delegate", "", "comma-separated `users` the service account may act as (domain-wide delegation), or * for every user (default none)")
	fs.DurationVar(&f.lifetime, "token-lifetime", time.Hour, "lifetime of issued access tokens (the broker takes any of 1m or more; its margins are a quarter of it, at most 1m)")
	fs.StringVar(&f.quotas, "quotas", "", "Chat's per-minute `quotas` to enforce: CLASS=N per project, per-space-writes=N, per-space-reads=N, e.g. message-writes=3000,per-space-writes=60 (default none)")
	bindEnv(fs, "EMULATOR_")
	return cmd
}

func runEmulator(ctx context.Context, f emulatorFlags, stdout, stderr io.Writer) error {
	if f.writeKey == "" {
		return usageError("--write-key: required: where to write the key file the broker loads with --key")
	}
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return usageError("--listen %q: want host:port, e.g. 127.0.0.1:8081", f.listen)
	}
	if !f.unsafeListen && !isLoopback(host) {
		return usageError("--listen %q: non-loopback address needs --unsafe-listen", f.listen)
	}
	if f.lifetime <= 0 || f.lifetime > time.Hour {
		return usageError("--token-lifetime %v: want more than 0 and at most 1h, as Google", f.lifetime)
	}
	cfg := emulator.Config{
		Spaces:        splitList(f.spaces),
		TokenLifetime: f.lifetime,
		Logger:        slog.New(slog.NewJSONHandler(stderr, nil)),
	}
	if cfg.Quotas, err = emulator.ParseQuotas(f.quotas); err != nil {
		return usageError("--quotas: %s", strings.TrimPrefix(err.Error(), "emulator: "))
	}
	for _, s := range cfg.Spaces {
		if _, err := fmt.Sscanf(s, "spaces/%s", new(string)); err != nil {
			return usageError("--spaces: %q: want space names such as spaces/AAAA", s)
		}
	}
	for _, u := range splitList(f.delegate) {
		if u == "*" {
			cfg.Delegation = true
			continue
		}
		if !strings.Contains(u, "@") {
			return usageError("--delegate: %q: want users' emails, or *", u)
		}
		cfg.DelegatedUsers = append(cfg.DelegatedUsers, u)
	}
	for _, s := range splitList(f.approve) {
		sc, ok := chatapi.ParseScope(s)
		if !ok || !sc.IsApp() {
			return usageError("--approve: %q is not a chat.app.* scope (e.g. chat.app.messages.readonly)", s)
		}
		cfg.Approved = append(cfg.Approved, sc)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return listenError("--listen", f.listen, err)
	}
	url := "http://" + l.Addr().String()
	if err := os.WriteFile(f.writeKey, emu.ServiceAccountJSON(url+"/token"), 0o600); err != nil {
		l.Close()
		return fileError("--write-key", f.writeKey, err, "name a file in a folder that exists")
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Fprintf(stdout, "chat-broker emulator: serving %s; key for it in %s\nrun the broker: chat-broker serve --key %s --policy policy.yaml --upstream %s\nor keyless: GCE_METADATA_HOST=%s chat-broker serve --impersonate %s --iam-endpoint %s --token-endpoint %s/token --policy policy.yaml --upstream %s\ncontrol it: curl -d '{\"scope\":\"chat.app.spaces.create\",\"approved\":true}' %s/emulator/approvals\n",
		url, f.writeKey, f.writeKey, url, l.Addr().String(), emu.ClientEmail(), url, url, url, url)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
