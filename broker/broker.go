package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
	"golang.org/x/sync/singleflight"

	"github.com/chat-broker/chat-broker/chatapi"
)

// ErrClosed is the cause of mints attempted after Close.
var ErrClosed = errors.New("broker: closed")

// Config configures a Broker. Key or Impersonate is required, not both.
type Config struct {
	// Key is the service-account key tokens are minted with.
	Key *Key
	// Impersonate, instead of Key, is keyless mode: the broker's own
	// Google identity mints the app's tokens through the IAM Credentials
	// API (keyless.go).
	Impersonate *Impersonation
	// HTTPClient is used for the token endpoint, and keyless for the IAM
	// Credentials API under the broker's own credentials. Nil: a client
	// with dial, TLS and response-header timeouts that follows no
	// redirects.
	HTTPClient *http.Client
	// Now is the clock for every time the broker reads: expiry,
	// refresh-ahead, MinRemaining, back-off, and the times Health
	// reports. Nil: time.Now. Only what bounds real network I/O runs on
	// real time: MintTimeout, the HTTP client's timeouts, and the iat and
	// exp that x/oauth2 stamps on the assertion Google checks.
	Now func() time.Time
	// RefreshAfter is the fraction of a token's lifetime after which it is
	// refreshed in the background, jittered by ±10% per token so that
	// tokens minted together are not refreshed together. It must be in
	// [0, 1); 0 means 0.5.
	RefreshAfter float64
	// MinRemaining is the least time a token handed out has left: a
	// cached token closer to expiry is never returned, but re-minted
	// synchronously. Per token it is at most a quarter of the lifetime
	// Google granted, so that short-lived tokens work: any lifetime of a
	// minute or more does (a 2-minute token is served until 30 s before
	// its expiry). 0 means 1 minute.
	MinRemaining time.Duration
	// CacheSize is the most (subject, scope set) entries kept; the least
	// recently used is evicted first. 0 means 1024.
	CacheSize int
	// MintTimeout bounds one mint. 0 means 30 seconds. A mint runs on the
	// broker's own context, not a caller's, so one caller giving up does
	// not fail the others waiting on the same mint.
	MintTimeout time.Duration
	// Logger receives mint successes (debug), recoveries (info),
	// transient failures (warn, with the back-off) and permanent failures
	// (error, once per cache entry and error; repeats at debug). Nil:
	// discard. Nothing secret is ever logged.
	Logger *slog.Logger
	// After returns a channel that receives once d has passed on the
	// clock Now reads. The background refresher waits on it for the next
	// refresh that is due. Nil: time.After. Tests pair it with a fake Now,
	// so they drive the refresher without sleeping.
	After func(d time.Duration) <-chan time.Time
}

// Stats counts what a Broker did since New. A mint is one exchange with
// the token endpoint; callers that share a mint count it once.
type Stats struct {
	Mints       int64 // successful mints
	MintErrors  int64 // failed mints: TransientErrors + PermanentErrors + mints cut short by Close
	CacheHits   int64 // Token calls answered from the cache
	CacheMisses int64 // Token calls that had to wait for a mint

	TransientErrors    int64 // failed mints worth retrying (MintError.Temporary)
	PermanentErrors    int64 // failed mints that need a fix: invalid_grant, invalid_scope, unauthorized_client, …
	BackgroundAttempts int64 // mints by the background refresh, whatever their outcome
	SyncAttempts       int64 // mints a caller waited for, whatever their outcome
}

