package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// The IAM Service Account Credentials API, as keyless callers use it:
// generateAccessToken and signJwt for the app's service account, called
// with a token of the caller's own (the metadata server's), allowed while
// the caller holds roles/iam.serviceAccountTokenCreator on that account.

const (
	// iamPrefix is where the IAM Credentials methods live on the
	// emulator's address, as at iamcredentials.googleapis.com. Chat has
	// no path under it.
	iamPrefix = "/v1/projects/-/serviceAccounts/"
	// podEmail is the identity the metadata server hands out: the pod's
	// own Google service account under GKE Workload Identity.
	podEmail = "chat-broker@" + projectID + ".iam.gserviceaccount.com"
	// maxIAMBody caps an IAM request; each is a small JSON object.
	maxIAMBody = 64 << 10
	// maxSignedLife is signJwt's limit on exp: 12 hours from now.
	maxSignedLife = 12 * time.Hour
)

// iamState is the IAM side of the emulator, under its own lock (never
// held with Emulator.mu).
type iamState struct {
	mu sync.Mutex
	// revoked: the caller's token-creator grant on the app's account was
	// withdrawn; disabled: the IAM Credentials API is off in the
	// caller's project. The zero value grants and enables, as a set-up
	// keyless deployment has it.
	revoked, disabled bool
	// callers are the tokens the metadata server issued: token → expiry.
	callers map[string]time.Time
	// signed are the JWTs signJwt made (SHA-256 → exp), so the token
	// endpoint can say that a mint went through signJwt.
	signed map[[sha256.Size]byte]time.Time
}

// SetTokenCreator grants (true, the default) or withdraws (false) the
// metadata server identity's roles/iam.serviceAccountTokenCreator on the
// app's service account. Withdrawn, generateAccessToken and signJwt
// answer 403 IAM_PERMISSION_DENIED, as IAM does. Tokens already issued
// keep working until they expire.
func (e *Emulator) SetTokenCreator(granted bool) {
	e.iam.mu.Lock()
	e.iam.revoked = !granted
	e.iam.mu.Unlock()
}

// SetIAMCredentialsAPI enables (true, the default) or disables the IAM
// Service Account Credentials API in the caller's project. Disabled, its
// methods answer 403 SERVICE_DISABLED, as Google does.
func (e *Emulator) SetIAMCredentialsAPI(enabled bool) {
	e.iam.mu.Lock()
	e.iam.disabled = !enabled
	e.iam.mu.Unlock()
}

// MetadataEmail returns the email of the identity the metadata server
// hands out: the pod's own service account, which impersonates the app's
// (ClientEmail) through the IAM Credentials API.
func (e *Emulator) MetadataEmail() string { return podEmail }

func (e *Emulator) iamSettings() (granted, enabled bool) {
	e.iam.mu.Lock()
	defer e.iam.mu.Unlock()
	return !e.iam.revoked, !e.iam.disabled
}

// issueCallerToken issues a token of the metadata server's identity.
func (e *Emulator) issueCallerToken(now time.Time, lifetime time.Duration) string {
	tok := "ya29.emu-pod-" + rand.Text()
	e.iam.mu.Lock()
	defer e.iam.mu.Unlock()
	if e.iam.callers == nil {
		e.iam.callers = map[string]time.Time{}
	}
	for k, exp := range e.iam.callers {
		if now.Sub(exp) > 24*time.Hour {
			delete(e.iam.callers, k)
		}
	}
	e.iam.callers[tok] = now.Add(lifetime)
	return tok
}

// iamError is a Google API error of the IAM Credentials API:
// {"error": {"code", "message", "status", "details": [ErrorInfo]}}.
type iamError struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Status  string           `json:"status"`
	Details []map[string]any `json:"details,omitempty"`
}

func (ie *iamError) write(w http.ResponseWriter) {
	if ie.Code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
	}
	writeJSON(w, ie.Code, struct {
		Error *iamError `json:"error"`
	}{ie})
}

func errorInfo(reason, domain string, meta map[string]string) map[string]any {
	return map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": domain, "metadata": meta}
}

// serveIAM serves POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken
// and :signJwt.
func (e *Emulator) serveIAM(w http.ResponseWriter, r *http.Request) {
	ierr := e.iamCall(w, r)
	if ierr != nil {
		e.log.Info("emulator: IAM Credentials request refused", "path", r.URL.Path, "status", ierr.Code, "message", ierr.Message)
		ierr.write(w)
	}
}

