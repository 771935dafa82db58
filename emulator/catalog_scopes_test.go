package emulator_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// pathVars are plausible values for the catalog's path variables.
var pathVars = map[string]string{
	"space":       "AAAA",
	"resource":    "spaces/AAAA/attachments/A1",
	"customEmoji": ":party:",
	"user":        "me",
}

var varRE = regexp.MustCompile(`\{([A-Za-z]+)(:[^}]*)?\}`)

// plausiblePath fills a catalog path template.
func plausiblePath(tmpl string) string {
	return varRE.ReplaceAllStringFunc(tmpl, func(v string) string {
		name := varRE.FindStringSubmatch(v)[1]
		if val, ok := pathVars[name]; ok {
			return val
		}
		return "X1"
	})
}

// tokens mints each (subject, scope) once.
type tokens struct {
	v    *env
	have map[string]string
}

func (ts *tokens) get(t *testing.T, subject string, scope chatapi.Scope) string {
	t.Helper()
	k := subject + " " + string(scope)
	if tok, ok := ts.have[k]; ok {
		return tok
	}
	tok := ts.v.token(t, subject, scope)
	ts.have[k] = tok
	return tok
}

// call sends a plausible request for m and returns the status and error.
func (ts *tokens) call(t *testing.T, m *chatapi.Method, token, query string) (int, *chatapi.Error) {
	t.Helper()
	path := plausiblePath(m.Paths[0]) + query
	body, ct := "", ""
	if m.Verb != http.MethodGet && m.Verb != http.MethodDelete {
		body, ct = "{}", "application/json"
	}
	status, _, b := ts.v.do(t, m.Verb, path, token, ct, body)
	e, _ := chatapi.ParseError(b)
	return status, e
}

// authRefusal reports whether a response is a refusal of the token:
// 401, or a 403 about scopes, approval or the kind of authentication.
func authRefusal(status int, e *chatapi.Error) bool {
	if status == 401 {
		return true
	}
	if status != 403 || e == nil {
		return false
	}
	switch e.Message {
	case chatapi.MsgInsufficientScopes, chatapi.MsgAdminApproval, chatapi.MsgUserAuthOnly, chatapi.MsgNotPermitted:
		return true
	}
	return strings.HasPrefix(e.Message, "The API is called without service account credentials")
}

// firstOther returns the first scope accepted by ok that is not in list.
func firstOther(list []chatapi.Scope, ok func(chatapi.Scope) bool) chatapi.Scope {
	for _, s := range chatapi.Scopes() {
		if ok(s) && !slices.Contains(list, s) {
			return s
		}
	}
	return ""
}

func isAdminScope(s chatapi.Scope) bool { return strings.HasPrefix(string(s), "chat.admin.") }

// Every catalog method accepts the narrowest scope the catalog lists for
// each kind of authentication, and refuses a scope it does not list.
func TestCatalogScopes(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Delegation: true})
	for _, s := range chatapi.Scopes() {
		v.emu.Approve(s, true) // approval has its own tests
	}
	ts := &tokens{v: v, have: map[string]string{}}
	const user = "alice@example.com"
	for _, m := range chatapi.Methods() {
		t.Run(m.ID, func(t *testing.T) {
			// The catalog's first scope for each kind of authentication
			// passes authorization.
			for _, kind := range []struct {
				name, subject, query string
				scopes               []chatapi.Scope
			}{
				{"app token", "", "", m.AppScopes},
				{"delegated token", user, "", m.UserScopes},
				{"admin token", user, "?useAdminAccess=true", m.AdminScopes},
			} {
				if len(kind.scopes) == 0 {
					continue
				}
				t.Run(kind.name, func(t *testing.T) {
					s := kind.scopes[0]
					status, e := ts.call(t, m, ts.get(t, kind.subject, s), kind.query)
					t.Logf("%s with %s: %d", kind.name, s, status)
					if authRefusal(status, e) {
						t.Errorf("%s with %s: %d %v", kind.name, s, status, e)
					}
				})
			}

			// The converse: a scope the method does not list.
			wantInsufficient := func(what string, status int, e *chatapi.Error) {
				t.Helper()
				if status != 403 || e == nil || e.Message != chatapi.MsgInsufficientScopes || reason(e) != "ACCESS_TOKEN_SCOPE_INSUFFICIENT" {
					t.Errorf("%s: %d %v, want 403 %q", what, status, e, chatapi.MsgInsufficientScopes)
				}
			}
			appOther := firstOther(m.AppScopes, func(s chatapi.Scope) bool { return s == chatapi.ScopeBot || s.IsApp() })
			status, e := ts.call(t, m, ts.get(t, "", appOther), "")
			if m.UserOnly() {
				if status != 403 || e == nil || e.Message != chatapi.MsgUserAuthOnly {
					t.Errorf("app token on a user-only method: %d %v, want 403 %q", status, e, chatapi.MsgUserAuthOnly)
				}
			} else {
				wantInsufficient("app token with "+string(appOther), status, e)
			}
			userOther := firstOther(m.UserScopes, func(s chatapi.Scope) bool {
				return s != chatapi.ScopeBot && !s.IsApp() && !isAdminScope(s)
			})
			status, e = ts.call(t, m, ts.get(t, user, userOther), "")
			wantInsufficient("delegated token with "+string(userOther), status, e)
			if len(m.UserScopes) > 0 && !slices.Contains(m.AdminScopes, m.UserScopes[0]) {
				status, e = ts.call(t, m, ts.get(t, user, m.UserScopes[0]), "?useAdminAccess=true")
				wantInsufficient("useAdminAccess with "+string(m.UserScopes[0]), status, e)
			}
		})
	}
}