// Broker mints and caches access tokens. It is safe for concurrent use.
type Broker struct {
	key          atomic.Pointer[Key]
	keyless      *keyless // keyless mode (Config.Impersonate); then key is nil
	client       *http.Client
	ownClient    bool // client is ours: Close closes its idle connections
	now          func() time.Time
	refreshAfter float64
	minRemaining time.Duration
	mintTimeout  time.Duration
	log          *slog.Logger

	// cache bounds and orders the cached tokens; hot holds the same
	// entries for look-ups that take no lock, so concurrent cache hits do
	// not contend. Every change to either is made under cacheMu, through
	// store and drop, and the cache's evictions remove from hot, so the
	// two hold the same entries between changes.
	cache   *lru.Cache[string, *entry]
	hot     sync.Map // cache key -> *entry
	cacheMu sync.Mutex
	sf      singleflight.Group

	// ctx is what mints run on; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	wg     sync.WaitGroup // mints and background refreshes in flight
	once   sync.Once

	inflight atomic.Int64 // tracked goroutines (mints, background refreshes); tests wait for 0

	// The background refresher (refresh.go): one goroutine, started by
	// New and ended by Close, asleep until the earliest due refresh.
	after       func(time.Duration) <-chan time.Time
	wake        chan struct{}      // buffered 1: the schedule changed, look again
	probe       chan chan struct{} // tests only: a round trip through the refresher's loop
	refreshDone chan struct{}      // closed when the refresher has returned

	ready                           atomic.Bool
	mints, mintErrors, hits, misses atomic.Int64
	transient, permanent            atomic.Int64
	bgAttempts, syncAttempts        atomic.Int64
	health                          health
	afterMint                       func(cacheKey string, err error) // test hook; nil in production
}

// entry is one cached token. tok, account, cacheKey and refreshAt are
// immutable; a successful refresh replaces the whole entry, which is what
// resets its back-off.
type entry struct {
	tok       Token
	account   string    // Key.account() of the key that minted it
	cacheKey  string    // subject NUL scope key
	refreshAt time.Time // when a background refresh becomes due
	// margin is the least time the token has left when it is handed
	// out: Config.MinRemaining, scaled down for a short-lived token.
	margin time.Duration
	// next (unix nanoseconds, by Config.Now) is when the next background
	// refresh may start. It starts at refreshAt. Whoever starts a refresh
	// moves it one MintTimeout ahead (a lease, so concurrent triggers
	// start one refresh, and a refresh that never reports back is tried
	// again); a failure moves it one back-off step ahead of the failure.
	// It is read without mu on every cache hit, so hits stay lock-free
	// here; mu orders the writes.
	next atomic.Int64
	// touched (unix nanoseconds, by Config.Now) is when a hit last told
	// the LRU that this entry is in use.
	touched atomic.Int64

	mu        sync.Mutex // guards next's writes and the fields below
	failures  int        // failed mints since this token was minted
	lastErr   string     // the last one's safe text
	permanent bool       // the last one is permanent
}

