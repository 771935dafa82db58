package proxy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/approvals"
	"github.com/chat-broker/chat-broker/internal/discoverydoc"
	"github.com/chat-broker/chat-broker/internal/filters"
	"github.com/chat-broker/chat-broker/internal/identity"
	"github.com/chat-broker/chat-broker/internal/inbound"
	"github.com/chat-broker/chat-broker/internal/refusal"
	"github.com/chat-broker/chat-broker/internal/retry"
	"github.com/chat-broker/chat-broker/internal/shaping"
	"github.com/chat-broker/chat-broker/internal/uploads"
	"github.com/chat-broker/chat-broker/policy"
)

// Token is a Google access token as the proxy needs one: it sets itself
// as a request's Authorization, and never prints (the broker's print as
// REDACTED). It is an alias of an interface literal so that a token
// source of another package satisfies TokenSource without importing this
// one; broker.Source does.
type Token = interface{ SetAuthHeader(*http.Request) }

// TokenSource mints or returns a cached Google access token for a subject
// ("" for the app itself) and scope set. (*broker.Broker).Source()
// implements it.
type TokenSource interface {
	Token(ctx context.Context, subject string, scopes []chatapi.Scope) (Token, error)
}

// invalidator is implemented by token sources that can drop a cached
// token, which the proxy does when Google answers 401 to it. Dropping that
// token only (not whatever is cached for its scopes now) keeps a burst of
// 401s from discarding the fresh token another call just minted.
type invalidator interface {
	InvalidateToken(Token)
}

// A token source's errors may say more: that Google refused the
// delegated subject (the caller's setup, 403), or when a retry may help
// (503 with Retry-After).
type (
	delegationRefused interface{ DelegationRefused() bool }
	subjectUnknown    interface{ SubjectUnknown() bool }
	retryAfterError   interface {
		RetryAfter() (time.Duration, bool)
	}
)

// PolicySource returns the policy in force. *policy.Store implements it;
// the proxy reads it once per request, so a reload never changes the rules
// halfway through a call.
type PolicySource interface {
	Load() *policy.Policy
}

// Config configures a Proxy.
type Config struct {
	// Upstream is the pinned Chat API origin, e.g. https://chat.googleapis.com.
	// The caller never chooses the host. Required.
	Upstream *url.URL
	// Policy decides who may call what. Required.
	Policy PolicySource
	// Tokens supplies Google tokens. Required.
	Tokens TokenSource
	// UpstreamTLS configures TLS to an https upstream; nil means the
	// system's roots. Tests set their own roots.
	UpstreamTLS *tls.Config
	// ResponseHeaderTimeout bounds the wait for an attempt's response
	// head once its request is sent; 0 means 2 minutes. An attempt that
	// times out may have taken effect: only a call Chat cannot do twice
	// is tried again, and the caller gets 504 UPSTREAM_TIMEOUT.
	ResponseHeaderTimeout time.Duration
	// Audit receives one record per call; nil discards them.
	Audit *slog.Logger
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for latency figures, holds, limits, back-off and
	// deadlines; nil means time.Now.
	Now func() time.Time
	// After returns a channel that receives once d has passed on the Now
	// clock, as time.After does; nil means time.After. Every wait of the
	// proxy (back-off, holds, rate limits, queueing) goes through it, so
	// tests drive them with a fake clock instead of sleeping.
	After func(d time.Duration) <-chan time.Time
	// Hosts are the Host header values accepted on TCP connections: the
	// listener's own address and its loopback names. A request for any
	// other host (DNS rebinding, a confused proxy) is refused. Empty
	// means any. Unix-socket requests are not checked.
	Hosts []string
	// Metrics receives the proxy's Prometheus series; nil records none.
	Metrics *Metrics
	// ServiceAccounts verifies Kubernetes projected service-account
	// tokens for callers identified by identify.serviceAccount; nil means
	// such callers cannot be identified. *ServiceAccountVerifier
	// implements it.
	ServiceAccounts TokenVerifier

	// Deadline bounds how long the broker spends on a call before its
	// last attempt: no wait (rate limit, hold, queue, back-off) and no
	// retry starts that would end after it. It never cuts a response
	// that is under way (a long media download), and never reaches past
	// the caller's own context deadline. 0 means 30 s.
	Deadline time.Duration
	// Retries says when and how calls are retried; the zero value is the
	// defaults.
	Retries Retries
	// Shaping paces calls before they go upstream; the zero value holds a
	// space after Chat answers 429 and applies the policy's per-caller
	// limits, nothing more. Its clock, caps and gauges are set by New from
	// the fields below.
	Shaping shaping.Config
	// MaxInFlight caps the calls being forwarded to Chat at once (from
	// the first attempt to the end of the response, back-off included);
	// 0 means 256.
	MaxInFlight int
	// MaxWaiting caps the calls waiting at once, for an in-flight slot, a
	// rate-limit token or the end of a hold. Past it a call is answered
	// 503 OVERLOADED with Retry-After at once, so an outage cannot build
	// an unbounded queue. 0 means 1024; negative means none may wait.
	MaxWaiting int
}

