package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Token is an access token for one (subject, scope set).
//
// String, GoString, LogValue and Format (every verb, including %v, %+v,
// %#v, %s and %q) print REDACTED, so a token cannot leak through fmt or
// slog. The value sits behind a pointer, so even fmt's raw printing of a
// struct holding a Token in an unexported field shows only an address.
// The only way to use the value is SetAuthHeader.
type Token struct {
	// Expiry is when the token stops working, by the broker's clock:
	// the clock reading when the mint started plus the endpoint's
	// expires_in.
	Expiry time.Time
	// Scopes the token carries, short form, sorted and de-duplicated.
	Scopes []chatapi.Scope
	// Subject is the user the token acts as; "" for the service account
	// itself.
	Subject string

	value *secretValue
}

// secretValue hides a token from reflection: a func's captured variables
// are out of its reach. The pointer gives each minted token an identity.
// The Authorization value is built once, when the token is minted, and
// shared by every request that carries it: net/http and the proxy only
// read header values.
type secretValue struct{ authorization func() []string }

func newSecretValue(s string) *secretValue {
	v := []string{"Bearer " + s}
	return &secretValue{authorization: func() []string { return v[:1:1] }}
}

// SetAuthHeader sets "Authorization: Bearer <token>" on r. On the zero
// Token it removes any Authorization header instead, so a bug upstream of
// it sends no credential rather than someone else's.
func (t Token) SetAuthHeader(r *http.Request) {
	if t.value == nil {
		r.Header.Del("Authorization")
		return
	}
	r.Header["Authorization"] = t.value.authorization()
}

// IsZero reports whether t is the zero Token, as returned with an error.
func (t Token) IsZero() bool { return t.value == nil }

// String returns "REDACTED".
func (t Token) String() string { return "REDACTED" }

// GoString returns "REDACTED".
func (t Token) GoString() string { return "REDACTED" }

// LogValue returns "REDACTED".
func (t Token) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Format writes REDACTED for every verb (quoted for %q).
func (t Token) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		io.WriteString(f, `"REDACTED"`)
		return
	}
	io.WriteString(f, "REDACTED")
}

// clone gives each caller its own Scopes slice, so no caller can change
// what the cache hands to the next.
func (t Token) clone() Token {
	t.Scopes = slices.Clone(t.Scopes)
	return t
}

// MintError is returned when the token endpoint refuses a mint or cannot
// be reached. Its Error never includes the assertion, a token or the raw
// response body: only the status, Google's "error" and
// "error_description", or a description of the network failure.
//
//	broker: mint token for [chat.bot]: token endpoint answered 400 invalid_grant: Invalid JWT Signature.
type MintError struct {
	// Scopes and Subject are what was asked for.
	Scopes  []chatapi.Scope
	Subject string
	// StatusCode is the HTTP status the endpoint answered; 0 when there was
	// no answer (network error, timeout, broker closed).
	StatusCode int
	// Code and Description are the "error" and "error_description" fields
	// of the endpoint's JSON answer, when it had them. Description is
	// shortened and cleaned of control characters.
	Code, Description string
	// Err is the cause when there was no usable answer, or, keyless,
	// what to fix; nil otherwise.
	Err error
	// Service is what answered when it was not the token endpoint:
	// "IAM Credentials generateAccessToken" or "IAM Credentials signJwt"
	// (keyless mode); "" for the token endpoint.
	Service string

	// permanent marks a failure no retry fixes though no status says so
	// (no application default credentials, a lifetime too short).
	permanent bool

	// retryAfter is the broker's back-off for the token when the mint
	// failed, for RetryAfter; set before the error reaches any caller.
	retryAfter time.Duration
}

func (e *MintError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "broker: mint token for %v", e.Scopes)
	if e.Subject != "" {
		b.WriteString(" as ")
		b.WriteString(e.Subject)
	}
	b.WriteString(": ")
	if e.StatusCode == 0 {
		if errors.Is(e.Err, ErrClosed) {
			b.WriteString("the broker is closed")
		} else if e.Err != nil {
			b.WriteString(e.Err.Error())
		} else {
			b.WriteString("no answer from the token endpoint")
		}
		return b.String()
	}
	service := "token endpoint"
	if e.Service != "" {
		service = e.Service
	}
	fmt.Fprintf(&b, "%s answered %d", service, e.StatusCode)
	switch {
	case e.Code != "":
		b.WriteString(" ")
		b.WriteString(e.Code)
		if e.Description != "" {
			b.WriteString(": ")
			b.WriteString(e.Description)
		}
	case e.StatusCode >= 300 && http.StatusText(e.StatusCode) != "":
		b.WriteString(" ")
		b.WriteString(http.StatusText(e.StatusCode))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *MintError) Unwrap() error { return e.Err }

// Temporary reports whether trying again may help: no answer at all
// (network error, timeout), 408, 429, any 5xx, Google's
// temporarily_unavailable / server_error / internal_failure codes, and a
// 2xx answer the broker could not use. Everything else (invalid_grant,
// invalid_scope, unauthorized_client, disabled_client, other 4xx) is
// permanent until someone fixes the key, the grant or the request.
func (e *MintError) Temporary() bool {
	if e.permanent || errors.Is(e.Err, ErrClosed) {
		return false
	}
	switch e.Code {
	case "temporarily_unavailable", "server_error", "internal_failure":
		return true
	}
	switch c := e.StatusCode; {
	case c == 0, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
		return true
	case c >= 200 && c < 300:
		return true
	}
	return false
}

// cleanDescription makes Google's error_description safe to print: one
// line, bounded, and dropped altogether if it looks like it carries a JWT
// or an access token (an endpoint that echoes the assertion must not get
// it into our logs).
func cleanDescription(s string) string {
	if strings.Contains(s, "eyJ") || strings.Contains(s, "ya29.") {
		return "(description withheld: it looks like it contains a credential)"
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return truncate(strings.TrimSpace(s), 300)
}
