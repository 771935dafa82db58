package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// The bench re-executes its own binary for the servers it measures, so
// that each has its own process, CPU time and memory: the variable names
// the role, and ChildMain plays it.
const (
	childEnv    = "CHAT_BROKER_BENCH_CHILD"
	upstreamEnv = "CHAT_BROKER_BENCH_UPSTREAM"
	// The TLS upstream's certificate and key files (PEM).
	tlsCertEnv = "CHAT_BROKER_BENCH_TLS_CERT"
	tlsKeyEnv  = "CHAT_BROKER_BENCH_TLS_KEY"

	roleUpstream    = "upstream"
	roleBareProxy   = "bare-proxy"
	roleTuned       = "tuned-proxy"
	roleTLSUpstream = "tls-upstream"
)

// ChildMain plays the child role named in the environment, if any, and
// reports whether it did. main (and a test's TestMain) calls it first
// and exits with code when it returns true.
func ChildMain() (handled bool, code int) {
	role := os.Getenv(childEnv)
	if role == "" {
		return false, 0
	}
	var err error
	if role == roleTLSUpstream {
		err = serveTLSUpstream(os.Getenv(tlsCertEnv), os.Getenv(tlsKeyEnv), os.Stderr)
	} else {
		err = serveChild(role, os.Getenv(upstreamEnv), os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat-broker-bench %s: %v\n", role, err)
		return true, 1
	}
	return true, 0
}

func serveChild(role, upstream string, stderr io.Writer) error {
	var h http.Handler
	switch role {
	case roleUpstream:
		h = Upstream()
	case roleBareProxy, roleTuned:
		u, err := url.Parse(upstream)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%s=%q: want the upstream's URL", upstreamEnv, upstream)
		}
		h = bareProxy(u)
		if role == roleTuned {
			h = tunedProxy(u)
		}
	default:
		return fmt.Errorf("%s=%q: unknown role", childEnv, role)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "listening %s\n", l.Addr())
	return serveUntilStopped(map[*http.Server]net.Listener{newChildServer(h): l})
}

// newChildServer is the http.Server every child serves h with.
func newChildServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
}

// serveUntilStopped serves each server on its listener until one fails
// or SIGTERM or an interrupt arrives, then shuts them all down, waiting
// at most 2 s for calls in flight.
func serveUntilStopped(srvs map[*http.Server]net.Listener) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, len(srvs))
	for srv, l := range srvs {
		go func() { errc <- srv.Serve(l) }()
	}
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for srv := range srvs {
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && failed == nil {
			failed = err
		}
	}
	return failed
}

// startServerChild starts self in role and returns it with its address
// (what follows "listening " on its ready line). extraEnv are more
// KEY=VALUE variables for the child.
func startServerChild(self, role, upstream string, extraEnv ...string) (*child, string, error) {
	env := append(cleanEnv(), childEnv+"="+role, upstreamEnv+"="+upstream)
	env = append(env, extraEnv...)
	c, err := startChild(role, self, nil, env, nil, func(l string) bool { return strings.HasPrefix(l, "listening ") })
	if err != nil {
		return nil, "", err
	}
	if err := c.waitReady(10 * time.Second); err != nil {
		c.stop()
		return nil, "", err
	}
	return c, strings.TrimPrefix(c.readyLine, "listening "), nil
}

// cleanEnv is this process's environment without the bench's and the
// broker's own variables, so a child is configured by its arguments only.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CHAT_BROKER_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
