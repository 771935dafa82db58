package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/identity"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// serveConfig is the serve command's flags, validated before anything
// listens.
type serveConfig struct {
	keyFile, policyFile string
	keyless             keylessFlags // --impersonate and its endpoints (keyless.go)
	listen, admin       string
	socket              string
	socketMode          fileMode
	allowedHosts        string
	upstream            string
	unsafeListen        bool
	drain               time.Duration
	shutdownDelay       time.Duration
	logLevel            string
	auditFlush          time.Duration
	k8s                 k8sConfig
	shaping             shapingFlags // retries, rate limits, back-pressure (shaping.go)
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "`address` of the proxy listener (loopback unless --unsafe-listen)")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:9090", "`address` of the admin listener: /healthz, /readyz, /approvals, /metrics")
	fs.StringVar(&c.socket, "socket", "", "also serve the proxy on a Unix socket at `path`; callers there may be identified by uid/gid (identify.unixUID)")
	c.socketMode = 0o660
	fs.Var(&c.socketMode, "socket-mode", "permission `bits` of the --socket file, in octal")
	fs.StringVar(&c.allowedHosts, "allowed-hosts", "", "comma-separated extra Host header `values` the TCP listener accepts (its own loopback names always are)")
	fs.BoolVar(&c.unsafeListen, "unsafe-listen", false, "allow --listen and --admin on non-loopback addresses")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "how long in-flight calls may take to finish on shutdown")
	fs.DurationVar(&c.shutdownDelay, "shutdown-delay", 0, "on shutdown, how long to stay up while not ready (so load balancers and endpoints notice) before refusing new calls")
	fs.StringVar(&c.logLevel, "log-level", "info", "operational log `level`: debug, info, warn or error")
	fs.DurationVar(&c.auditFlush, "audit-flush-interval", 100*time.Millisecond, "audit lines are written in batches at least this often (and at shutdown); 0 writes each line as its call ends")
	c.shaping.register(fs)
	setGroup(fs, groupListeners, "listen", "admin", "socket", "socket-mode", "allowed-hosts", "unsafe-listen", "drain", "shutdown-delay")
	setGroup(fs, groupLogging, "log-level", "audit-flush-interval")
}

// check validates the listener flags shared by serve and demo.
func (c *serveConfig) check() error {
	if c.listen == "" && c.socket == "" {
		return usageError("--listen: empty; give an address, or --socket for a Unix socket only")
	}
	for _, f := range []struct{ name, addr string }{{"--listen", c.listen}, {"--admin", c.admin}} {
		if f.addr == "" && f.name == "--listen" {
			continue
		}
		host, _, err := net.SplitHostPort(f.addr)
		if err != nil {
			return usageError("%s %q: want host:port, e.g. 127.0.0.1:8080", f.name, f.addr)
		}
		if !c.unsafeListen && !isLoopback(host) {
			return usageError("%s %q: non-loopback address needs --unsafe-listen (the broker spends the app's Google identity for anyone who can reach it)", f.name, f.addr)
		}
	}
	if c.drain < 0 {
		return usageError("--drain %v: want a duration >= 0", c.drain)
	}
	if c.shutdownDelay < 0 {
		return usageError("--shutdown-delay %v: want a duration >= 0", c.shutdownDelay)
	}
	if c.auditFlush < 0 {
		return usageError("--audit-flush-interval %v: want a duration >= 0", c.auditFlush)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		return err
	}
	return c.shaping.check()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageError("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// parseUpstream accepts an https origin, or an http one on a loopback
// host (the emulator); nothing else, so a typo cannot send the app's
// tokens over plain HTTP.
func parseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, usageError("--upstream %q: want an origin such as https://chat.googleapis.com", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, usageError("--upstream %q: plain http is allowed only on a loopback host (an emulator); use https", s)
		}
	default:
		return nil, usageError("--upstream %q: scheme must be https", s)
	}
	u.Path = ""
	return u, nil
}

