package proxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The broker serves Chat's discovery document, at both of Google's paths,
// pointed at itself, to anyone: it is public, and Python builds its
// client from it.
func TestDiscoveryDocumentPointsAtTheBroker(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, verb, path string
		want             int
	}{
		{"$discovery", "GET", "/$discovery/rest?version=v1", 200},
		{"directory path", "GET", "/discovery/v1/apis/chat/v1/rest", 200},
		{"another version", "GET", "/$discovery/rest?version=v2", 404},
		{"not a GET", "POST", "/$discovery/rest?version=v1", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.verb, e.url+tc.path, nil)
			resp, body := roundTrip(t, req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				return
			}
			if strings.Contains(string(body), "chat-broker-root-placeholder") || resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d for %d bytes, or a placeholder left in the document", resp.ContentLength, len(body))
			}
			var doc struct {
				Name, Version, RootURL, BaseURL, MtlsRootURL string
				Resources                                    map[string]any
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Name != "chat" || doc.Version != "v1" || doc.RootURL != e.url+"/" || doc.BaseURL != e.url+"/" || doc.MtlsRootURL != e.url+"/" || doc.Resources["spaces"] == nil {
				t.Errorf("document %s %s rootUrl %q baseUrl %q mtlsRootUrl %q, want Chat v1 pointed at %s/", doc.Name, doc.Version, doc.RootURL, doc.BaseURL, doc.MtlsRootURL, e.url)
			}
		})
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d requests reached Chat", n)
	}
}
