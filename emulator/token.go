package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// Google's token-endpoint error descriptions, word for word.
const (
	descSignature  = "Invalid JWT Signature."
	descTimeframe  = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	descEmptyScope = "Empty or missing scope not allowed."
	descBadScope   = "Invalid OAuth scope or ID token audience provided."
	descNoDWD      = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
	descNoUser     = "Invalid email or User ID"
)

const (
	// maxAssertionLife is Google's limit on exp − iat.
	maxAssertionLife = 3600
	// maxFutureIat is how far ahead of the emulator's clock an assertion's
	// iat may be, for clocks that disagree a little.
	maxFutureIat = 5 * time.Minute
	// maxTokenForm caps the token request body; an assertion is ~1 KiB.
	maxTokenForm = 64 << 10
)

// token is an issued access token.
type token struct {
	scopes  []chatapi.Scope
	subject string
	expiry  time.Time
}

// oauthError is an error of the token endpoint: {"error", "error_description"}.
type oauthError struct {
	status int
	code   string
	desc   string
}

func (o *oauthError) write(w http.ResponseWriter) {
	writeJSON(w, o.status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{o.code, o.desc})
}

func badGrant(desc string) *oauthError { return &oauthError{400, "invalid_grant", desc} }
func badScope(desc string) *oauthError { return &oauthError{400, "invalid_scope", desc} }

// claims are the JWT claims the token endpoint reads. Times are float64
// because JSON numbers may carry a fraction; pointers tell absent from 0.
type claims struct {
	Iss   string          `json:"iss"`
	Aud   json.RawMessage `json:"aud"`
	Scope string          `json:"scope"`
	Iat   *float64        `json:"iat"`
	Exp   *float64        `json:"exp"`
	Sub   string          `json:"sub"`
	Prn   string          `json:"prn"` // the legacy name of sub, which x/oauth2 still sends
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	TokenType   string `json:"token_type"`
}

// SetTokenError makes every token request fail with status and Google's
// OAuth error body {"error": errorCode, "error_description": description}
// until it is called with status 0. For example
// SetTokenError(400, "invalid_grant", "Invalid JWT Signature.") is what a
// deleted or revoked key gets, and SetTokenError(503,
// "temporarily_unavailable", "") an outage. An empty errorCode means
// "invalid_request" for a 4xx and "temporarily_unavailable" for a 5xx.
// Tokens already issued keep working. It panics on a status that is
// neither 0 nor 4xx or 5xx. SetTokenEndpointDown, while down, takes
// precedence.
func (e *Emulator) SetTokenError(status int, errorCode, description string) {
	if status != 0 && (status < 400 || status > 599) {
		panic(fmt.Sprintf("emulator: SetTokenError: status %d is neither 0 nor 4xx or 5xx", status))
	}
	var oe *oauthError
	if status != 0 {
		if errorCode == "" {
			errorCode = "invalid_request"
			if status >= 500 {
				errorCode = "temporarily_unavailable"
			}
		}
		oe = &oauthError{status, errorCode, description}
	}
	e.mu.Lock()
	e.tokenErr = oe
	e.mu.Unlock()
}

// tokenError returns what SetTokenError set: status 0 when cleared.
func (e *Emulator) tokenError() (status int, errorCode, description string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tokenErr == nil {
		return 0, "", ""
	}
	return e.tokenErr.status, e.tokenErr.code, e.tokenErr.desc
}

func (e *Emulator) serveToken(rw http.ResponseWriter, r *http.Request) {
	// The answer is counted when its status is known, before any of it is
	// sent.
	w := watchStatus(rw, e.countTokenAnswer)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		(&oauthError{http.StatusMethodNotAllowed, "invalid_request", "Token requests must use POST."}).write(w)
		return
	}
	e.mu.Lock()
	down, injected := e.tokenDown, e.tokenErr
	e.mu.Unlock()
	if down {
		(&oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "The service is currently unavailable."}).write(w)
		return
	}
	if injected != nil {
		e.log.Info("emulator: token refused (injected)", "status", injected.status, "error", injected.code)
		injected.write(w)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		(&oauthError{http.StatusBadRequest, "invalid_request", "Could not read the request body as a form."}).write(w)
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearer {
		(&oauthError{http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: " + gt}).write(w)
		return
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		(&oauthError{http.StatusBadRequest, "invalid_request", "Missing required parameter: assertion"}).write(w)
		return
	}
	c, oerr := e.verifyAssertion(assertion, selfTokenURL(r))
	if oerr != nil {
		e.log.Info("emulator: token refused", "error", oerr.code, "description", oerr.desc)
		oerr.write(w)
		return
	}
	scopes, aud, subject := c.scopes, c.aud, c.subject

	now := e.now()
	e.mu.Lock()
	if subject != "" && len(e.users) > 0 && !e.users[strings.ToLower(subject)] {
		e.mu.Unlock()
		e.log.Info("emulator: token refused", "error", "invalid_grant", "subject", subject)
		(&oauthError{http.StatusBadRequest, "invalid_grant", descNoUser}).write(w)
		return
	}
	if subject != "" && !e.delegatedLocked(subject) {
		e.mu.Unlock()
		e.log.Info("emulator: token refused", "error", "unauthorized_client", "subject", subject)
		(&oauthError{http.StatusUnauthorized, "unauthorized_client", descNoDWD}).write(w)
		return
	}
	lifetime := e.lifetime
	e.mu.Unlock()
	via := "jwt-bearer"
	if e.signedByIAM(assertion) {
		via = "signJwt"
	}
	access := e.issue(now, scopes, subject, aud, via, lifetime)

	urls := make([]string, len(scopes))
	for i, s := range scopes {
		urls[i] = s.URL()
	}
	e.log.Info("emulator: token issued", "scopes", chatapi.ScopeKey(scopes), "subject", subject, "lifetime", lifetime)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: access,
		// Whole seconds, rounded up: 0 would read as "never expires".
		ExpiresIn: int64(math.Ceil(lifetime.Seconds())),
		Scope:     strings.Join(urls, " "),
		TokenType: "Bearer",
	})
}