func (e *Emulator) iamCall(w http.ResponseWriter, r *http.Request) *iamError {
	account, method, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, iamPrefix), ":")
	if !ok || (method != "generateAccessToken" && method != "signJwt") {
		return &iamError{Code: http.StatusNotFound, Status: "NOT_FOUND", Message: "The requested URL " + r.URL.Path + " was not found on this server."}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &iamError{Code: http.StatusMethodNotAllowed, Status: "INVALID_ARGUMENT", Message: method + " takes POST."}
	}
	if a, err := url.PathUnescape(account); err == nil {
		account = a
	}
	// The caller's own token: Bearer, issued by the metadata server, not
	// expired.
	now := e.now()
	bearer, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	e.iam.mu.Lock()
	exp, known := e.iam.callers[bearer]
	revoked, disabled := e.iam.revoked, e.iam.disabled
	e.iam.mu.Unlock()
	if !hasBearer || !known || !now.Before(exp) {
		return &iamError{Code: http.StatusUnauthorized, Status: "UNAUTHENTICATED",
			Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
			Details: []map[string]any{errorInfo("ACCESS_TOKEN_TYPE_UNSUPPORTED", "googleapis.com", map[string]string{"service": "iamcredentials.googleapis.com", "method": "google.iam.credentials.v1.IAMCredentials." + upperFirst(method)})}}
	}
	if disabled {
		return &iamError{Code: http.StatusForbidden, Status: "PERMISSION_DENIED",
			Message: fmt.Sprintf("IAM Service Account Credentials API has not been used in project %s before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/iamcredentials.googleapis.com/overview?project=%s then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.", e.project, e.project),
			Details: []map[string]any{errorInfo("SERVICE_DISABLED", "googleapis.com", map[string]string{"service": "iamcredentials.googleapis.com", "consumer": "projects/" + e.project})}}
	}
	permission := "iam.serviceAccounts.getAccessToken"
	if method == "signJwt" {
		permission = "iam.serviceAccounts.signJwt"
	}
	// IAM does not tell a missing account from a missing grant.
	if revoked || !strings.EqualFold(account, saEmail) {
		return &iamError{Code: http.StatusForbidden, Status: "PERMISSION_DENIED",
			Message: fmt.Sprintf("Permission '%s' denied on resource (or it may not exist).", permission),
			Details: []map[string]any{errorInfo("IAM_PERMISSION_DENIED", "iam.googleapis.com", map[string]string{"permission": permission})}}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxIAMBody)
	if method == "generateAccessToken" {
		return e.generateAccessToken(w, r, now)
	}
	return e.signJwt(w, r, now)
}