// TokenVerifier verifies a bearer token and returns the Kubernetes
// service account ("namespace/name") it was issued to.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (string, error)
}

// Headers of the broker's own.
const (
	// SubjectHeader names the user a caller acts as through domain-wide
	// delegation. The policy must allow that caller that subject; the
	// header is never forwarded.
	SubjectHeader = "X-Chat-Broker-Subject"
	// HintHeader, on a response, says in one sentence how to fix a refusal
	// that Chat answered (the app is not in the space; an admin has not
	// approved a chat.app.* scope). Chat's body passes through unchanged.
	HintHeader = "X-Chat-Broker-Hint"
)

// Proxy is the broker's request path as an http.Handler. It is safe for
// concurrent use.
type Proxy struct {
	upstream  *url.URL
	policy    PolicySource
	tokens    TokenSource
	router    *chatapi.Router
	basePath  string
	transport *upstreamTransport
	approvals approvals.Tracker
	uploads   uploads.Sessions
	hosts     map[string]bool
	accounts  TokenVerifier
	failures  *rate.Limiter
	metrics   *Metrics
	audit     *slog.Logger
	log       *slog.Logger
	now       func() time.Time
	after     func(time.Duration) <-chan time.Time

	deadline time.Duration
	retries  Retries
	budget   *retry.Budget
	shaper   *shaping.Shaper
	stats    stats
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.Upstream == nil || cfg.Upstream.Host == "":
		return nil, errors.New("proxy: no upstream: set Config.Upstream, e.g. https://chat.googleapis.com")
	case cfg.Upstream.Scheme != "https" && cfg.Upstream.Scheme != "http":
		return nil, fmt.Errorf("proxy: upstream scheme %q: want https (or http on loopback)", cfg.Upstream.Scheme)
	case cfg.Policy == nil:
		return nil, errors.New("proxy: no policy: set Config.Policy")
	case cfg.Tokens == nil:
		return nil, errors.New("proxy: no token source: set Config.Tokens")
	}
	p := &Proxy{
		upstream:  cfg.Upstream,
		policy:    cfg.Policy,
		tokens:    cfg.Tokens,
		router:    chatapi.NewRouter(),
		approvals: approvals.New(),
		uploads:   uploads.New(),
		accounts:  cfg.ServiceAccounts,
		metrics:   cfg.Metrics,
		failures:  rate.NewLimiter(failedAttemptsPerSecond, failedAttemptsBurst),
		audit:     orDiscard(cfg.Audit),
		log:       orDiscard(cfg.Logger),
		now:       cfg.Now,
	}
	if p.now == nil {
		p.now = time.Now
	}
	if err := p.configureResilience(cfg); err != nil {
		return nil, err
	}
	if len(cfg.Hosts) > 0 {
		p.hosts = map[string]bool{}
		for _, h := range cfg.Hosts {
			p.hosts[strings.ToLower(h)] = true
		}
	}
	p.basePath = strings.TrimSuffix(cfg.Upstream.Path, "/")
	p.transport = newUpstreamTransport(cfg.Upstream, cfg.UpstreamTLS, cmp.Or(cfg.ResponseHeaderTimeout, upstreamHeaderTimeout), p.log)
	return p, nil
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// call is what the proxy learns about one request on its way through; the
// audit record is written from it.
type call struct {
	caller, method, space, subject, rule, reason string
	decision                                     string // "allow", "deny" (policy) or "" (refused before a decision)
	scopes                                       []chatapi.Scope
	path, query                                  string
	token                                        Token
	upstreamStatus                               int
	upstreamID                                   string
	hint                                         string
	request                                      policy.Request // what the policy was asked
	upstreamStart                                time.Time
	upstreamLatency                              time.Duration

	// body is the buffered JSON request body, sent again on a retry; nil
	// when there is none or it streams (media).
	body []byte
	// replayable reports whether the request can be sent again: its body
	// is buffered or absent.
	replayable bool
	// idempotent reports whether Chat does the work at most once however
	// often the request arrives: a read, or a write with a requestId.
	idempotent bool
	// uploadStarts and uploadContinues mark the requests of a resumable
	// upload: the one that starts its session, and those that carry an
	// upload_id.
	uploadStarts, uploadContinues bool
	origin                        string // "http://" + the Host the caller called, for a session URL
	// readFilter: a messages.search that no rule allows in every space;
	// the filter in its body decides.
	readFilter bool
	requestID  string    // the caller's requestId, or the one the broker made
	deadline   time.Time // see Config.Deadline
	attempts   int       // upstream attempts made
	reauthed   bool      // a 401 has been retried with a fresh token
}

