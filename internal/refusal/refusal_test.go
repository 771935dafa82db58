package refusal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Write answers in Google's error shape with the broker's domain, rounds
// Retry-After up to whole seconds, and turns an error that is no refusal
// into 500 INTERNAL without quoting it.
func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		desc           string
		err            error
		wantStatus     int
		wantReason     string
		wantRetryAfter string
		wantMessage    string
	}{
		{"refusal", New(http.StatusForbidden, "METHOD_NOT_ALLOWED", "add the method to the rule"), 403, "METHOD_NOT_ALLOWED", "", "chat-broker: add the method to the rule"},
		{"retry after rounds up", &Error{Code: 429, Reason: "RATE_LIMITED", Message: "slow down", RetryAfter: 1500 * time.Millisecond}, 429, "RATE_LIMITED", "2", "chat-broker: slow down"},
		{"wrapped refusal", fmt.Errorf("shaping: %w", New(503, "OVERLOADED", "busy")), 503, "OVERLOADED", "", "chat-broker: busy"},
		{"not a refusal", errors.New("secret detail"), 500, "INTERNAL", "", "chat-broker: chat-broker failed to handle the request"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rec := httptest.NewRecorder()
			status, reason := Write(rec, tc.err)
			if status != tc.wantStatus || reason != tc.wantReason || rec.Code != tc.wantStatus {
				t.Errorf("Write = %d %s (recorded %d), want %d %s", status, reason, rec.Code, tc.wantStatus, tc.wantReason)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.wantRetryAfter)
			}
			var body struct {
				Error struct {
					Code    int
					Message string
					Details []struct{ Reason, Domain string }
				}
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			e := body.Error
			if e.Code != tc.wantStatus || e.Message != tc.wantMessage || len(e.Details) != 1 || e.Details[0].Reason != tc.wantReason || e.Details[0].Domain != "chat-broker" {
				t.Errorf("body %s", rec.Body)
			}
		})
	}
}