func invalidIAM(msg string) *iamError {
	return &iamError{Code: http.StatusBadRequest, Status: "INVALID_ARGUMENT", Message: msg}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// generateAccessToken issues a token of the app's service account for
// the Chat scopes asked, for the lifetime asked but no longer than the
// emulator's token lifetime.
func (e *Emulator) generateAccessToken(w http.ResponseWriter, r *http.Request, now time.Time) *iamError {
	var req struct {
		iamDelegates
		Scope    []string `json:"scope"`
		Lifetime string   `json:"lifetime"`
	}
	if err := decodeIAM(r, &req); err != nil {
		return err
	}
	if len(req.Scope) == 0 {
		return invalidIAM("Scope required.")
	}
	var scopes []chatapi.Scope
	for _, f := range req.Scope {
		s, ok := chatapi.ParseScope(f)
		if !ok || !strings.HasPrefix(f, chatapi.ScopePrefix) {
			return invalidIAM(fmt.Sprintf("Invalid scope %q: the emulator issues Chat scopes only, as URLs.", f))
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	e.mu.Lock()
	lifetime := e.lifetime
	e.mu.Unlock()
	if req.Lifetime != "" {
		asked, err := time.ParseDuration(req.Lifetime)
		if err != nil || !strings.HasSuffix(req.Lifetime, "s") || asked <= 0 || asked > maxSignedLife {
			return invalidIAM("The lifetime must be a duration in seconds, like \"3600s\", of at most 43200s.")
		}
		lifetime = min(lifetime, asked)
	}
	access := e.issue(now, scopes, "", "", "generateAccessToken", lifetime)
	e.log.Info("emulator: token issued", "scopes", chatapi.ScopeKey(scopes), "via", "generateAccessToken", "lifetime", lifetime)
	writeJSON(w, http.StatusOK, struct {
		AccessToken string `json:"accessToken"`
		ExpireTime  string `json:"expireTime"`
	}{access, now.Add(lifetime).UTC().Format(time.RFC3339)})
	return nil
}

// iamDelegates is the delegation chain every IAM Credentials request
// body may name.
type iamDelegates struct {
	Delegates []string `json:"delegates"`
}

func (d iamDelegates) delegates() []string { return d.Delegates }

// decodeIAM reads an IAM Credentials request body into req, which embeds
// iamDelegates, and refuses a delegation chain: none is emulated.
func decodeIAM(r *http.Request, req interface{ delegates() []string }) *iamError {
	if err := json.NewDecoder(r.Body).Decode(req); err != nil {
		return invalidIAM("Invalid JSON payload received.")
	}
	if len(req.delegates()) > 0 {
		return invalidIAM("chat-broker emulator: delegation chains (delegates) are not emulated.")
	}
	return nil
}

// signJwt signs the caller's claims with the app's service-account key,
// as IAM signs with a Google-managed key of the account: RS256, kid the
// key's id. The emulator's token endpoint accepts what it signs.
func (e *Emulator) signJwt(w http.ResponseWriter, r *http.Request, now time.Time) *iamError {
	var req struct {
		iamDelegates
		Payload string `json:"payload"`
	}
	if err := decodeIAM(r, &req); err != nil {
		return err
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(req.Payload), &claims); err != nil || claims == nil {
		return invalidIAM("Payload must be a JSON object.")
	}
	exp, ok := claims["exp"].(float64)
	if ok && exp > float64(now.Add(maxSignedLife).Unix()) {
		return invalidIAM("The exp claim must be at most 12 hours in the future.")
	}
	seg := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": e.keyID, "typ": "JWT"})
	signingInput := seg(header) + "." + seg([]byte(req.Payload))
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(nil, e.key, crypto.SHA256, digest[:])
	if err != nil {
		return &iamError{Code: http.StatusInternalServerError, Status: "INTERNAL", Message: "Internal error encountered."}
	}
	jwt := signingInput + "." + seg(sig)
	e.iam.mu.Lock()
	if e.iam.signed == nil || len(e.iam.signed) >= maxLog {
		e.iam.signed = map[[sha256.Size]byte]time.Time{}
	}
	e.iam.signed[sha256.Sum256([]byte(jwt))] = now.Add(maxSignedLife)
	e.iam.mu.Unlock()
	e.log.Info("emulator: JWT signed", "via", "signJwt")
	writeJSON(w, http.StatusOK, struct {
		KeyID     string `json:"keyId"`
		SignedJwt string `json:"signedJwt"`
	}{e.keyID, jwt})
	return nil
}

// signedByIAM reports whether signJwt made assertion.
func (e *Emulator) signedByIAM(assertion string) bool {
	e.iam.mu.Lock()
	defer e.iam.mu.Unlock()
	_, ok := e.iam.signed[sha256.Sum256([]byte(assertion))]
	return ok
}

// The control API's /emulator/iam: the token-creator grant and the API's
// state. It is registered here, next to what it controls.
func init() {
	adminRoutes["/emulator/iam"] = adminEndpoint((*Emulator).adminGetIAM, decoded((*Emulator).postIAM), nil)
}

type iamJSON struct {
	TokenCreator *bool  `json:"tokenCreator"`
	APIEnabled   *bool  `json:"apiEnabled"`
	Caller       string `json:"caller,omitempty"` // read-only: MetadataEmail
	Account      string `json:"account,omitempty"`
}

func (e *Emulator) adminGetIAM(*http.Request) (any, *chatapi.Error) {
	granted, enabled := e.iamSettings()
	return iamJSON{TokenCreator: &granted, APIEnabled: &enabled, Caller: podEmail, Account: saEmail}, nil
}

func (e *Emulator) postIAM(in *iamJSON) *chatapi.Error {
	if in.TokenCreator == nil && in.APIEnabled == nil {
		return missing("tokenCreator or apiEnabled")
	}
	if in.TokenCreator != nil {
		e.SetTokenCreator(*in.TokenCreator)
	}
	if in.APIEnabled != nil {
		e.SetIAMCredentialsAPI(*in.APIEnabled)
	}
	return nil
}