// uploadID is the upload_id of a resumable upload's continuation.
func (c *call) uploadID() string {
	q, _ := url.ParseQuery(c.query) // CheckQuery built it
	return q.Get("upload_id")
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.now()
	c := &call{}
	sw := &statusWriter{ResponseWriter: w}
	recorded := false
	defer func() {
		// A panic (an upstream answer net/http refuses to write, a bug)
		// still leaves its audit line and metrics; net/http then closes
		// the caller's connection.
		if v := recover(); v != nil {
			if !recorded {
				if v != http.ErrAbortHandler {
					c.reason = "INTERNAL"
					p.log.Error("call failed in the broker", "caller", c.caller, "method", c.method, "panic", fmt.Sprint(v))
				}
				status := sw.status
				if status == 0 {
					status = http.StatusInternalServerError
				}
				latency := p.now().Sub(start)
				p.record(r, c, status, latency)
				p.metrics.observe(c, status, latency)
			}
			panic(v)
		}
	}()
	err := p.serve(sw, r, c)
	if err != nil && err != errAborted {
		_, c.reason = refusal.Write(sw, err)
	}
	latency := p.now().Sub(start)
	p.record(r, c, sw.status, latency)
	p.metrics.observe(c, sw.status, latency)
	recorded = true
	if err == errAborted {
		// Cut the caller's connection, so that a response that broke
		// off upstream does not end as if it were complete.
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := inbound.CheckFraming(w, r); err != nil {
		return err
	}
	if discoverydoc.Requested(r) {
		if err := p.checkHost(r); err != nil {
			return err
		}
		c.method = "discovery"
		return discoverydoc.Serve(w, r)
	}
	path, err := inbound.CheckTarget(r)
	if err != nil {
		return err
	}
	inbound.ApplyPatchOverride(r)
	if err := inbound.CheckHeaders(r.Header); err != nil {
		return err
	}
	inbound.DropGoogHeaders(r.Header)
	if err := p.checkHost(r); err != nil {
		return err
	}

	// Identify before routing, so an unknown caller learns nothing about
	// what the broker would forward.
	pol := p.policy.Load()
	caller, err := p.identify(r, pol)
	if err != nil {
		return p.identifyFailed(r, path, err)
	}
	c.caller = caller.Name

	subject, err := subjectOf(r.Header)
	if err != nil {
		return err
	}
	if subject == "" && inbound.UploadPath(path) {
		// Clients send a resumable upload's bytes without the start's
		// extra headers; the session knows whom it acts as.
		subject = p.uploads.Subject(caller.Name, r.URL.Query().Get("upload_id"))
	}
	m, d, err := resolve(p.router, pol, caller, r, path, subject, c)
	if err != nil {
		return err
	}
	c.scopes, c.subject = d.Scopes, d.Subject

	if err := inbound.CheckBody(w, r, m); err != nil {
		return err
	}
	if err := bufferBody(r, m, c); err != nil {
		return err
	}
	if c.uploadContinues {
		if err := p.uploads.Check(c.uploadID(), uploads.Session{Caller: c.caller, Space: c.space, Subject: d.Subject}); err != nil {
			return err
		}
	}
	if c.uploadStarts {
		c.origin = "http://" + r.Host
	}
	if c.readFilter {
		if d, err = decideSearch(pol, caller, r, c); err != nil {
			c.decision = "deny"
			return err
		}
		c.rule, c.decision = d.Rule, "allow"
		c.scopes, c.subject = d.Scopes, d.Subject
	}
	p.addRequestID(m, c)
	c.idempotent = m.ReadOnly || c.requestID != ""
	c.deadline = p.deadlineFor(r.Context())

	// Shape: the caller's own bucket, then any hold Chat's 429s put on
	// the space, then the opt-in space and project buckets, then a slot
	// among the calls in flight. Each may wait briefly or answer 429/503
	// before anything goes upstream.
	callerLimit := p.shaper.CallerLimit(caller.Name, caller.Limits.PerMinute, caller.Limits.EffectiveBurst())
	if err := p.shaper.Throttle(r.Context(), c.deadline, callerLimit); err != nil {
		return err
	}
	pass, err := p.shaper.WaitHold(r.Context(), c.space, c.deadline, true)
	if err != nil {
		return err
	}
	// The next caller queued behind a hold goes once this one is past
	// the space's limits, so the queue leaves in arrival order. Not
	// after its slot: a slot may be held by a retry queued behind it.
	defer pass()
	if err := p.shaper.Pace(r.Context(), c.deadline, m, c.space); err != nil {
		return err
	}
	pass()
	release, err := p.shaper.Admit(r.Context(), c.deadline)
	if err != nil {
		return err
	}
	defer release()

	tok, err := p.tokens.Token(r.Context(), d.Subject, d.Scopes)
	if err != nil {
		return p.tokenError(r, c, err)
	}
	c.token = tok

	return p.forward(w, r, c)
}

// Failed identifications are limited across all callers: enough for a
// misconfigured app to show up in the log, not enough for a flood to fill
// it or burn CPU on hashing. Past the limit, failures get 429 and are not
// logged one by one.
const (
	failedAttemptsPerSecond = 10
	failedAttemptsBurst     = 100
)

// identify finds the caller from facts it cannot forge: the kernel's
// peer credentials on the Unix socket, a verified Kubernetes service
// account token, or the secret whose SHA-256 the policy holds. Never an
// IP address or a free-form header.
func (p *Proxy) identify(r *http.Request, pol *policy.Policy) (*policy.Caller, error) {
	bearer, err := inbound.Bearer(r.Header)
	if err != nil {
		return nil, err
	}
	var byPeer, byBearer *policy.Caller
	if peer, ok := identity.PeerFrom(r.Context()); ok {
		byPeer, _ = pol.CallerByPeer(peer.UID, peer.GID)
	}
	if bearer != "" {
		if p.accounts != nil && identity.LooksLikeJWT(bearer) {
			account, err := p.accounts.Verify(r.Context(), bearer)
			switch {
			case err != nil && byPeer == nil:
				return nil, refusal.New(http.StatusUnauthorized, "SERVICE_ACCOUNT_TOKEN_INVALID", "the Kubernetes service account token did not verify: "+err.Error())
			case err == nil:
				var ok bool
				if byBearer, ok = pol.CallerByServiceAccount(account); !ok && byPeer == nil {
					return nil, refusal.New(http.StatusUnauthorized, "CALLER_UNKNOWN", "service account "+account+" is no caller in the policy: add a caller with identify.serviceAccount: "+account)
				}
			}
		} else {
			byBearer, _ = pol.CallerBySecret(bearer)
		}
	}
	switch {
	case byPeer != nil && byBearer != nil && byPeer != byBearer:
		return nil, refusal.New(http.StatusUnauthorized, "CALLER_AMBIGUOUS", fmt.Sprintf("the connection's Unix user is caller %q but the bearer credential is caller %q: send one identity", byPeer.Name, byBearer.Name))
	case byPeer != nil:
		return byPeer, nil
	case byBearer != nil:
		return byBearer, nil
	case bearer == "":
		return nil, refusal.New(http.StatusUnauthorized, "CALLER_CREDENTIAL_MISSING", "no caller credential: send the caller secret as 'Authorization: Bearer <secret>' (in a Google client library, as the access token)")
	}
	return nil, refusal.New(http.StatusUnauthorized, "CALLER_UNKNOWN", "the caller secret matches no caller in the policy: check the secret the app sends, and that its SHA-256 (chat-broker hash-secret) is a callers[].identify.secretSHA256")
}

// identifyFailed logs a failed identification (never the credential) and
// answers it, with 429 once failures come faster than the limit.
func (p *Proxy) identifyFailed(r *http.Request, path string, err error) error {
	if !p.failures.Allow() {
		ref := refusal.New(http.StatusTooManyRequests, "TOO_MANY_FAILED_ATTEMPTS", "too many requests failed identification; check the app's credential and retry later")
		ref.RetryAfter = time.Second
		return ref
	}
	var ref *refusal.Error
	reason := "INVALID"
	if errors.As(err, &ref) {
		reason = ref.Reason
	}
	_, unix := identity.PeerFrom(r.Context())
	p.log.Warn("caller identification failed", "reason", reason, "remote", r.RemoteAddr, "unix_socket", unix, "method", r.Method, "path", path)
	return err
}

// checkHost refuses TCP requests addressed to a host other than the
// broker's own listener.
func (p *Proxy) checkHost(r *http.Request) error {
	if p.hosts == nil {
		return nil
	}
	if _, unix := identity.PeerFrom(r.Context()); unix {
		return nil
	}
	if !p.hosts[strings.ToLower(r.Host)] {
		return refusal.New(http.StatusBadRequest, "HOST_NOT_ALLOWED", "Host "+strconv.Quote(r.Host)+" is not this broker's address: call it by the address it listens on")
	}
	return nil
}

// tokenError turns a failed mint into the caller's answer. A delegated
// subject Google refuses is a setup fault the caller can act on (403), and
// one Google does not know is the caller's mistake (400); any other
// failure is 503, with Retry-After when a retry may help. An expired token
// is never sent instead.
func (p *Proxy) tokenError(r *http.Request, c *call, err error) error {
	if r.Context().Err() != nil {
		return refusal.New(499, "CANCELLED", "the caller went away before a token was ready")
	}
	p.log.Error("no token", "caller", c.caller, "method", c.method, "scopes", chatapi.ScopeKey(c.scopes), "subject", c.subject, "err", err)
	var dr delegationRefused
	if errors.As(err, &dr) && dr.DelegationRefused() && c.subject != "" {
		return refusal.New(http.StatusForbidden, "DELEGATION_NOT_GRANTED", fmt.Sprintf(
			"Google refused to let the Chat app act as %s with %s (unauthorized_client): a Workspace admin must grant the service account domain-wide delegation for this scope (Admin console: Security > API controls > Domain-wide delegation)",
			c.subject, chatapi.ScopeKey(c.scopes)))
	}
	var su subjectUnknown
	if errors.As(err, &su) && su.SubjectUnknown() && c.subject != "" {
		return refusal.New(http.StatusBadRequest, "SUBJECT_NOT_FOUND", fmt.Sprintf(
			"Google does not know the user %s (invalid_grant: Invalid email or User ID): set %s to the primary email of an existing user in the app's Workspace domain; retrying will not help",
			c.subject, SubjectHeader))
	}
	ref := refusal.New(http.StatusServiceUnavailable, "TOKEN_UNAVAILABLE", fmt.Sprintf("could not get a Google token with %s: %v", chatapi.ScopeKey(c.scopes), err))
	var ra retryAfterError
	if errors.As(err, &ra) {
		if d, ok := ra.RetryAfter(); ok {
			ref.RetryAfter = d
		}
	}
	return ref
}

// resolve routes a request that passed the target and header checks,
// checks its query, and asks the policy. It fills c's method, space, path,
// query, rule and decision as it learns them. ServeHTTP and Explain share
// it, so an explanation is exactly what the proxy would do.
func resolve(router *chatapi.Router, pol *policy.Policy, caller *policy.Caller, r *http.Request, path, subject string, c *call) (*chatapi.Method, policy.Decision, error) {
	mr := r
	if inbound.UploadContinuation(r, path) {
		// Google's Java and Python clients send a resumable upload's
		// bytes with PUT; the catalog knows media.upload by POST.
		mr = r.Clone(r.Context())
		mr.Method = http.MethodPost
	}
	m, vars, err := router.Match(mr)
	switch {
	case errors.Is(err, chatapi.ErrVerbNotAllowed):
		return nil, policy.Decision{}, refusal.New(http.StatusMethodNotAllowed, "VERB_NOT_ALLOWED", r.Method+" "+path+" is not a Google Chat API method; the path exists with another HTTP verb")
	case err != nil:
		return nil, policy.Decision{}, refusal.New(http.StatusNotFound, "UNKNOWN_METHOD", r.Method+" "+path+" is not a Google Chat API method chat-broker knows; check the path (e.g. /v1/spaces/AAAA/messages)")
	}
	c.method, c.space, c.path = m.ID, m.Space(vars), path
	if m.ID == "media.upload" {
		q := r.URL.Query()
		c.uploadContinues = q.Get("upload_id") != ""
		c.uploadStarts = !c.uploadContinues && (q.Get("uploadType") == "resumable" || strings.HasPrefix(path, "/resumable/"))
	}
	if c.query, err = inbound.CheckQuery(r.URL.RawQuery, m); err != nil {
		return m, policy.Decision{}, err
	}
	req, err := policyRequest(m, c.space, subject, c.query)
	if err != nil {
		return m, policy.Decision{}, err
	}
	c.request = req
	d := pol.DecideRequest(caller, req)
	if m.ID == filters.MethodSearch && !d.Allow && d.Reason == policy.ReasonSpaceNotAllowed {
		// Only a rule with spaces: ["*"] allows a search as it comes;
		// otherwise the filter in the body must name allowed spaces.
		c.readFilter = true
		c.rule, c.decision = d.Rule, "pending"
		return m, d, nil
	}
	c.rule, c.decision = d.Rule, "allow"
	if !d.Allow {
		c.decision = "deny"
		ref := refusal.New(http.StatusForbidden, d.Reason, d.Message)
		ref.Metadata = map[string]string{"caller": caller.Name, "method": m.ID}
		if d.Rule != "" {
			ref.Metadata["rule"] = d.Rule
		}
		return m, d, ref
	}
	return m, d, nil
}

// policyRequest is what the policy judges of a call: its method, space
// and subject, and what its query asks for (internal/filters).
func policyRequest(m *chatapi.Method, space, subject, query string) (policy.Request, error) {
	a, err := filters.Query(m, space, query)
	return policy.Request{Method: m, Space: space, Subject: subject, AdminAccess: a.AdminAccess, Needs: a.Needs, AnyNeed: a.AnyNeed}, err
}

// decideSearch decides a messages.search that no rule with spaces: ["*"]
// allows: the filter in its body must limit it to spaces the caller's
// rules name, each allowed.
func decideSearch(pol *policy.Policy, caller *policy.Caller, r *http.Request, c *call) (policy.Decision, error) {
	m := c.request.Method
	spaces, err := filters.SearchSpaces(m, c.body, r.Header.Get("Content-Encoding"))
	if err != nil {
		return policy.Decision{}, err
	}
	if len(spaces) == 0 {
		ref := refusal.New(http.StatusForbidden, policy.ReasonSpaceNotAllowed, fmt.Sprintf(
			`caller %q may search messages only in the spaces its rules name, and this filter names none: add space.name = "spaces/ID" to the filter (OR another space.name term for several), ANDed with the rest, or allow %s with spaces: ["*"] in %s`,
			caller.Name, m.ID, pol.File()))
		ref.Metadata = map[string]string{"caller": caller.Name, "method": m.ID}
		return policy.Decision{}, ref
	}
	var first policy.Decision
	for i, sp := range spaces {
		req := c.request
		req.Space = sp
		d := pol.DecideRequest(caller, req)
		if !d.Allow {
			ref := refusal.New(http.StatusForbidden, d.Reason, d.Message)
			ref.Metadata = map[string]string{"caller": caller.Name, "method": m.ID, "rule": d.Rule}
			return d, ref
		}
		if i == 0 {
			first = d
		}
	}
	return first, nil
}

// bufferBody reads a JSON body whole (inbound.CheckBody capped it), so
// that it can be sent again on a retry; a media upload's body streams and
// is never retried.
func bufferBody(r *http.Request, m *chatapi.Method, c *call) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		c.replayable = true
		return nil
	}
	if inbound.Streams(m) {
		return nil
	}
	buf, err := inbound.ReadBody(r, m, shaping.ErrCancelled)
	if err != nil {
		return err
	}
	c.body, c.replayable = buf, true
	r.Body, _ = c.getBody()
	r.GetBody = c.getBody
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil
	if len(buf) == 0 {
		r.Body, c.body = http.NoBody, nil
	}
	return nil
}

