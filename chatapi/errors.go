package chatapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Error is a Google API error: the value of "error" in
// {"error": {"code", "message", "status", "details"}}, the shape of
// https://google.aip.dev/193.
// It is what Chat answers and what the broker answers when it refuses a
// call, so every Google client library parses both the same way.
type Error struct {
	Code    int      `json:"code"`
	Message string   `json:"message"`
	Status  string   `json:"status"`
	Details []Detail `json:"details,omitempty"`
}

// Detail is one entry of Error.Details: a google.rpc.ErrorInfo, Help or
// RetryInfo, told apart by Type.
type Detail struct {
	Type       string            `json:"@type"`
	Reason     string            `json:"reason,omitempty"`
	Domain     string            `json:"domain,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Links      []Link            `json:"links,omitempty"`
	RetryDelay string            `json:"retryDelay,omitempty"`
}

// Link is a google.rpc.Help link.
type Link struct {
	Description string `json:"description"`
	URL         string `json:"url"`
}

// Detail types.
const (
	TypeErrorInfo = "type.googleapis.com/google.rpc.ErrorInfo"
	TypeHelp      = "type.googleapis.com/google.rpc.Help"
	TypeRetryInfo = "type.googleapis.com/google.rpc.RetryInfo"
)

// Domains of ErrorInfo: Google's own, and the broker's for its refusals.
const (
	DomainGoogle = "googleapis.com"
	DomainBroker = "chat-broker"
)

// Messages Chat and Google's front end answer with, word for word. The
// emulator sends them; the broker recognizes them.
const (
	MsgCredentialsMissing = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	MsgCredentialsInvalid = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	MsgInsufficientScopes = "Request had insufficient authentication scopes."
	MsgAdminApproval      = "The administrator must grant the app the required OAuth authorization scope for this action."
	MsgNotPermitted       = "You are not permitted to use this app"
	MsgUserAuthOnly       = "This method doesn't support app authentication with a service account. Authenticate with a user account."
)

// StatusName maps an HTTP status to the google.rpc.Code name Google pairs
// it with (https://google.aip.dev/193).
func StatusName(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ALREADY_EXISTS"
	case http.StatusRequestEntityTooLarge:
		return "OUT_OF_RANGE"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case http.StatusNotImplemented, http.StatusMethodNotAllowed:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if code >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// NewError returns an Error with the status name that goes with code.
func NewError(code int, message string) *Error {
	return &Error{Code: code, Message: message, Status: StatusName(code)}
}

// WithInfo appends a google.rpc.ErrorInfo detail and returns e.
func (e *Error) WithInfo(domain, reason string, metadata map[string]string) *Error {
	e.Details = append(e.Details, Detail{Type: TypeErrorInfo, Reason: reason, Domain: domain, Metadata: metadata})
	return e
}

// Info returns the first ErrorInfo detail, if any.
func (e *Error) Info() (Detail, bool) {
	for _, d := range e.Details {
		if d.Type == TypeErrorInfo {
			return d, true
		}
	}
	return Detail{}, false
}

// Error implements error.
func (e *Error) Error() string {
	if d, ok := e.Info(); ok {
		return fmt.Sprintf("%d %s (%s): %s", e.Code, e.Status, d.Reason, e.Message)
	}
	return fmt.Sprintf("%d %s: %s", e.Code, e.Status, e.Message)
}

type envelope struct {
	Error *Error `json:"error"`
}

// Write sends e as a JSON response with status e.Code.
func (e *Error) Write(w http.ResponseWriter) {
	body, _ := json.Marshal(envelope{e}) // a struct of strings and ints cannot fail to encode
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Code)
	w.Write(append(body, '\n'))
}

// ParseError decodes a Google error body. It returns false when body is
// not one.
func ParseError(body []byte) (*Error, bool) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil || env.Error.Code == 0 {
		return nil, false
	}
	return env.Error, true
}
