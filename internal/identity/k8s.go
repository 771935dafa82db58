package identity

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	lru "github.com/hashicorp/golang-lru/v2"
)

// maxTokenLifetime is the longest a service-account token may live (exp
// minus iat) and still be accepted. Projected tokens are bounded (kubelet
// asks for an hour by default, at least ten minutes); a token that claims to
// live longer is not one we want a pod to hold, and a legacy Secret-based
// token, which never expires, is refused outright.
const maxTokenLifetime = 24 * time.Hour

const (
	// defaultServiceAccountAudience is the audience a projected token for
	// chat-broker is bound to unless ServiceAccountConfig.Audience says
	// otherwise.
	defaultServiceAccountAudience = "chat-broker"
	defaultServiceAccountCache    = 1024

	// clockSkew is how far iat and nbf may lie in the future: the broker's
	// clock and the API server's are never quite equal, and a freshly minted
	// token must not bounce. exp gets no leeway: kubelet refreshes a
	// projected token at 80% of its life, so a live pod never sends one
	// near its end.
	clockSkew = time.Minute

	// maxServiceAccountToken bounds what Verify will hash or parse. A
	// projected token is one or two KiB.
	maxServiceAccountToken = 16 << 10

	// maxIssuerResponse caps discovery and JWKS bodies, which are read
	// whole.
	maxIssuerResponse = 1 << 20

	// issuerTimeout bounds a discovery or JWKS fetch when the caller gives
	// no HTTP client.
	issuerTimeout = 30 * time.Second

	saErrPrefix = "proxy: service account token: "
)

// ServiceAccountConfig configures Kubernetes service-account token verification.
type ServiceAccountConfig struct {
	// Issuer is the cluster's service-account issuer URL (the API server's --service-account-issuer,
	// e.g. https://kubernetes.default.svc.cluster.local); OIDC discovery is fetched from
	// Issuer + "/.well-known/openid-configuration". Required. It must be https, except on a
	// loopback host (tests, local development).
	Issuer string
	// Audience the token must be bound to; "" means "chat-broker".
	Audience string
	// HTTPClient fetches discovery and keys (in a cluster: one trusting the cluster CA and sending the
	// pod's own token, see NewInClusterHTTPClient); nil means a client with timeouts. A client
	// without a Timeout gets one (30s): key fetches run in the background, not cancelled with a request.
	HTTPClient *http.Client
	// Now is the clock for expiry checks and the cache; nil means time.Now.
	Now func() time.Time
	// CacheSize bounds the verified-token cache; 0 means 1024.
	CacheSize int
}

// ServiceAccountVerifier checks Kubernetes projected service-account tokens
// against the cluster's published keys and says which service account sent
// them. It is safe for concurrent use.
//
// Verification is offline, against the issuer's public keys: a token stays
// good until its exp even if its pod has been deleted (the API server's
// TokenReview would know; that costs a round trip per new token). Projected
// tokens are short-lived, and maxTokenLifetime bounds how long that can be.
type ServiceAccountVerifier struct {
	verifier *oidc.IDTokenVerifier
	audience string
	now      func() time.Time
	// cache maps the SHA-256 of a token that verified to what it proved, so
	// the token itself is never kept and a token seen before costs a hash
	// and a map lookup, not an RSA verification.
	cache *lru.Cache[[sha256.Size]byte, verifiedServiceAccount]
}

type verifiedServiceAccount struct {
	account string // "namespace/name"
	expiry  time.Time
}

