package chatapi

import (
	"errors"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi/discovery"
)

// samplePath fills a path template with plausible values.
func samplePath(tmpl string) string {
	return regexp.MustCompile(`\{([A-Za-z]+)(:[^}]*)?\}`).ReplaceAllStringFunc(tmpl, func(v string) string {
		switch {
		case strings.HasPrefix(v, "{resource"):
			return "spaces/AAAA/messages/BBBB/attachments/CCCC"
		case strings.HasPrefix(v, "{user"):
			return "me"
		default:
			return "X1-" + strings.Trim(strings.SplitN(v, ":", 2)[0], "{}")
		}
	})
}

// Each catalog path with its verb routes to exactly that method.
func TestRouterMatchesEveryMethod(t *testing.T) {
	rt := NewRouter()
	seen := map[string]bool{}
	for _, m := range Methods() {
		if seen[m.ID] {
			t.Errorf("duplicate method id %q", m.ID)
		}
		seen[m.ID] = true
		for _, p := range m.Paths {
			path := samplePath(p)
			got, vars, err := rt.Match(httptest.NewRequest(m.Verb, path, nil))
			if err != nil {
				t.Errorf("%s %s: got error %v, want %s", m.Verb, path, err, m.ID)
				continue
			}
			if got.ID != m.ID {
				t.Errorf("%s %s: got %s, want %s", m.Verb, path, got.ID, m.ID)
			}
			if strings.Contains(p, "{space}") && m.Space(vars) != "spaces/X1-space" {
				t.Errorf("%s %s: space = %q, want spaces/X1-space", m.Verb, path, m.Space(vars))
			}
		}
		if len(m.AppScopes)+len(m.UserScopes) == 0 {
			t.Errorf("%s: accepts no scope", m.ID)
		}
		for _, s := range append(append(append([]Scope{}, m.AppScopes...), m.UserScopes...), m.AdminScopes...) {
			if _, ok := ParseScope(string(s)); !ok {
				t.Errorf("%s: unknown scope %q", m.ID, s)
			}
		}
		for _, s := range m.AppScopes {
			if s != ScopeBot && !s.IsApp() {
				t.Errorf("%s: app scope %q is neither chat.bot nor chat.app.*", m.ID, s)
			}
		}
	}
	if len(seen) < 50 {
		t.Errorf("catalog has %d methods, want the whole surface (>= 50)", len(seen))
	}
}

func TestRouterRefuses(t *testing.T) {
	rt := NewRouter()
	for _, tc := range []struct {
		desc, verb, path string
		want             error
	}{
		{"unknown path", "GET", "/v1/nothing", ErrNotFound},
		{"wrong verb", "PUT", "/v1/spaces/AAAA/messages", ErrVerbNotAllowed},
		{"verb suffix is not a space", "GET", "/v1/spaces/AAAA:completeImport", ErrVerbNotAllowed},
		{"unknown custom verb", "POST", "/v1/spaces/AAAA:explode", ErrNotFound},
		{"batch", "POST", "/batch", ErrNotFound},
		{"trailing slash", "GET", "/v1/spaces/AAAA/", ErrNotFound},
		{"empty segment", "GET", "/v1/spaces//messages", ErrNotFound},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, _, err := rt.Match(httptest.NewRequest(tc.verb, tc.path, nil))
			if !errors.Is(err, tc.want) {
				t.Errorf("%s %s: got %v, want %v", tc.verb, tc.path, err, tc.want)
			}
		})
	}
}

func TestErrorRoundTrip(t *testing.T) {
	w := httptest.NewRecorder()
	NewError(403, "denied").WithInfo(DomainBroker, "METHOD_NOT_ALLOWED", map[string]string{"caller": "x"}).Write(w)
	if w.Code != 403 {
		t.Fatalf("status = %d, want 403", w.Code)
	}
	e, ok := ParseError(w.Body.Bytes())
	if !ok {
		t.Fatalf("ParseError(%s) failed", w.Body)
	}
	d, _ := e.Info()
	if e.Status != "PERMISSION_DENIED" || d.Reason != "METHOD_NOT_ALLOWED" || d.Domain != DomainBroker || d.Metadata["caller"] != "x" {
		t.Errorf("round trip lost fields: %+v", e)
	}
}