// addRequestID sets the requestId of a create Chat deduplicates
// (spaces.messages.create, spaces.create), so that every attempt of the
// call is one request to Chat. A call without one gets a random one. A
// caller's own requestId is sent as scopedRequestID(caller, id): Chat
// answers a repeated requestId with what the first request created, and
// every caller shares the app's identity, so an id sent as it came would
// let one caller read another's message by reusing its requestId.
func (p *Proxy) addRequestID(m *chatapi.Method, c *call) {
	if m.RequestIDParam == "" {
		return
	}
	q, err := url.ParseQuery(c.query)
	if err != nil { // checkQuery built it; cannot happen
		return
	}
	sent := newRequestID()
	if c.requestID = q.Get(m.RequestIDParam); c.requestID != "" {
		sent = scopedRequestID(c.caller, c.requestID)
	} else {
		c.requestID = sent
	}
	q.Set(m.RequestIDParam, sent)
	c.query = q.Encode()
}

// modifyResponse notes the last attempt's answer in c and sanitizes it.
func (p *Proxy) modifyResponse(resp *http.Response, c *call) {
	c.upstreamStatus = resp.StatusCode
	c.upstreamLatency = p.now().Sub(c.upstreamStart)
	c.upstreamID = resp.Header.Get("X-Goog-Request-Id")
	// Nothing from Google's front end that could set state in the caller's
	// client or point it elsewhere.
	resp.Header.Del("Set-Cookie")
	resp.Header.Del("Alt-Svc")
	// Google URLs a client would follow past the broker (upload session
	// continuations, redirects).
	// A resumable upload's session URL comes back rewritten to the
	// broker (internal/uploads).
	var sessionURLs map[string]string
	if c.uploadStarts {
		sessionURLs = map[string]string{"Location": resp.Header.Get("Location"), "X-Goog-Upload-Url": resp.Header.Get("X-Goog-Upload-Url")}
	}
	resp.Header.Del("Location")
	resp.Header.Del("X-Goog-Upload-Url")
	resp.Header.Del("X-Goog-Upload-Control-Url")
	switch {
	case c.uploadStarts:
		p.uploads.Started(resp, sessionURLs, p.upstream, p.basePath, c.origin, c.path, uploads.Session{Caller: c.caller, Space: c.space, Subject: c.subject})
	case c.uploadContinues:
		p.uploads.Finished(resp, c.uploadID())
	}
	var scope chatapi.Scope
	if len(c.scopes) == 1 {
		scope = c.scopes[0]
	}
	switch {
	case resp.StatusCode < 300 && resp.StatusCode >= 200:
		if p.approvals.Observe(scope, true, p.now()) {
			p.log.Info("chat.app scope approved: a call with it succeeded", "scope", scope)
		}
	case resp.StatusCode == http.StatusUnauthorized:
		// The token was revoked or expired early: drop it so the next call
		// mints a fresh one.
		if inv, ok := p.tokens.(invalidator); ok {
			inv.InvalidateToken(c.token)
		}
	case resp.StatusCode == http.StatusForbidden:
		p.explain403(resp, c, scope)
	}
}