// issue issues an access token and logs the mint.
func (e *Emulator) issue(now time.Time, scopes []chatapi.Scope, subject, aud, via string, lifetime time.Duration) string {
	access := "ya29.emu-" + rand.Text()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens[access] = &token{scopes: scopes, subject: subject, expiry: now.Add(lifetime)}
	// Forget tokens a day past expiry so a long-running emulator stays
	// small; until then a late caller still gets ACCESS_TOKEN_EXPIRED.
	for k, t := range e.tokens {
		if now.Sub(t.expiry) > 24*time.Hour {
			delete(e.tokens, k)
		}
	}
	e.mints = appendCapped(e.mints, Mint{Time: now, Scopes: scopes, Subject: subject, Audience: aud, Via: via})
	close(e.minted)
	e.minted = make(chan struct{})
	return access
}

// selfTokenURL is the URL r reached the token endpoint at, which Google
// accepts as an assertion's audience.
func selfTokenURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host + "/token"
	}
	return "http://" + r.Host + "/token"
}

// verified is what a valid assertion asks for.
type verified struct {
	scopes  []chatapi.Scope
	aud     string
	subject string
}

// verifyAssertion checks a JWT-bearer assertion the way Google does: an
// RS256 signature by the key named in kid, iss the service account, aud an
// accepted token URL, iat and exp at most an hour apart and around now,
// and Chat scope URLs. self is the URL the request reached, an accepted
// audience too. It has its own code so that it cannot share a bug with
// the broker's signing side.
func (e *Emulator) verifyAssertion(assertion, self string) (*verified, *oauthError) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return nil, badGrant(descSignature)
	}
	var h struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &h); err != nil {
		return nil, badGrant(descSignature)
	}
	// Google finds the key by kid; an unknown kid or another algorithm
	// cannot verify.
	if h.Alg != "RS256" || (h.Typ != "" && h.Typ != "JWT") || (h.Kid != "" && h.Kid != e.keyID) {
		return nil, badGrant(descSignature)
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
	if err != nil {
		return nil, badGrant(descSignature)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&e.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return nil, badGrant(descSignature)
	}
	var c claims
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, badGrant(descSignature)
	}
	// The signature is checked against the keys of the account named in
	// iss, so another iss is a signature failure at Google too.
	if c.Iss != saEmail {
		return nil, badGrant(descSignature)
	}
	aud, ok := e.acceptedAudience(c.Aud, self)
	if !ok {
		return nil, badScope(descBadScope)
	}
	if c.Iat == nil || c.Exp == nil {
		return nil, badGrant(descTimeframe)
	}
	now := e.now()
	iat, exp := *c.Iat, *c.Exp
	if exp <= iat || exp-iat > maxAssertionLife ||
		iat > float64(now.Add(maxFutureIat).Unix()) || exp <= float64(now.Unix()) {
		return nil, badGrant(descTimeframe)
	}
	fields := strings.Fields(c.Scope)
	if len(fields) == 0 {
		return nil, badScope(descEmptyScope)
	}
	var scopes []chatapi.Scope
	for _, f := range fields {
		// Google wants scope URLs; the short form is not a scope there.
		s, ok := chatapi.ParseScope(f)
		if !ok || !strings.HasPrefix(f, chatapi.ScopePrefix) {
			return nil, badScope(descBadScope)
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	sub := c.Sub
	if sub == "" {
		sub = c.Prn
	}
	if sub == saEmail { // the account itself is no delegation
		sub = ""
	}
	return &verified{scopes: scopes, aud: aud, subject: sub}, nil
}

// acceptedAudience reads aud, a string or an array of strings, and returns
// the value that is an accepted audience.
func (e *Emulator) acceptedAudience(raw json.RawMessage, self string) (string, bool) {
	var auds []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(raw, &auds) != nil {
		return "", false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range auds {
		if e.audiences[a] || a == self {
			return a, true
		}
	}
	return "", false
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON sends v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		chatapi.NewError(http.StatusInternalServerError, "chat-broker emulator: encode response: "+err.Error()).Write(w)
		return
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}