// Flag headings of serve's help.
const (
	groupGoogle    = "Google credentials"
	groupCallers   = "Policy and callers"
	groupListeners = "Listeners and shutdown"
	groupLimits    = "Limits and retries"
	groupLogging   = "Logging"
)

func newServeCommand() *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve --key FILE --policy FILE [flags]",
		Short: "run the broker",
		Long: `Run the broker: a proxy listener (TCP, and a Unix socket with --socket) that
forwards the Chat API calls its policy allows with the app's Google token, and an
admin listener with /healthz, /readyz, /startupz, /approvals, /metrics and POST
/quitquitquit. The key and the policy are reloaded when their files change or on
SIGHUP; a file that does not load is logged and the last good one kept. On SIGTERM
the broker turns not ready, lets calls in flight finish within --drain, and exits 0.

It mints with the service-account key (--key), or keyless (--impersonate) through
its own Google identity. Listeners stay on loopback unless --unsafe-listen.
One JSON audit line per call goes to standard output; the log to standard error.`,
		Example: `  chat-broker serve --key sa.json --policy policy.yaml
  chat-broker serve --impersonate chat-app@PROJECT.iam.gserviceaccount.com --policy policy.yaml
  CHAT_BROKER_KEY=/var/run/chat-broker/key/sa.json CHAT_BROKER_POLICY=/etc/chat-broker/policy.yaml chat-broker serve`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), c, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&c.keyFile, "key", "", "service-account key `file` (JSON, type service_account); required unless --impersonate")
	c.keyless.register(fs)
	fs.StringVar(&c.upstream, "upstream", "https://chat.googleapis.com", "Chat API `origin`; http only on a loopback host")
	fs.StringVar(&c.policyFile, "policy", "", "policy `file` (YAML); required")
	fs.StringVar(&c.k8s.issuer, "k8s-issuer", "", "Kubernetes service-account issuer `URL`; turns on identify.serviceAccount (projected tokens as the bearer)")
	fs.StringVar(&c.k8s.audience, "k8s-audience", "chat-broker", "`audience` the projected tokens must be bound to")
	fs.StringVar(&c.k8s.caFile, "k8s-ca-file", "", "CA `file` for an in-cluster issuer (e.g. /var/run/secrets/kubernetes.io/serviceaccount/ca.crt); empty: system roots")
	fs.StringVar(&c.k8s.tokenFile, "k8s-token-file", "", "token `file` sent to an in-cluster issuer (e.g. /var/run/secrets/kubernetes.io/serviceaccount/token)")
	c.register(fs)
	setGroup(fs, groupGoogle, "key", "impersonate", "iam-endpoint", "token-endpoint", "upstream")
	setGroup(fs, groupCallers, "policy", "k8s-issuer", "k8s-audience", "k8s-ca-file", "k8s-token-file")
	bindEnv(fs, "")
	return cmd
}

func runServe(ctx context.Context, c serveConfig, stdout, stderr io.Writer) error {
	if err := c.keyless.check(c.keyFile); err != nil {
		return err
	}
	switch {
	case c.keyFile == "" && c.keyless.impersonate == "":
		return usageError("--key: required: the Chat app's service-account key file (or, with no key, --impersonate EMAIL: see docs/keyless.md)")
	case c.policyFile == "":
		return usageError("--policy: required: the policy file (start one with 'chat-broker policy add-caller'; check it with 'chat-broker policy check FILE')")
	}
	if err := c.check(); err != nil {
		return err
	}
	up, err := parseUpstream(c.upstream)
	if err != nil {
		return err
	}
	var key *broker.Key
	if c.keyFile != "" {
		if key, err = loadKey(c.keyFile); err != nil {
			return err
		}
	}
	pol, err := loadPolicy("--policy", c.policyFile)
	if err != nil {
		return err
	}
	level, _ := parseLevel(c.logLevel)
	auditOut := stdout
	if c.auditFlush > 0 {
		ticker := time.NewTicker(c.auditFlush)
		defer ticker.Stop()
		aw := newAuditWriter(stdout, ticker.C)
		defer aw.Close()
		auditOut = aw
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	in := &instance{
		cfg:      c,
		key:      key,
		keyless:  c.keyless.impersonation(),
		policy:   pol,
		upstream: up,
		log:      slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})),
		audit:    slog.New(slog.NewJSONHandler(auditOut, nil)),
		hup:      hup,
	}
	return in.run(ctx)
}

