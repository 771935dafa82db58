// Package discovery is the Google Chat API as Google's discovery document
// states it: each method's id, verb, path, query parameters, accepted
// scopes and media protocols, and the API's scopes. methods.go is
// generated from the document in the google.golang.org/api module that
// go.mod pins (go generate ./chatapi/discovery), and a test fails when it
// is stale. Package chatapi builds the broker's catalog from it plus what
// the document does not say; the emulator checks scopes against it
// directly, so a mistake in that catalog cannot pass unnoticed.
package discovery
