package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// refusal is the broker's own answer to a request it will not forward.
// Every refusal becomes a Google-shaped error whose ErrorInfo has domain
// "chat-broker", so client libraries surface the reason and message as
// they surface Chat's own errors.
type refusal struct {
	code       int
	reason     string
	msg        string
	retryAfter time.Duration
	metadata   map[string]string
}

func refuse(code int, reason, msg string) *refusal {
	return &refusal{code: code, reason: reason, msg: msg}
}

func (r *refusal) Error() string { return "proxy: " + r.reason + ": " + r.msg }

// writeError is the one place that turns an error into a response.
func writeError(w http.ResponseWriter, err error) (status int, reason string) {
	var r *refusal
	if !errors.As(err, &r) {
		r = refuse(http.StatusInternalServerError, "INTERNAL", "chat-broker failed to handle the request")
	}
	if r.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((r.retryAfter+time.Second-1)/time.Second)))
	}
	chatapi.NewError(r.code, "chat-broker: "+r.msg).WithInfo(chatapi.DomainBroker, r.reason, r.metadata).Write(w)
	return r.code, r.reason
}