// maxPeek bounds how much of a 403 body the broker reads to recognize
// Chat's two classic refusals; their bodies are a few hundred bytes.
const maxPeek = 64 << 10

// explain403 recognizes Chat's two classic 403s, adds a hint header with
// the fix and records an unapproved chat.app.* scope. The body reaches
// the caller unchanged.
func (p *Proxy) explain403(resp *http.Response, c *call, scope chatapi.Scope) {
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxPeek+1))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil || len(head) > maxPeek {
		return
	}
	// Google compresses error bodies for callers that accept gzip; the
	// caller gets the bytes as sent, the broker reads them decompressed.
	text, err := inbound.Decoded(head, resp.Header.Get("Content-Encoding"), maxPeek)
	if err != nil {
		return
	}
	switch {
	case bytes.Contains(text, []byte(chatapi.MsgAdminApproval)):
		c.hint = approvalHint(scope)
		if p.approvals.Observe(scope, false, p.now()) {
			p.log.Warn("chat.app scope not approved by the Workspace admin; calls that need it fail until an admin approves it",
				"scope", scope, "caller", c.caller, "method", c.method)
		}
	case bytes.Contains(text, []byte(chatapi.MsgNotPermitted)):
		c.hint = notMemberHint(c.space)
	}
	if c.hint != "" {
		resp.Header.Set(HintHeader, c.hint)
	}
}