func TestScopeKey(t *testing.T) {
	if got := ScopeKey([]Scope{"chat.bot", "chat.app.spaces", "chat.bot"}); got != "chat.app.spaces chat.bot" {
		t.Errorf("ScopeKey = %q", got)
	}
	if s, ok := ParseScope(ScopePrefix + "chat.bot"); !ok || s != ScopeBot {
		t.Errorf("ParseScope(URL) = %q, %v", s, ok)
	}
	if _, ok := ParseScope("chat.bott"); ok {
		t.Error("ParseScope accepted chat.bott")
	}
}

// The catalog is the discovery document's: the same methods, each with
// the same verb and exactly the scopes the document lists, split by kind.
func TestCatalogIsTheDiscoveryDocument(t *testing.T) {
	doc := discovery.Methods()
	if got := len(Methods()); got != len(doc) {
		t.Errorf("catalog has %d methods, the document %d", got, len(doc))
	}
	for _, d := range doc {
		t.Run(d.ID, func(t *testing.T) {
			m, ok := Lookup(d.ID)
			if !ok {
				t.Fatalf("the document's %s is not in the catalog", d.ID)
			}
			var got []string
			for _, s := range slices.Concat(m.AppScopes, m.UserScopes, m.AdminScopes) {
				got = append(got, string(s))
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(d.Scopes))) || m.Verb != d.Verb {
				t.Errorf("catalog %s %v, document %s %v", m.Verb, got, d.Verb, d.Scopes)
			}
		})
	}
}

// Every scope of the document has a place in exactly one preference list,
// and the lists name no scope the document lacks.
func TestPreferenceListsCoverTheDocument(t *testing.T) {
	placed := map[Scope]int{}
	for _, list := range [][]Scope{appPreference, userPreference, adminPreference} {
		for _, s := range list {
			placed[s]++
		}
	}
	for _, s := range discovery.Scopes() {
		if n := placed[Scope(s.Name)]; n != 1 {
			t.Errorf("scope %s of the document is in %d preference lists, want 1", s.Name, n)
		}
		delete(placed, Scope(s.Name))
	}
	for s := range placed {
		t.Errorf("preference lists name %s, which the document does not define", s)
	}
	for _, s := range appPreference {
		if s != ScopeBot && !s.IsApp() {
			t.Errorf("app preference lists %s, neither chat.bot nor chat.app.*", s)
		}
	}
	for _, s := range adminPreference {
		if !s.IsAdmin() {
			t.Errorf("admin preference lists %s, not chat.admin.*", s)
		}
	}
}

// build refuses a document and overlay that disagree, saying what to fix.
func TestBuildRefusesDisagreement(t *testing.T) {
	get := &discovery.Method{ID: "spaces.get", Verb: "GET", FlatPath: "v1/spaces/{spacesId}", Scopes: []string{"chat.bot"}}
	for _, tc := range []struct {
		name string
		doc  []*discovery.Method
		over map[string]overlay
		want string
	}{
		{"method without overlay", []*discovery.Method{get}, map[string]overlay{}, "spaces.get of the discovery document has no overlay entry"},
		{"overlay without method", []*discovery.Method{get}, map[string]overlay{"spaces.get": {}, "spaces.gone": {}}, "overlay entry spaces.gone names no method"},
		{"scope nobody placed", []*discovery.Method{{ID: "spaces.get", Verb: "GET", FlatPath: "v1/spaces/{spacesId}", Scopes: []string{"chat.new.thing"}}},
			map[string]overlay{"spaces.get": {}}, "accepts scope chat.new.thing, which no preference list places"},
		{"admin scope without useAdminAccess", []*discovery.Method{{ID: "spaces.get", Verb: "GET", FlatPath: "v1/spaces/{spacesId}", Scopes: []string{"chat.admin.spaces"}}},
			map[string]overlay{"spaces.get": {}}, "has no useAdminAccess parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(tc.doc, tc.over)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