// New returns a Broker that mints with cfg.Key, and starts its background
// refresher. It does not contact the token endpoint; the first Token call
// does. Close the Broker to stop the refresher.
func New(cfg Config) (*Broker, error) {
	var kl *keyless
	switch {
	case cfg.Key != nil && cfg.Impersonate != nil:
		return nil, errors.New("broker: Config.Key and Config.Impersonate are exclusive: mint with a key, or keyless, not both")
	case cfg.Impersonate != nil:
		var err error
		if kl, err = newKeyless(*cfg.Impersonate); err != nil {
			return nil, err
		}
	case cfg.Key == nil || cfg.Key.privatePEM == nil:
		return nil, errors.New("broker: Config.Key is required: load it with LoadKey or ParseKey (or set Config.Impersonate for keyless mode)")
	}
	if cfg.RefreshAfter < 0 || cfg.RefreshAfter >= 1 {
		return nil, fmt.Errorf("broker: Config.RefreshAfter is %v, want a fraction in [0, 1) (0 for the default 0.5)", cfg.RefreshAfter)
	}
	if cfg.MinRemaining < 0 || cfg.CacheSize < 0 || cfg.MintTimeout < 0 {
		return nil, errors.New("broker: Config.MinRemaining, CacheSize and MintTimeout must not be negative (0 for the defaults)")
	}
	b := &Broker{
		keyless:      kl,
		client:       cfg.HTTPClient,
		now:          cfg.Now,
		refreshAfter: cfg.RefreshAfter,
		minRemaining: cfg.MinRemaining,
		mintTimeout:  cfg.MintTimeout,
		log:          cfg.Logger,
		after:        cfg.After,
	}
	if b.client == nil {
		b.client = defaultHTTPClient()
		b.ownClient = true
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.refreshAfter == 0 {
		b.refreshAfter = 0.5
	}
	if b.minRemaining == 0 {
		b.minRemaining = time.Minute
	}
	if b.mintTimeout == 0 {
		b.mintTimeout = 30 * time.Second
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.after == nil {
		b.after = time.After
	}
	size := cfg.CacheSize
	if size == 0 {
		size = 1024
	}
	cache, err := lru.NewWithEvict(size, func(key string, e *entry) { b.hot.CompareAndDelete(key, e) })
	if err != nil {
		return nil, fmt.Errorf("broker: cache: %w", err)
	}
	b.cache = cache
	if kl == nil {
		b.key.Store(cfg.Key)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wake = make(chan struct{}, 1)
	b.probe = make(chan chan struct{})
	b.refreshDone = make(chan struct{})
	go b.refresher()
	return b, nil
}

// defaultHTTPClient bounds each phase of the exchange (the whole of it is
// bounded by MintTimeout) and follows no redirects: the token endpoint is
// the key's token_uri and nowhere else.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 20 * time.Second,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          16,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// SetKey makes k the key for future mints, for key rotation. Cached tokens
// minted for the same account and token endpoint stay in use; if either
// changed, cached tokens are no longer handed out. Mints already in flight
// finish with the old key.
func (b *Broker) SetKey(k *Key) error {
	if k == nil || k.privatePEM == nil {
		return errors.New("broker: SetKey: key is required")
	}
	if b.keyless != nil {
		return errors.New("broker: SetKey: the broker is keyless (Config.Impersonate): it takes no key")
	}
	b.key.Store(k)
	b.log.Info("service-account key replaced", "key", *k)
	return nil
}

// Token returns a valid token for subject ("" for the service account
// itself) and scopes (order and duplicates do not matter).
//
// A cached token is returned if it has at least Config.MinRemaining left;
// if its next refresh is also due (its refresh point, or the end of its
// back-off after a failed refresh), one background refresh starts.
// Otherwise Token mints synchronously, sharing the mint with concurrent
// callers for the same (subject, scopes), and returns its error if it
// fails: never an expired or nearly expired token. RetryAfter tells
// whether such an error is worth retrying, and when. If ctx ends first,
// Token returns ctx's error; the mint carries on for the others.
func (b *Broker) Token(ctx context.Context, subject string, scopes []chatapi.Scope) (Token, error) {
	if err := checkRequest(subject, scopes); err != nil {
		return Token{}, err
	}
	k := b.minter()
	account := k.account()
	cacheKey := subject + "\x00" + chatapi.ScopeKey(scopes)
	now := b.now()

	e, ok := b.lookup(cacheKey, now)
	if ok && e.account == account && e.usable(now) {
		b.hits.Add(1)
		if e.claim(now, b.mintTimeout) {
			b.startRefresh(k, e)
		}
		return e.tok.clone(), nil
	}
	b.misses.Add(1)
	if !ok || e.account != account {
		e = nil
	}
	flightKey := account + "\x00" + cacheKey
	ch := b.sf.DoChan(flightKey, func() (any, error) {
		return b.mint(k, e, cacheKey, flightKey, subject, false)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(*entry).tok.clone(), nil
	case <-ctx.Done():
		return Token{}, fmt.Errorf("broker: token for %v: %w", scopesOf(cacheKey), ctx.Err())
	}
}

// minter returns what mints the broker's tokens now: the key in force,
// or keyless mode.
func (b *Broker) minter() minter {
	if b.keyless != nil {
		return b.keyless
	}
	return b.key.Load()
}

// touchEvery is how often a cache hit tells the LRU that its entry is in
// use: at most once a second per entry, so that hits take no lock.
const touchEvery = time.Second

// lookup returns the cached entry for key without taking a lock, and
// marks it recently used in the LRU at most once per touchEvery.
func (b *Broker) lookup(key string, now time.Time) (*entry, bool) {
	v, ok := b.hot.Load(key)
	if !ok {
		return nil, false
	}
	e := v.(*entry)
	if t := now.UnixNano(); t-e.touched.Load() >= int64(touchEvery) {
		e.touched.Store(t)
		b.cache.Get(key)
	}
	return e, true
}

// peek returns the cached entry for key, leaving its recency alone.
func (b *Broker) peek(key string) (*entry, bool) {
	v, ok := b.hot.Load(key)
	if !ok {
		return nil, false
	}
	return v.(*entry), true
}

// store caches e under key.
func (b *Broker) store(key string, e *entry) {
	b.cacheMu.Lock()
	defer b.cacheMu.Unlock()
	b.cache.Add(key, e) // may evict another entry, which leaves hot too
	b.hot.Store(key, e)
}

// drop removes key from the cache if it holds e, or whatever it holds
// when e is nil.
func (b *Broker) drop(key string, e *entry) {
	b.cacheMu.Lock()
	defer b.cacheMu.Unlock()
	if cur, ok := b.peek(key); ok && (e == nil || cur == e) {
		b.cache.Remove(key)
		b.hot.Delete(key)
	}
}

// checkRequest refuses what no token should be minted for.
func checkRequest(subject string, scopes []chatapi.Scope) error {
	if len(scopes) == 0 {
		return errors.New("broker: token: no scopes requested")
	}
	for _, s := range scopes {
		if s == "" || strings.ContainsFunc(string(s), isSpace) {
			return fmt.Errorf("broker: token: scope %q is empty or contains white space or NUL", s)
		}
		// chat.bot is app authentication only: Google mints no
		// chat.bot token for a delegated subject (sub).
		if s == chatapi.ScopeBot && subject != "" {
			return errors.New("broker: token: chat.bot never goes with a delegated subject: use a user scope to act as a user")
		}
	}
	if strings.ContainsFunc(subject, isSpace) {
		return errors.New("broker: token: subject contains white space or NUL")
	}
	return nil
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == 0 }

// scopesOf recovers the sorted, de-duplicated scopes from a cache key.
func scopesOf(cacheKey string) []chatapi.Scope {
	_, key, _ := strings.Cut(cacheKey, "\x00")
	f := strings.Fields(key)
	out := make([]chatapi.Scope, len(f))
	for i, s := range f {
		out[i] = chatapi.Scope(s)
	}
	return out
}

// mint runs inside singleflight, on the broker's context. stale is the
// entry the caller saw and wants replaced (nil if none): a failure is
// recorded on it, which sets its back-off. If the cache already holds a
// different usable entry (another mint finished between the caller's
// look-up and now), mint returns it instead of minting.
func (b *Broker) mint(k minter, stale *entry, cacheKey, flightKey, subject string, background bool) (e *entry, err error) {
	now := b.now()
	if cur, ok := b.peek(cacheKey); ok && cur != stale && cur.account == k.account() && cur.usable(now) {
		return cur, nil
	}
	if !b.track() {
		return nil, &MintError{Scopes: scopesOf(cacheKey), Subject: subject, Err: ErrClosed}
	}
	// Once the result is in the cache (or the attempt has failed), later
	// callers start afresh instead of joining this finished flight, and
	// the refresher looks at the schedule again. The test hook thus fires
	// only when a new Token call can mint again and the refresher has
	// been told; untrack comes last, so a test that sees nothing in
	// flight also sees the wake-up.
	defer func() {
		b.sf.Forget(flightKey)
		b.poke()
		if b.afterMint != nil {
			b.afterMint(cacheKey, err)
		}
		b.untrack()
	}()

	if background {
		b.bgAttempts.Add(1)
	} else {
		b.syncAttempts.Add(1)
	}
	scopes := scopesOf(cacheKey)
	e, err = b.exchange(k, subject, scopes)
	if err != nil {
		b.failed(k, stale, cacheKey, subject, scopes, background, err)
		return nil, err
	}
	e.cacheKey = cacheKey
	b.mints.Add(1)
	b.ready.Store(true)
	b.store(cacheKey, e)
	after := b.health.succeeded(cacheKey, subject, b.now())
	attrs := []any{"subject", subject, "scopes", scopes, "background", background,
		"expiry", e.tok.Expiry, "refresh_at", e.refreshAt, k.logAttr()}
	if after > 0 {
		b.log.Info("token mint succeeded again", append(attrs, "after_failures", after)...)
	} else {
		b.log.Debug("token minted", attrs...)
	}
	return e, nil
}

// failed counts, records and logs a failed mint. On a MintError it sets
// the delay RetryAfter reports: the back-off of stale's refresh, or with
// no cached token, the back-off ceiling for the broker's run of failures.
func (b *Broker) failed(k minter, stale *entry, cacheKey, subject string, scopes []chatapi.Scope, background bool, err error) {
	b.mintErrors.Add(1)
	attrs := []any{"subject", subject, "scopes", scopes, "background", background, k.logAttr(), "err", err}
	if errors.Is(err, ErrClosed) {
		b.log.Debug("token mint cut short by Close", attrs...)
		return
	}
	var me *MintError
	isMint := errors.As(err, &me)
	temporary := isMint && me.Temporary()
	if temporary {
		b.transient.Add(1)
	} else {
		b.permanent.Add(1)
	}
	if isMint {
		attrs = append(attrs, "status", me.StatusCode, "code", me.Code, "temporary", temporary)
	}

	now := b.now()
	msg := err.Error()
	runLen, firstTime := b.health.failed(cacheKey, subject, k.logAttr().String()+"\x00"+msg, msg, temporary, now)
	var retryIn time.Duration
	if stale != nil {
		var failures int
		retryIn, failures = stale.fail(now, msg, temporary)
		attrs = append(attrs, "retry_in", retryIn.String(), "failures", failures)
		if stale.usable(now) {
			attrs = append(attrs, "note", "still serving the cached token")
		}
	} else {
		retryIn = backoffCeiling(runLen)
	}
	if isMint {
		me.retryAfter = retryIn
	}

	switch {
	case temporary:
		b.log.Warn("token mint failed; will retry", attrs...)
	case firstTime:
		b.log.Error("token mint failed permanently: fix the key, its domain-wide delegation grant or the scopes", attrs...)
	default:
		b.log.Debug("token mint failed permanently, again", attrs...)
	}
}

// track registers a goroutine (a mint, a background refresh) so that
// Close waits for it; false after Close. wg.Add happens under mu while
// not closed, so it never races with the Wait in Close.
func (b *Broker) track() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	b.inflight.Add(1)
	return true
}

// untrack ends what track began.
func (b *Broker) untrack() {
	b.inflight.Add(-1)
	b.wg.Done()
}

// exchange gets one token from m and makes it a cache entry: the part of
// a mint that is the same with a key and keyless. It bounds the mint by
// MintTimeout, checks the granted lifetime and sets the token's margins,
// which scale with that lifetime (margins below).
func (b *Broker) exchange(m minter, subject string, scopes []chatapi.Scope) (*entry, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.mintTimeout)
	defer cancel()
	start := b.now()
	g, err := m.grant(ctx, b, start, subject, scopes)
	if err != nil {
		return nil, err
	}
	if g.lifetime < minLifetime {
		return nil, &MintError{Scopes: scopes, Subject: subject, permanent: true,
			Err: fmt.Errorf("Google granted a token for %v, less than the %v the broker needs to refresh it ahead of expiry: grant tokens of a minute or more", g.lifetime, minLifetime)}
	}

	// Refresh at RefreshAfter of the lifetime, ±10% per token, but no
	// later than the point where the token stops being handed out, so a
	// background refresh always gets its chance first.
	margin := b.margin(g.lifetime)
	frac := b.refreshAfter * (0.9 + 0.2*rand.Float64())
	frac = min(frac, 1)
	expiry := start.Add(g.lifetime)
	refreshAt := start.Add(time.Duration(frac * float64(g.lifetime)))
	if last := expiry.Add(-margin); refreshAt.After(last) {
		refreshAt = last
	}
	e := &entry{
		tok: Token{
			Expiry:  expiry,
			Scopes:  scopes,
			Subject: subject,
			value:   newSecretValue(g.access),
		},
		account:   m.account(),
		refreshAt: refreshAt,
		margin:    margin,
	}
	e.next.Store(refreshAt.UnixNano())
	return e, nil
}

// minLifetime is the shortest token lifetime the broker takes: its
// margins are a quarter of the lifetime, and below a minute they would
// leave a call too little time to reach Google with the token.
const minLifetime = time.Minute

// margin is the least time a token granted for lifetime has left when it
// is handed out: Config.MinRemaining, but at most a quarter of the
// lifetime, so that short-lived tokens (a 2-minute token has a 30 s
// margin) are served for most of their life and refreshed in time.
func (b *Broker) margin(lifetime time.Duration) time.Duration {
	return min(b.minRemaining, lifetime/4)
}

// granted is one token as a minter got it.
type granted struct {
	access   string        // the access token
	lifetime time.Duration // from the start of the mint, by Config.Now
}

// minter is where a Broker's tokens come from: a service-account key
// (*Key, which signs the assertion itself) or keyless (*keyless, which
// asks the IAM Credentials API). Everything else about a mint (cache,
// singleflight, refresh ahead, back-off, margins, health, logs) is the
// Broker's, and the same for both.
type minter interface {
	// account identifies whose tokens it mints and where: a cached token
	// is handed out only while the account stays the same.
	account() string
	// logAttr names it in logs: a key's fingerprint, or the account
	// keyless mode impersonates. Never secret.
	logAttr() slog.Attr
	// grant gets one token for subject and scopes on ctx, which carries
	// MintTimeout and ends on Close; start is the mint's start on
	// Config.Now. Its errors are *MintError, and never carry a secret.
	grant(ctx context.Context, b *Broker, start time.Time, subject string, scopes []chatapi.Scope) (granted, error)
}

func (k *Key) logAttr() slog.Attr { return slog.String("key_fingerprint", k.Fingerprint()) }

// grant signs an assertion with k and trades it for a token at the key's
// token_uri.
func (k *Key) grant(ctx context.Context, b *Broker, start time.Time, subject string, scopes []chatapi.Scope) (granted, error) {
	urls := make([]string, len(scopes))
	for i, s := range scopes {
		urls[i] = s.URL()
	}
	conf := &jwt.Config{
		Email:        k.ClientEmail,
		PrivateKey:   k.privatePEM(),
		PrivateKeyID: k.PrivateKeyID,
		Scopes:       urls,
		TokenURL:     k.TokenURI,
		Subject:      subject,
	}
	// x/oauth2/jwt posts with a context-free request, taking only the
	// client from ctx; ctxTransport puts the mint's context (timeout,
	// Close) on the request and notes whether an answer came back.
	rt := &ctxTransport{base: b.client.Transport, ctx: ctx}
	if rt.base == nil {
		rt.base = http.DefaultTransport
	}
	hc := *b.client
	hc.Transport = rt
	octx := context.WithValue(ctx, oauth2.HTTPClient, &hc)

	fail := func(status int, code, desc string, cause error) error {
		return &MintError{Scopes: scopes, Subject: subject, StatusCode: status, Code: code, Description: desc, Err: cause}
	}

	tok, err := conf.TokenSource(octx).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.Response != nil:
			code, desc := parseErrorBody(re.Body)
			return granted{}, fail(re.Response.StatusCode, code, desc, nil)
		case b.ctx.Err() != nil:
			return granted{}, fail(0, "", "", ErrClosed)
		case ctx.Err() != nil:
			return granted{}, fail(0, "", "", fmt.Errorf("no answer from the token endpoint within %v: %w", b.mintTimeout, context.DeadlineExceeded))
		case rt.status.Load() != 0:
			// An answer came but x/oauth2 could not read it. Its message
			// may quote part of the body, so it is not repeated.
			return granted{}, fail(int(rt.status.Load()), "", "", errors.New("the answer is not a token response"))
		default:
			// x/oauth2/jwt's network errors name the URL and the
			// failure, never the form it posted.
			msg := strings.TrimPrefix(err.Error(), "oauth2: cannot fetch token: ")
			return granted{}, fail(0, "", "", errors.New("token endpoint unreachable: "+msg))
		}
	}
	status := int(rt.status.Load())
	if tok.AccessToken == "" {
		return granted{}, fail(status, "", "", errors.New("the answer has no access_token"))
	}
	lifetime, ok := expiresIn(tok.Extra("expires_in"))
	if !ok && !tok.Expiry.IsZero() {
		// No expires_in, but an absolute expiry (an id_token's exp):
		// what is left of it on Config.Now.
		lifetime, ok = tok.Expiry.Sub(b.now()), true
	}
	if !ok || lifetime <= 0 {
		return granted{}, fail(status, "", "", errors.New("the answer has no usable expires_in"))
	}
	return granted{access: tok.AccessToken, lifetime: lifetime}, nil
}

