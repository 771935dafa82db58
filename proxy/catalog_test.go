package proxy_test

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

const everythingSecret = "everything-secret-0123456789abcd"

// Every method in the catalog, as the app and as a user wherever Chat
// offers that, resolves through the broker to a token the emulator
// accepts for it: never a 401, an insufficient-scope 403, an approval
// 403 or a user-auth-only 403.
// requestFor is what some methods need beyond their path: a search names
// every space (spaces/-) and its spaces in the filter; a space-events list
// names its event types.
var requestFor = map[string]struct{ space, query, body string }{
	"spaces.messages.search":  {space: "-", body: `{"filter": "tasks AND space.name = \"spaces/AAAA\""}`},
	"spaces.spaceEvents.list": {query: "?filter=" + url.QueryEscape(`event_types:"google.workspace.chat.message.v1.created"`)},
}

// pathVar is a variable of a catalog path template, and samples the
// values that Chat's routes need; any other variable gets "X1".
var (
	pathVar = regexp.MustCompile(`\{([A-Za-z]+)(:[^}]*)?\}`)
	samples = map[string]string{"space": "AAAA", "message": "M1", "member": "app", "user": "me"}
)

func TestEveryMethodGetsAnAcceptedScope(t *testing.T) {
	var all []string
	var approved []chatapi.Scope
	for _, s := range chatapi.Scopes() {
		all = append(all, string(s))
		if s.IsApp() {
			approved = append(approved, s)
		}
	}
	pol := fmt.Sprintf(`version: 1
callers:
  - name: everything
    identify: {secretSHA256: %q}
    allow:
      - methods: ["*"]
        spaces: ["*"]
    scopes: [%s]
    subjects: ["*@example.com"]
    adminAccess: true
`, policy.HashSecret(everythingSecret), strings.Join(all, ", "))
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA"}, Approved: approved, Delegation: true}, pol)

	refusedByChat := regexp.MustCompile(strings.Join([]string{
		regexp.QuoteMeta(chatapi.MsgInsufficientScopes),
		regexp.QuoteMeta(chatapi.MsgAdminApproval),
		regexp.QuoteMeta(chatapi.MsgUserAuthOnly),
		"without service account credentials",
	}, "|"))
	checked := 0
	for _, m := range chatapi.Methods() {
		for _, subject := range []string{"", "alice@example.com"} {
			if (subject == "" && len(m.AppScopes) == 0) || (subject != "" && len(m.UserScopes) == 0) {
				continue
			}
			x := requestFor[m.ID]
			path := pathVar.ReplaceAllStringFunc(m.Paths[0], func(v string) string {
				name := pathVar.FindStringSubmatch(v)[1]
				if name == "space" && x.space != "" {
					return x.space
				}
				if val, ok := samples[name]; ok {
					return val
				}
				return "X1"
			}) + x.query
			name := m.ID + " as app"
			if subject != "" {
				name = m.ID + " as user"
			}
			t.Run(name, func(t *testing.T) {
				expl, err := proxy.Explain(e.policy, "everything", m.Verb+" "+path, subject)
				if err != nil || expl.Decision != "allow" {
					t.Fatalf("explain: %+v %v", expl, err)
				}
				before := len(e.emu.Requests())
				var body io.Reader
				if m.Verb != "GET" && m.Verb != "DELETE" {
					body = strings.NewReader(cmp.Or(x.body, "{}"))
				}
				req, _ := http.NewRequest(m.Verb, e.url+path, body)
				req.Header.Set("Authorization", "Bearer "+everythingSecret)
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				if subject != "" {
					req.Header.Set(proxy.SubjectHeader, subject)
				}
				resp, got := roundTrip(t, req)
				reqs := e.emu.Requests()[before:]
				if len(reqs) != 1 {
					t.Fatalf("%d requests reached the emulator (broker answered %d %s), want 1", len(reqs), resp.StatusCode, got)
				}
				if resp.StatusCode == 401 || (resp.StatusCode == 403 && refusedByChat.Match(got)) {
					t.Errorf("Chat refused the broker's token: %d %s", resp.StatusCode, got)
				}
				if chatapi.ScopeKey(reqs[0].Scopes) != chatapi.ScopeKey(expl.Scopes) || reqs[0].Subject != subject {
					t.Errorf("token carried %v as %q, explain said %v as %q", reqs[0].Scopes, reqs[0].Subject, expl.Scopes, subject)
				}
			})
			checked++
		}
	}
	if checked < 60 {
		t.Errorf("checked %d method/auth pairs; the catalog should give more", checked)
	}
}
