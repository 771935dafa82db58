package emulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Fault makes the Chat API fail requests instead of serving them, to test
// how a client retries. A failed request has passed authentication and the
// scope and space checks, and has changed nothing.
type Fault struct {
	// Method is the catalog id of the method to fail
	// ("spaces.messages.create"); "" fails every method.
	Method string
	// Status is the HTTP status to answer with: 429 (a quota error as in
	// chat-api.md §C.3) or a 5xx.
	Status int
	// RetryAfter, when positive, is sent as a Retry-After header (whole
	// seconds, rounded up) and as a RetryInfo detail.
	RetryAfter time.Duration
	// Times is how many matching requests fail; 0 means every one until
	// ClearFaults.
	Times int
}

type fault struct {
	Fault
	left int // for Times > 0
}

// InjectFault adds a fault. Faults are consulted in the order they were
// added; the first that matches a request answers it. It panics on a
// Status that is not 429 or 5xx, a programming error in the test.
func (e *Emulator) InjectFault(f Fault) {
	if f.Status != http.StatusTooManyRequests && (f.Status < 500 || f.Status > 599) {
		panic(fmt.Sprintf("emulator: InjectFault: status %d is neither 429 nor 5xx", f.Status))
	}
	e.mu.Lock()
	e.faults = append(e.faults, &fault{Fault: f, left: f.Times})
	e.mu.Unlock()
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	e.faults = nil
	e.mu.Unlock()
}

// takeFault returns the error of the first fault matching m, using it up.
func (e *Emulator) takeFault(w http.ResponseWriter, m *chatapi.Method) *chatapi.Error {
	e.mu.Lock()
	var hit *Fault
	for i, f := range e.faults {
		if f.Method != "" && f.Method != m.ID {
			continue
		}
		cp := f.Fault
		hit = &cp
		if f.Times > 0 {
			if f.left--; f.left == 0 {
				e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
			}
		}
		break
	}
	e.mu.Unlock()
	if hit == nil {
		return nil
	}
	var err *chatapi.Error
	switch hit.Status {
	case http.StatusTooManyRequests:
		metric, limit := "Read requests", "Read requests per minute per project"
		if !m.ReadOnly {
			metric, limit = "Write requests", "Write requests per minute per project"
		}
		md := map[string]string{
			"consumer":     "projects/" + e.project,
			"service":      "chat.googleapis.com",
			"quota_metric": "chat.googleapis.com/" + string(m.Quota),
			"quota_limit":  limit,
		}
		err = chatapi.NewError(hit.Status, fmt.Sprintf(
			"Quota exceeded for quota metric '%s' and limit '%s' of service 'chat.googleapis.com' for consumer 'project_number:%s'.",
			metric, limit, e.project)).WithInfo(chatapi.DomainGoogle, "RATE_LIMIT_EXCEEDED", md)
	case http.StatusServiceUnavailable:
		err = chatapi.NewError(hit.Status, "The service is currently unavailable.")
	case http.StatusGatewayTimeout:
		err = chatapi.NewError(hit.Status, "The request timed out. Please try again.")
	default:
		err = chatapi.NewError(hit.Status, "Internal error encountered.")
	}
	if hit.RetryAfter > 0 {
		secs := int64(math.Ceil(hit.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		err.Details = append(err.Details, chatapi.Detail{Type: chatapi.TypeRetryInfo, RetryDelay: strconv.FormatInt(secs, 10) + "s"})
	}
	return err
}