// instance is one running broker: proxy and admin listeners over a
// broker and a policy.
type instance struct {
	cfg        serveConfig
	key        *broker.Key           // nil when keyless
	keyless    *broker.Impersonation // keyless mode: no key
	policy     *policy.Policy
	upstream   *url.URL
	log, audit *slog.Logger
	// proxyListener and adminListener, if set, are already bound to
	// --listen and --admin (demo binds them before its emulator takes a
	// port of its own); run closes them.
	proxyListener, adminListener net.Listener
	// onListening, if set, is called once both listeners are bound.
	onListening func(proxyAddr, adminAddr string)

	// hup delivers SIGHUP (serve only): reload the key and the policy.
	hup <-chan os.Signal
	// onReload, if set, is called after each reload attempt (tests).
	onReload func(what string, err error)

	draining  atomic.Bool
	selfTest  atomic.Bool
	lastError atomic.Value  // string: why the self-test mint failed
	quit      chan struct{} // closed by POST /quitquitquit
	quitOnce  sync.Once
	reloader  *reloader
	// currentKey is the key in force, for the key_info metric.
	currentKey atomic.Pointer[broker.Key]
}

func (in *instance) run(ctx context.Context) error {
	b, err := broker.New(broker.Config{Key: in.key, Impersonate: in.keyless, Logger: in.log})
	if err != nil {
		return err
	}
	defer b.Close()
	in.quit = make(chan struct{})
	store := policy.NewStore(in.policy)
	if in.cfg.policyFile != "" {
		in.reloader = newReloader(in.cfg.keyFile, in.cfg.policyFile, store, b, in.log)
		in.reloader.done = in.onReload
		in.reloader.onKey = func(k *broker.Key) { in.currentKey.Store(k) }
		reloadCtx, stopReload := context.WithCancel(ctx)
		defer stopReload()
		in.reloader.start(reloadCtx, in.hup)
	}
	in.currentKey.Store(in.key)
	reg, metrics := newRegistry()
	pxCfg := proxy.Config{
		Metrics:  metrics,
		Upstream: in.upstream,
		Policy:   store,
		Tokens:   b.Source(),
		Audit:    in.audit,
		Logger:   in.log,
	}
	in.cfg.shaping.apply(&pxCfg)
	closeShared, err := in.cfg.shaping.shared.open(&pxCfg, appProject(in.key, in.cfg.keyless.impersonate), in.log, reg)
	if err != nil {
		return err
	}
	defer closeShared()

	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	pl, al := in.proxyListener, in.adminListener
	if pl == nil && in.cfg.listen != "" {
		if pl, err = net.Listen("tcp", in.cfg.listen); err != nil {
			return listenError("--listen", in.cfg.listen, err)
		}
	}
	if pl != nil {
		listeners = append(listeners, pl)
	}
	if in.cfg.socket != "" {
		sl, err := listenSocket(in.cfg.socket, os.FileMode(in.cfg.socketMode))
		if err != nil {
			return fmt.Errorf("--socket: %w", err)
		}
		listeners = append(listeners, sl)
	} else if in.policy.HasUnixCallers() {
		in.log.Warn("the policy identifies callers by unixUID/unixGID, but there is no --socket: they cannot call")
	}
	if al == nil {
		if al, err = net.Listen("tcp", in.cfg.admin); err != nil {
			return listenError("--admin", in.cfg.admin, err)
		}
	}
	listeners = append(listeners, al)

	// ReadHeaderTimeout and IdleTimeout bound what a slow or idle client can
	// hold. There is no ReadTimeout or WriteTimeout: a 200 MB media upload
	// or download on a slow link legitimately takes minutes, and the
	// upstream transport bounds how long Google may stall.
	proxySrv := &http.Server{
		// ConnContext reads the kernel's peer credentials of Unix-socket
		// connections, which identify unixUID callers.
		ConnContext: identity.ConnContext,
		// "OPTIONS *" reaches the proxy (and is refused) instead of being
		// answered by net/http.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            10 * time.Second,
		IdleTimeout:                  2 * time.Minute,
		MaxHeaderBytes:               64 << 10,
		ErrorLog:                     slog.NewLogLogger(in.log.Handler(), slog.LevelWarn),
	}
	adminSrv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelWarn),
	}
	if in.cfg.k8s.issuer != "" {
		lv := &lazyVerifier{}
		if err := lv.start(ctx, in.cfg.k8s, in.log); err != nil {
			return fmt.Errorf("--k8s-ca-file/--k8s-token-file: %w", err)
		}
		pxCfg.ServiceAccounts = lv
	} else if in.policy.HasServiceAccountCallers() {
		in.log.Warn("the policy identifies callers by serviceAccount, but --k8s-issuer is not set: they cannot call")
	}
	if pl != nil {
		pxCfg.Hosts = hostsFor(pl.Addr().String(), in.cfg.allowedHosts)
		if pxCfg.Hosts == nil {
			in.log.Warn("the proxy listens beyond loopback and --allowed-hosts is empty: any Host header is accepted")
		}
	}
	px, err := proxy.New(pxCfg)
	if err != nil {
		return err
	}
	proxySrv.Handler = px
	reg.MustRegister(newApprovalCollector(px), newBrokerCollector(b, in))
	adminSrv.Handler = in.adminHandler(b, px, reg)
	errc := make(chan error, len(listeners))
	for _, l := range listeners[:len(listeners)-1] {
		go func() { errc <- proxySrv.Serve(l) }()
	}
	go func() { errc <- adminSrv.Serve(al) }()

	selfTestCtx, stopSelfTest := context.WithCancel(ctx)
	defer stopSelfTest()
	go in.selfTestMint(selfTestCtx, b)

	listenAddr := ""
	if pl != nil {
		listenAddr = pl.Addr().String()
	}
	in.log.Info("serving", append([]any{"listen", listenAddr, "admin", al.Addr().String(), "socket", in.cfg.socket,
		"upstream", in.upstream.String()}, append(in.identityAttrs(),
		"callers", len(in.policy.Callers()), "go_memory_limit", goMemoryLimit())...)...)
	if in.onListening != nil {
		in.onListening(listenAddr, al.Addr().String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case <-in.quit:
		in.log.Info("POST /quitquitquit: shutting down")
	case serveErr = <-errc:
	}

	// Go not-ready, stay up for --shutdown-delay so endpoints notice, stop
	// accepting, and let in-flight calls finish within a fresh deadline:
	// ctx is already cancelled and would drain nothing.
	in.draining.Store(true)
	if in.cfg.shutdownDelay > 0 && serveErr == nil {
		in.log.Info("not ready; waiting before shutdown", "shutdown_delay", in.cfg.shutdownDelay.String())
		time.Sleep(in.cfg.shutdownDelay)
	}
	in.log.Info("shutting down", "drain", in.cfg.drain.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), in.cfg.drain)
	defer cancel()
	err = proxySrv.Shutdown(drainCtx)
	// Probes answered while draining (and the /quitquitquit that began it)
	// finish; past the drain deadline they are cut.
	if adminSrv.Shutdown(drainCtx) != nil {
		adminSrv.Close()
	}
	px.CloseIdleConnections()
	listeners = nil // Shutdown closed them; the socket file is unlinked
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// selfTestMint mints one token at startup so that a wrong key, a disabled
// account or an unreachable token endpoint shows in /readyz before any
// app depends on the broker.
func (in *instance) selfTestMint(ctx context.Context, b *broker.Broker) {
	scopes := selfTestScopes(in.policy)
	scopes, drop := in.keylessSelfTest(scopes)
	if scopes == nil {
		in.selfTest.Store(true) // no app-auth scope granted: nothing to mint without a subject
		return
	}
	backoff := time.Second
	for {
		_, err := b.Token(ctx, "", scopes)
		if err == nil {
			if drop {
				b.Invalidate("", scopes)
			}
			in.selfTest.Store(true)
			return
		}
		in.lastError.Store(err.Error())
		in.log.Error("startup token mint failed; retrying", "scopes", chatapi.ScopeKey(scopes), "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// selfTestScopes picks the scope set most calls will use: chat.bot if any
// caller is granted it, else the first app scope granted.
func selfTestScopes(p *policy.Policy) []chatapi.Scope {
	var first chatapi.Scope
	for _, c := range p.Callers() {
		for _, s := range c.Scopes {
			if s == chatapi.ScopeBot {
				return []chatapi.Scope{s}
			}
			if first == "" && s.IsApp() {
				first = s
			}
		}
	}
	if first == "" {
		return nil
	}
	return []chatapi.Scope{first}
}

func (in *instance) adminHandler(b *broker.Broker, px *proxy.Proxy, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /approvals", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Scopes []proxy.Approval `json:"scopes"`
		}{px.Approvals()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// /startupz turns ready once, when the first token is minted, and stays
	// so: a startup probe that must not flap while the broker drains.
	mux.HandleFunc("GET /startupz", func(w http.ResponseWriter, r *http.Request) {
		if !in.selfTest.Load() && !b.Ready() {
			http.Error(w, "starting: no token minted yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// /quitquitquit lets a Job's main container end the sidecar when it is
	// done. The admin listener is loopback-only unless --unsafe-listen.
	mux.HandleFunc("POST /quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		// Answer first: shutdown closes the admin listener, and the caller
		// must see its request succeed.
		fmt.Fprintln(w, "shutting down")
		http.NewResponseController(w).Flush()
		in.quitOnce.Do(func() { close(in.quit) })
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		health := b.Health()
		switch {
		case in.draining.Load():
			http.Error(w, "not ready: draining", http.StatusServiceUnavailable)
		case health.Failing:
			http.Error(w, "not ready: Google refuses to mint the app's tokens: "+health.LastError, http.StatusServiceUnavailable)
		case !in.selfTest.Load() && !b.Ready():
			why, _ := in.lastError.Load().(string)
			if why == "" {
				why = "minting the first token"
			}
			http.Error(w, "not ready: "+strings.TrimSpace(why), http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	return mux
}

// fileMode is a flag.Value of permission bits written in octal (0660).
type fileMode os.FileMode

func (m *fileMode) String() string { return fmt.Sprintf("%#o", uint32(*m)) }

// Set's error follows the value in the message: --socket-mode: "999" is …
func (m *fileMode) Set(s string) error {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return errors.New("is not octal permission bits; write them like 0660")
	}
	*m = fileMode(v)
	return nil
}

func (m *fileMode) Type() string { return "mode" }

// hostsFor returns the Host values a loopback listener at addr answers
// to, plus extra; nil (any Host) when addr is not loopback and extra is
// empty.
func hostsFor(addr, extra string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var hosts []string
	if isLoopback(host) {
		hosts = []string{addr, "localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port}
	}
	hosts = append(hosts, splitList(extra)...)
	if len(hosts) == 0 {
		return nil
	}
	return hosts
}

// listenSocket listens on a Unix socket at path with the given mode. A
// stale socket from an earlier run is removed; any other file there is
// left alone and is an error.
func listenSocket(path string, mode os.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
