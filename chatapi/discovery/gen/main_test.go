package main

import (
	"bytes"
	"os"
	"testing"
)

// methods.go is what the generator makes of the pinned module's
// document: after a bump of google.golang.org/api this fails until
// go generate ./chatapi/discovery is run.
func TestGeneratedFileIsCurrent(t *testing.T) {
	doc, version, err := pinnedDocument()
	if err != nil {
		t.Fatal(err)
	}
	want, err := render(doc, version)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../methods.go")
	if err != nil {
		t.Fatal(err)
	}
	if copied, err := os.ReadFile("../chat-api.json"); err != nil || !bytes.Equal(copied, doc) {
		t.Errorf("chatapi/discovery/chat-api.json is not the document of %s@%s (%v): run go generate ./chatapi/discovery", module, version, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("chatapi/discovery/methods.go does not match the Chat discovery document of %s@%s: run go generate ./chatapi/discovery", module, version)
	}
}

func TestRenderRefusesOtherDocuments(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", `{`, "discovery document"},
		{"another API", `{"name":"drive","version":"v3"}`, "want chat v1"},
		{"no methods", `{"name":"chat","version":"v1"}`, "no methods"},
		{"foreign scope", `{"name":"chat","version":"v1","auth":{"oauth2":{"scopes":{"https://example.com/x":{}}}},"resources":{"spaces":{"methods":{"get":{"id":"chat.spaces.get"}}}}}`, "not under"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render([]byte(tc.doc), "v0")
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Errorf("render: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
