package chatapi

import (
	"net/http/httptest"
	"testing"
)

// BenchmarkRouterMatch measures routing one request to its catalog
// method, which the proxy does for every call: a get of a message and a
// create in a space.
func BenchmarkRouterMatch(b *testing.B) {
	rt := NewRouter()
	for _, tc := range []struct{ name, verb, path, want string }{
		{"GET", "GET", "/v1/spaces/AAAA/messages/M1", "spaces.messages.get"},
		{"POST", "POST", "/v1/spaces/AAAA/messages", "spaces.messages.create"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(tc.verb, tc.path, nil)
			b.ReportAllocs()
			for b.Loop() {
				m, _, err := rt.Match(r)
				if err != nil || m.ID != tc.want {
					b.Fatalf("Match(%s %s) = %v, %v; want %s", tc.verb, tc.path, m, err, tc.want)
				}
			}
		})
	}
}