// NewServiceAccountVerifier fetches discovery once (errors say what failed and how to fix it, e.g. issuer
// mismatch, unreachable, no jwks_uri). Keys are fetched on first use and again when a token names a key
// id not yet seen, at most once per jwksMinRefetch (see issuerKeySet).
func NewServiceAccountVerifier(ctx context.Context, cfg ServiceAccountConfig) (*ServiceAccountVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New(saErrPrefix + "no issuer: give the cluster's service-account issuer URL (the API server's --service-account-issuer; `kubectl get --raw /.well-known/openid-configuration` shows it as \"issuer\")")
	}
	if err := checkIssuerURL("issuer", cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.CacheSize < 0 {
		return nil, fmt.Errorf(saErrPrefix+"cache size %d is negative: use 0 for the default (%d)", cfg.CacheSize, defaultServiceAccountCache)
	}
	size := cfg.CacheSize
	if size == 0 {
		size = defaultServiceAccountCache
	}
	cache, err := lru.New[[sha256.Size]byte, verifiedServiceAccount](size)
	if err != nil {
		return nil, fmt.Errorf(saErrPrefix+"cache: %w", err)
	}
	audience := cfg.Audience
	if audience == "" {
		audience = defaultServiceAccountAudience
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	// go-oidc takes its HTTP client from the context for discovery; the
	// key set fetches keys with the same client.
	client := capResponses(cfg.HTTPClient)
	ctx = oidc.ClientContext(ctx, client)
	wellKnown := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, discoveryError(wellKnown, err)
	}
	var meta struct {
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf(saErrPrefix+"discovery at %s: %w", wellKnown, err)
	}
	if meta.JWKSURL == "" {
		return nil, fmt.Errorf(saErrPrefix+"discovery at %s has no jwks_uri, so there are no keys to check tokens with: is this the cluster's service-account issuer? (the API server publishes keys when --service-account-issuer is an https URL; --service-account-jwks-uri overrides where)", wellKnown)
	}
	if err := checkIssuerURL("jwks_uri", meta.JWKSURL); err != nil {
		return nil, fmt.Errorf("%w (from discovery at %s)", err, wellKnown)
	}

	return &ServiceAccountVerifier{
		verifier: oidc.NewVerifier(cfg.Issuer, newIssuerKeySet(meta.JWKSURL, client, now), &oidc.Config{
			ClientID: audience,
			// Signature algorithms come from discovery, kept to asymmetric
			// ones (never none or HS256); RS256 when discovery lists none.
			SupportedSigningAlgs: signingAlgorithms(meta.Algs),
			//
			// Expiry is checked in Verify instead, because a token with no
			// exp must be refused with a message that says so (go-oidc calls
			// it "expired in year 1"), and nbf and iat need checks go-oidc
			// does not make.
			SkipExpiryCheck: true,
		}),
		audience: audience,
		now:      now,
		cache:    cache,
	}, nil
}

// signingAlgorithms keeps the algorithms discovery advertises that the key
// set verifies; nil (go-oidc's RS256) when none is left.
func signingAlgorithms(advertised []string) []string {
	var out []string
	for _, a := range advertised {
		for _, known := range jwtAlgorithms {
			if a == string(known) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// checkIssuerURL refuses anything but an absolute https URL, or http to a
// loopback host: keys fetched over plain http from a remote host could be
// anyone's.
func checkIssuerURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf(saErrPrefix+"%s %q is not an absolute https URL", what, raw)
	}
	if u.Scheme == "http" {
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf(saErrPrefix+"%s %q is plain http: keys must come over https (http is allowed only on a loopback host)", what, raw)
		}
	}
	return nil
}

// discoveryError turns go-oidc's discovery failure into one that says what
// to fix.
func discoveryError(wellKnown string, err error) error {
	var mismatch *oidc.IssuerMismatchError
	var uerr *url.Error
	switch {
	case errors.As(err, &mismatch):
		return fmt.Errorf(saErrPrefix+"discovery at %s says the issuer is %q, not %q: the issuer must match the API server's --service-account-issuer exactly (a trailing slash counts); if that is your cluster, use %q",
			wellKnown, mismatch.Discovered, mismatch.Provided, mismatch.Discovered)
	case errors.As(err, &uerr):
		return fmt.Errorf(saErrPrefix+"cannot reach discovery at %s: check the issuer URL, that the broker can reach it, and that the HTTP client trusts its certificate (in a cluster: the cluster CA): %w", wellKnown, err)
	default:
		return fmt.Errorf(saErrPrefix+"discovery at %s failed: the API server serves it to authenticated service accounts (ClusterRole system:service-account-issuer-discovery), so send the broker pod's own token (NewInClusterHTTPClient): %s", wellKnown, truncate(err.Error(), 512))
	}
}

