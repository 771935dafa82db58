package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "`address` to serve the token endpoint and Chat API on")
	writeKey := fs.String("write-key", "", "write a service-account key `file` whose token_uri points at the emulator; required")
	spaces := fs.String("spaces", "spaces/AAAA", "comma-separated `spaces` where the app is a member")
	approve := fs.String("approve", "", "comma-separated chat.app.* `scopes` an admin has approved (default none, like a new app)")
	delegate := fs.String("delegate", "", "comma-separated `users` the service account may act as (domain-wide delegation), or * for every user (default none)")
	lifetime := fs.Duration("token-lifetime", time.Hour, "lifetime of issued access tokens (the broker takes any of 1m or more; its margins are a quarter of it, at most 1m)")
	unsafeListen := fs.Bool("unsafe-listen", false, "allow a non-loopback --listen")
	quotas := fs.String("quotas", "", "Chat's per-minute `quotas` to enforce: CLASS=N per project, per-space-writes=N, per-space-reads=N, e.g. message-writes=3000,per-space-writes=60 (default none)")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("emulator: unexpected argument %q", fs.Arg(0))
	}
	if *writeKey == "" {
		return usageError("--write-key: required: where to write the key file the broker loads with --key")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageError("--listen %q: want host:port, e.g. 127.0.0.1:8081", *listen)
	}
	if !*unsafeListen && !isLoopback(host) {
		return usageError("--listen %q: non-loopback address needs --unsafe-listen", *listen)
	}
	if *lifetime <= 0 || *lifetime > time.Hour {
		return usageError("--token-lifetime %v: want more than 0 and at most 1h, as Google", *lifetime)
	}
	cfg := emulator.Config{
		Spaces:        splitList(*spaces),
		TokenLifetime: *lifetime,
		Logger:        slog.New(slog.NewJSONHandler(stderr, nil)),
	}
	if cfg.Quotas, err = emulator.ParseQuotas(*quotas); err != nil {
		return usageError("--quotas: %s", strings.TrimPrefix(err.Error(), "emulator: "))
	}
	for _, s := range cfg.Spaces {
		if _, err := fmt.Sscanf(s, "spaces/%s", new(string)); err != nil {
			return usageError("--spaces: %q: want space names such as spaces/AAAA", s)
		}
	}
	for _, u := range splitList(*delegate) {
		if u == "*" {
			cfg.Delegation = true
			continue
		}
		if !strings.Contains(u, "@") {
			return usageError("--delegate: %q: want users' emails, or *", u)
		}
		cfg.DelegatedUsers = append(cfg.DelegatedUsers, u)
	}
	for _, s := range splitList(*approve) {
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
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	url := "http://" + l.Addr().String()
	if err := os.WriteFile(*writeKey, emu.ServiceAccountJSON(url+"/token"), 0o600); err != nil {
		l.Close()
		return fmt.Errorf("--write-key: %w", err)
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Fprintf(stdout, "chat-broker emulator: serving %s; key for it in %s\nrun the broker: chat-broker serve --key %s --policy policy.yaml --upstream %s\nor keyless: GCE_METADATA_HOST=%s chat-broker serve --impersonate %s --iam-endpoint %s --token-endpoint %s/token --policy policy.yaml --upstream %s\ncontrol it: curl -d '{\"scope\":\"chat.app.spaces.create\",\"approved\":true}' %s/emulator/approvals\n",
		url, *writeKey, *writeKey, url, l.Addr().String(), emu.ClientEmail(), url, url, url, url)
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