// approvalUserMessage is what Google suggests an app show its users while
// a scope awaits approval.
const approvalUserMessage = "To perform this action, I need approval. <https://support.google.com/a?p=chat-app-auth|Learn more>."

func approvalHint(scope chatapi.Scope) string {
	what := "the OAuth scope this call needs"
	if scope != "" {
		what = "the scope " + string(scope)
	}
	return "A Google Workspace administrator must approve " + what + " for this Chat app (Admin console: Apps > Google Workspace Marketplace apps); meanwhile tell users: " + approvalUserMessage
}

func notMemberHint(space string) string {
	where := "the space"
	if space != "" {
		where = space
	}
	return "The Chat app is not a member of " + where + ": add the app to the space (in Chat, @mention it or use Add apps), then retry."
}

// subjectOf returns the user named in SubjectHeader, or "" for the app
// itself.
func subjectOf(h http.Header) (string, error) {
	v := h.Values(SubjectHeader)
	switch {
	case len(v) == 0:
		return "", nil
	case len(v) > 1:
		return "", refusal.New(http.StatusBadRequest, "SUBJECT_AMBIGUOUS", SubjectHeader+" is given more than once: name one user")
	case strings.TrimSpace(v[0]) == "":
		return "", refusal.New(http.StatusBadRequest, "SUBJECT_EMPTY", SubjectHeader+" is empty: name the user's email, or leave the header out to act as the app")
	}
	return strings.TrimSpace(v[0]), nil
}