// expiresIn reads expires_in from x/oauth2's raw map of the answer, where
// JSON numbers are float64. (x/oauth2/jwt itself refuses an answer whose
// expires_in is a string, so no other form gets this far.)
func expiresIn(v any) (time.Duration, bool) {
	secs, ok := v.(float64)
	if !ok || secs <= 0 || secs > 1e9 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

// parseErrorBody reads Google's {"error": ..., "error_description": ...}.
// Anything else yields empty strings: the raw body is never repeated.
func parseErrorBody(body []byte) (code, desc string) {
	var eb struct {
		Error       any    `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &eb) != nil {
		return "", ""
	}
	if s, ok := eb.Error.(string); ok && isErrorCode(s) {
		code = s
	}
	return code, cleanDescription(eb.Description)
}

// isErrorCode accepts RFC 6749 error codes: short, lower-case, with
// underscores.
func isErrorCode(s string) bool { return isSnakeCase(s, 64, 'a') }

// isSnakeCase reports whether s is 1 to maxLen letters from a (an 'a' or
// an 'A') to z in the same case, digits and underscores.
func isSnakeCase(s string, maxLen int, a rune) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for _, r := range s {
		if (r < a || r > a+'z'-'a') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// ctxTransport runs each request on ctx and records the last status
// received.
type ctxTransport struct {
	base   http.RoundTripper
	ctx    context.Context
	status atomic.Int32
}

func (t *ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r.WithContext(t.ctx))
	if resp != nil {
		t.status.Store(int32(resp.StatusCode))
	}
	return resp, err
}

// Invalidate drops the cached token for (subject, scopes), for example
// after Google answered 401 to it. The next Token call mints.
func (b *Broker) Invalidate(subject string, scopes []chatapi.Scope) {
	b.drop(subject+"\x00"+chatapi.ScopeKey(scopes), nil)
}

// InvalidateToken drops t from the cache if it is still the cached token
// for its (subject, scopes). Unlike Invalidate it cannot drop a newer
// token that another request already minted, so many requests failing
// with the same token cause one re-mint, not one each.
func (b *Broker) InvalidateToken(t Token) {
	if t.value == nil {
		return
	}
	key := t.Subject + "\x00" + chatapi.ScopeKey(t.Scopes)
	if e, ok := b.peek(key); ok && e.tok.value == t.value {
		b.drop(key, e) // not a newer entry another call stored meanwhile
	}
}

// Stats returns the counters so far.
func (b *Broker) Stats() Stats {
	return Stats{
		Mints:              b.mints.Load(),
		MintErrors:         b.mintErrors.Load(),
		CacheHits:          b.hits.Load(),
		CacheMisses:        b.misses.Load(),
		TransientErrors:    b.transient.Load(),
		PermanentErrors:    b.permanent.Load(),
		BackgroundAttempts: b.bgAttempts.Load(),
		SyncAttempts:       b.syncAttempts.Load(),
	}
}

// Ready reports whether at least one token has been minted successfully.
func (b *Broker) Ready() bool { return b.ready.Load() }

// Close stops the broker: the background refresher ends, mints in
// flight, background refreshes included, are cancelled, and Close waits
// for all of them to return; the default HTTP client's idle connections
// are closed. Afterwards Token still returns valid cached tokens but mints
// nothing (it fails with a MintError wrapping ErrClosed). Close may be
// called more than once.
func (b *Broker) Close() {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		<-b.refreshDone
		b.wg.Wait()
		if b.ownClient {
			b.client.CloseIdleConnections()
		}
	})
}
