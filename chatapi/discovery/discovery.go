package discovery

//go:generate go run ./gen -out methods.go -doc chat-api.json

import (
	_ "embed"
	"slices"
	"strings"
)

// Document is the discovery document itself, as Google publishes it. The
// broker serves it, pointed at itself, to clients that build themselves
// from it (Python's google-api-python-client).
//
//go:embed chat-api.json
var Document []byte

// Method is one method of the Chat API as the discovery document states
// it. Values are shared and must not be modified.
type Method struct {
	// ID is the method id without the "chat." prefix
	// ("spaces.messages.create").
	ID string
	// Verb is the HTTP method.
	Verb string
	// FlatPath is the path template with one variable a segment, relative
	// to RootURL ("v1/spaces/{spacesId}/messages").
	FlatPath string
	// NamePattern is the regular expression the resource name in the path
	// must match ("^spaces/[^/]+$"), or "" for a path with no name.
	NamePattern string
	// Query are the method's query parameters, sorted (system parameters
	// such as alt and fields are not listed).
	Query []string
	// Scopes are the OAuth scopes the method accepts, short form
	// ("chat.bot"), in the document's order. The document does not say
	// which are for app, user or admin access.
	Scopes []string
	// Request is the request body's schema, or "" for no body.
	Request string
	// MediaDownload reports that alt=media downloads the resource.
	MediaDownload bool
	// UploadPaths are the media upload paths relative to the host
	// ("/upload/v1/…" then "/resumable/upload/v1/…"), and MaxUpload the
	// largest upload in bytes; both empty for a method without uploads.
	UploadPaths []string
	MaxUpload   int64
}

// Scope is one OAuth scope of the API.
type Scope struct {
	Name        string // short form: "chat.bot"
	Description string
}

// Methods returns every method, sorted by ID. The slice is the caller's.
func Methods() []*Method {
	out := make([]*Method, len(methods))
	for i := range methods {
		out[i] = &methods[i]
	}
	return out
}

// Lookup returns the method with the id ("spaces.messages.create"; a
// leading "chat." is accepted too).
func Lookup(id string) (*Method, bool) {
	m, ok := byID[strings.TrimPrefix(id, "chat.")]
	return m, ok
}

var byID = func() map[string]*Method {
	m := make(map[string]*Method, len(methods))
	for i := range methods {
		m[methods[i].ID] = &methods[i]
	}
	return m
}()

// Scopes returns every scope the document defines, sorted by name. The
// slice is the caller's.
func Scopes() []Scope { return append([]Scope(nil), scopes...) }

// AcceptsQuery reports whether the method takes the query parameter name.
func (m *Method) AcceptsQuery(name string) bool { return slices.Contains(m.Query, name) }
