package refusal

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Error is the broker's own answer to a call it will not forward.
type Error struct {
	// Code is the HTTP status.
	Code int
	// Reason is the ErrorInfo reason: what went wrong, in capitals
	// (METHOD_NOT_ALLOWED, RATE_LIMITED, ...).
	Reason string
	// Message says what was wrong and how to fix it.
	Message string
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up).
	RetryAfter time.Duration
	// Metadata goes into the ErrorInfo: the caller, method, rule, ...
	Metadata map[string]string
}

// New returns a refusal with status code, reason and message.
func New(code int, reason, msg string) *Error {
	return &Error{Code: code, Reason: reason, Message: msg}
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

// Write answers w with err: an *Error as Google-shaped JSON with
// ErrorInfo domain "chat-broker", anything else as 500 INTERNAL. It is
// the one place that turns an error into a response, and returns the
// status and reason it wrote.
func Write(w http.ResponseWriter, err error) (status int, reason string) {
	var e *Error
	if !errors.As(err, &e) {
		e = New(http.StatusInternalServerError, "INTERNAL", "chat-broker failed to handle the request")
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	chatapi.NewError(e.Code, "chat-broker: "+e.Message).WithInfo(chatapi.DomainBroker, e.Reason, e.Metadata).Write(w)
	return e.Code, e.Reason
}