// upstreamError answers a call no attempt of which got a response.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, c *call, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		_, c.reason = refusal.Write(w, refusal.New(http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE", fmt.Sprintf("%s takes at most %d bytes of body", c.method, tooBig.Limit)))
	case r.Context().Err() != nil:
		c.reason = "CANCELLED"
		w.WriteHeader(499)
	case errors.As(err, new(*refusal.Error)):
		// A retry that would have waited past the call's deadline for a
		// hold on its space.
		_, c.reason = refusal.Write(w, err)
	case isTimeout(err) && !isDialError(err):
		p.log.Warn("upstream did not answer in time", "upstream", p.upstream.Host, "method", c.method, "err", err)
		ref := refusal.New(http.StatusGatewayTimeout, "UPSTREAM_TIMEOUT", p.upstream.Host+" did not answer in time; the call may have taken effect: check before you send a write again, or send it with a requestId")
		ref.RetryAfter = time.Second
		_, c.reason = refusal.Write(w, ref)
	case errors.As(err, new(*badStatusError)):
		p.log.Warn("upstream answered with no final HTTP status", "upstream", p.upstream.Host, "method", c.method, "err", err)
		_, c.reason = refusal.Write(w, refusal.New(http.StatusBadGateway, "UPSTREAM_BAD_RESPONSE", p.upstream.Host+" sent an answer that is no HTTP response; the call may have taken effect"))
	default:
		p.log.Warn("upstream unreachable", "upstream", p.upstream.Host, "method", c.method, "err", err)
		ref := refusal.New(http.StatusBadGateway, "UPSTREAM_UNAVAILABLE", "could not reach "+p.upstream.Host+"; retry later")
		ref.RetryAfter = time.Second
		_, c.reason = refusal.Write(w, ref)
	}
}