// Verify checks signature, issuer, audience, expiry (and nbf/iat sanity) and returns the service account
// as "namespace/name", taken from the `kubernetes.io` claim ({"namespace":…, "serviceaccount":{"name":…}})
// and cross-checked against `sub` == "system:serviceaccount:NS:NAME" (refuse if they disagree or either is
// missing). Tokens without an `exp` or living longer than maxTokenLifetime are refused. Results are
// cached keyed by SHA-256 of the token (never the token itself) until the token's exp, so the hot path
// does no signature work for a token already seen.
//
// Errors never quote the token. A token with a key id the verifier has not
// seen makes it fetch the issuer's keys (concurrent fetches are collapsed
// into one).
func (v *ServiceAccountVerifier) Verify(ctx context.Context, token string) (string, error) {
	switch {
	case token == "":
		return "", errors.New(saErrPrefix + "empty")
	case len(token) > maxServiceAccountToken:
		return "", fmt.Errorf(saErrPrefix+"longer than %d bytes", maxServiceAccountToken)
	}
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if hit, ok := v.cache.Get(key); ok {
		if now.Before(hit.expiry) {
			return hit.account, nil
		}
		// Expired: verify again below, which refuses it with the reason.
		v.cache.Remove(key)
	}
	if !LooksLikeJWT(token) {
		return "", errors.New(saErrPrefix + "not a JWT (want three base64url parts separated by dots)")
	}

	idt, err := v.verifier.Verify(ctx, token)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf(saErrPrefix+"not verified: %w", ctx.Err())
		}
		msg := libraryMessage(err.Error(), token)
		if strings.Contains(msg, "audience") {
			msg += fmt.Sprintf(": project the token with audience %q (serviceAccountToken.audience in the pod's volume)", v.audience)
		}
		return "", errors.New(saErrPrefix + msg)
	}

	var claims struct {
		NotBefore  *float64 `json:"nbf"`
		Kubernetes *struct {
			Namespace      string `json:"namespace"`
			ServiceAccount *struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
	}
	if err := idt.Claims(&claims); err != nil {
		return "", fmt.Errorf(saErrPrefix+"claims: %s", libraryMessage(err.Error(), token))
	}

	if err := checkTokenTimes(now, idt.IssuedAt, idt.Expiry, claims.NotBefore); err != nil {
		return "", err
	}

	k8s := claims.Kubernetes
	if k8s == nil {
		return "", errors.New(saErrPrefix + "no kubernetes.io claim: not a Kubernetes service-account token")
	}
	if k8s.Namespace == "" || k8s.ServiceAccount == nil || k8s.ServiceAccount.Name == "" {
		return "", errors.New(saErrPrefix + "kubernetes.io claim lacks namespace or serviceaccount.name")
	}
	ns, name := k8s.Namespace, k8s.ServiceAccount.Name
	if !isK8sName(ns) || !isK8sName(name) {
		return "", fmt.Errorf(saErrPrefix+"kubernetes.io claim names %q/%q, which are not Kubernetes names", ns, name)
	}
	if idt.Subject == "" {
		return "", errors.New(saErrPrefix + "no sub claim")
	}
	if want := "system:serviceaccount:" + ns + ":" + name; idt.Subject != want {
		return "", fmt.Errorf(saErrPrefix+"sub %q disagrees with the kubernetes.io claim (%s/%s)", idt.Subject, ns, name)
	}

	account := ns + "/" + name
	v.cache.Add(key, verifiedServiceAccount{account: account, expiry: idt.Expiry})
	return account, nil
}

