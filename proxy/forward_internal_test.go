package proxy

import (
	"net/http"
	"testing"
)

// A response is flushed part by part when it is an event stream, however
// its Content-Type is cased or parameterized, and only then.
func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                true,
		"Text/Event-Stream; charset=utf-8": true,
		" text/event-stream ;x=1":          true,
		"text/event-streamx":               false,
		"text/event":                       false,
		"application/json":                 false,
		"":                                 false,
	} {
		t.Run(ct, func(t *testing.T) {
			if got := isEventStream(http.Header{"Content-Type": {ct}}); got != want {
				t.Errorf("isEventStream(%q) = %v, want %v", ct, got, want)
			}
		})
	}
}