// record writes the audit line. It names who called what and how it went;
// message text, bodies and credentials never appear in it.
func (p *Proxy) record(r *http.Request, c *call, status int, latency time.Duration) {
	decision := c.decision
	if decision == "" {
		decision = "refuse"
	}
	p.audit.LogAttrs(r.Context(), slog.LevelInfo, "call",
		slog.String("caller", c.caller),
		slog.String("method", c.method),
		slog.String("space", c.space),
		slog.String("subject", c.subject),
		slog.String("scopes", chatapi.ScopeKey(c.scopes)),
		slog.String("decision", decision),
		slog.String("rule", c.rule),
		slog.String("reason", c.reason),
		slog.Int("status", status),
		slog.Int("upstream_status", c.upstreamStatus),
		slog.String("upstream_request_id", c.upstreamID),
		slog.String("resource", strings.TrimPrefix(c.path, "/v1/")),
		slog.String("hint", c.hint),
		slog.Int("attempts", c.attempts),
		slog.String("request_id", c.requestID),
		slog.Float64("latency_ms", float64(latency.Microseconds())/1000),
	)
}

// statusWriter remembers the status sent. Unwrap lets a
// ResponseController reach the real writer's Flush. It is not
// httpsnoop.Wrap, which keeps every optional interface of the writer but
// cost 9 more allocations per call (156 to 165 in BenchmarkForward), for
// interfaces the proxy never uses: Unwrap reaches them.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var _ io.Writer = (*statusWriter)(nil)