// checkTokenTimes refuses a token that never expires, lives longer than
// maxTokenLifetime, has expired, or is not valid yet.
func checkTokenTimes(now, iat, exp time.Time, nbf *float64) error {
	switch {
	case exp.IsZero():
		return errors.New(saErrPrefix + "no exp: it never expires, like a legacy Secret-based token; mount a projected serviceAccountToken volume instead")
	case iat.IsZero():
		return errors.New(saErrPrefix + "no iat: projected service-account tokens always carry one")
	case !exp.After(iat):
		return fmt.Errorf(saErrPrefix+"exp %s is not after iat %s", exp.UTC().Format(time.RFC3339), iat.UTC().Format(time.RFC3339))
	case exp.Sub(iat) > maxTokenLifetime:
		return fmt.Errorf(saErrPrefix+"lives %s, longer than the %s allowed: set a shorter expirationSeconds on the projected token", exp.Sub(iat), maxTokenLifetime)
	case !now.Before(exp):
		return fmt.Errorf(saErrPrefix+"expired at %s", exp.UTC().Format(time.RFC3339))
	case iat.After(now.Add(clockSkew)):
		return fmt.Errorf(saErrPrefix+"issued in the future (iat %s): check the clocks", iat.UTC().Format(time.RFC3339))
	}
	if nbf != nil {
		if nb := time.Unix(int64(*nbf), 0); nb.After(now.Add(clockSkew)) {
			return fmt.Errorf(saErrPrefix+"not valid before %s", nb.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// isK8sName reports whether s could be a namespace or service-account
// name (an RFC 1123 subdomain), so "namespace/name" is unambiguous.
func isK8sName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// libraryMessage returns a go-oidc or go-jose error message fit for an
// error: shortened, and withheld whole if it quotes any part of the token
// (go-jose, for one, quotes an unexpected alg header, which the sender
// chooses).
func libraryMessage(msg, token string) string {
	if strings.Contains(msg, token) {
		return "refused (details withheld: they quote the token)"
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 4 && strings.Contains(msg, part) {
			return "refused (details withheld: they quote the token)"
		}
	}
	return truncate(msg, 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// LooksLikeJWT reports whether a bearer value has the three-dot-separated base64url shape of a JWT, so the
// proxy can tell a projected token from a caller secret without trying both: three non-empty unpadded
// base64url parts, the first of which decodes to a JSON object. It does no verification.
func LooksLikeJWT(s string) bool {
	header, rest, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || !isBase64URL(header) || !isBase64URL(payload) || !isBase64URL(sig) {
		return false
	}
	// Only the first bytes matter: a JSON object starts with "{", after
	// optional whitespace. Decoding 8 characters gives 6 bytes.
	prefix := header
	if len(prefix) > 8 {
		prefix = prefix[:8]
	}
	b, err := base64.RawURLEncoding.DecodeString(prefix)
	if err != nil {
		return false
	}
	return strings.HasPrefix(strings.TrimLeft(string(b), " \t\r\n"), "{")
}

// isBase64URL reports whether s is non-empty and only base64url characters
// (the unpadded alphabet JWTs use).
func isBase64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// capResponses returns a copy of c (or of a default client with timeouts)
// whose response bodies stop at maxIssuerResponse: discovery and JWKS
// bodies are read whole.
func capResponses(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	// Keys are fetched without a caller's context, so only the client's
	// timeout stops a fetch from a hung issuer.
	if out.Timeout == 0 {
		out.Timeout = issuerTimeout
	}
	base := out.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = cappedTransport{base: base}
	return &out
}

type cappedTransport struct{ base http.RoundTripper }

func (t cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: maxIssuerResponse}
	return resp, nil
}

// cappedBody fails a read past its limit instead of truncating silently, so
// an oversize key set is an error, not half a key set.
type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf(saErrPrefix+"issuer response larger than %d bytes", maxIssuerResponse)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// NewInClusterHTTPClient returns a client that trusts the CA at caFile and sends the bearer token read
// from tokenFile (re-read when it changes: kubelet rotates it) — the usual
// /var/run/secrets/kubernetes.io/serviceaccount/{ca.crt,token}. Errors name the file.
//
// It trusts only that CA (not the system roots), sends the token only over
// https, and follows no redirects, so the pod's token goes to the API
// server and nowhere else.
func NewInClusterHTTPClient(caFile, tokenFile string) (*http.Client, error) {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf(saErrPrefix+"CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf(saErrPrefix+"CA file %s holds no PEM certificate", caFile)
	}
	tokens := &fileToken{path: tokenFile}
	if _, err := tokens.token(); err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{
		Transport: &bearerFileTransport{base: base, tokens: tokens},
		Timeout:   issuerTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New(saErrPrefix + "the API server answered with a redirect, which the in-cluster client does not follow (it would carry the pod's token elsewhere)")
		},
	}, nil
}

// bearerFileTransport adds "Authorization: Bearer <token from file>" to
// each https request.
type bearerFileTransport struct {
	base   http.RoundTripper
	tokens *fileToken
}

func (t *bearerFileTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if req.URL.Scheme != "https" {
		return fail(fmt.Errorf(saErrPrefix+"refusing to send the pod's token to %s over plain %s", req.URL.Host, req.URL.Scheme))
	}
	tok, err := t.tokens.token()
	if err != nil {
		return fail(err)
	}
	// A RoundTripper must not change the caller's request.
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.base.RoundTrip(req)
}

// fileToken reads a token from a file and reads it again when the file
// changes. kubelet replaces a projected token by swapping a symlink to a
// new file, so a new inode, size or mtime means a new token.
type fileToken struct {
	path string

	mu   sync.Mutex
	info os.FileInfo
	tok  string
}

func (f *fileToken) token() (string, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf(saErrPrefix+"token file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.info != nil && os.SameFile(f.info, fi) && fi.Size() == f.info.Size() && fi.ModTime().Equal(f.info.ModTime()) {
		return f.tok, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf(saErrPrefix+"token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf(saErrPrefix+"token file %s is empty", f.path)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf(saErrPrefix+"token file %s holds more than one token (whitespace or control characters inside)", f.path)
		}
	}
	// If the file changed again between Stat and ReadFile, the next call
	// sees a different FileInfo and reads it again.
	f.info, f.tok = fi, tok
	return tok, nil
}
