package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
)

const decideFile = `
version: 1
callers:
  - name: notifier
    identify: {secretSHA256: H1}
    allow:
      - methods: [spaces.messages.create, spaces.messages.get]
        spaces: [spaces/AAAA, spaces/BBBB]
      - methods: [spaces.messages.create]
        spaces: [spaces/CCCC]
      - methods: [spaces.list]
        spaces: ["*"]
    scopes: [chat.bot]
  - name: reader
    identify: {secretSHA256: H2}
    allow:
      - methods: ["spaces.messages.*"]
        spaces: ["*"]
      - methods: [spaces.create, spaces.get, "spaces.messagePins.*"]
        spaces: ["*"]
    # File order does not matter: the catalog's narrowest-first order does.
    scopes: [chat.app.spaces, chat.app.messages.readonly, chat.app.spaces.create, chat.bot]
  - name: wild
    identify: {secretSHA256: H3}
    allow:
      - methods: ["*"]
        spaces: [spaces/AAAA]
    scopes: [chat.bot, chat.app.spaces]
  - name: delegate
    identify: {secretSHA256: H4}
    allow:
      - methods: ["spaces.messages.*", media.download, spaces.members.list]
        spaces: ["*"]
    scopes: [chat.bot, chat.messages.reactions.create, chat.messages]
    subjects: [alice@example.com, "*@Corp.Example.org"]
`

func TestDecide(t *testing.T) {
	p := mustParse(t, decideFile)
	other := mustParse(t, decideFile)
	caller := func(name string) *Caller {
		c, ok := p.CallerByName(name)
		if !ok {
			t.Fatalf("no caller %q", name)
		}
		return c
	}
	method := func(id string) *chatapi.Method {
		m, ok := chatapi.Lookup(id)
		if !ok {
			t.Fatalf("no method %q", id)
		}
		return m
	}
	allow := func(rule string, scope chatapi.Scope, subject string) Decision {
		return Decision{Allow: true, Rule: rule, Scopes: []chatapi.Scope{scope}, Subject: subject}
	}
	otherNotifier, _ := other.CallerByName("notifier")

	for _, tc := range []struct {
		desc    string
		caller  *Caller
		method  string
		space   string
		subject string
		want    Decision
	}{
		// Allowed, and by which rule.
		{"allowed in a listed space", caller("notifier"), "spaces.messages.create", "spaces/AAAA", "",
			allow("callers[0].allow[0]", "chat.bot", "")},
		{"second rule for the same method", caller("notifier"), "spaces.messages.create", "spaces/CCCC", "",
			allow("callers[0].allow[1]", "chat.bot", "")},
		{"space-less method with spaces [*]", caller("notifier"), "spaces.list", "", "",
			allow("callers[0].allow[2]", "chat.bot", "")},

		// 1. Method.
		{"method not listed", caller("notifier"), "spaces.messages.delete", "spaces/AAAA", "",
			Decision{Reason: ReasonMethodNotAllowed, Rule: "callers[0].allow",
				Message: `caller "notifier" may not call spaces.messages.delete; add it to callers[0].allow[].methods in policy.yaml`}},
		{"group does not reach other groups", caller("reader"), "spaces.members.list", "spaces/AAAA", "",
			Decision{Reason: ReasonMethodNotAllowed, Rule: "callers[1].allow",
				Message: `caller "reader" may not call spaces.members.list; add it to callers[1].allow[].methods in policy.yaml`}},
		{"nil method", caller("notifier"), "", "spaces/AAAA", "",
			Decision{Reason: ReasonMethodNotAllowed, Rule: "callers[0].allow", Message: "the request matches no Chat method"}},

		// 2. Space.
		{"space not listed, two rules could take it", caller("notifier"), "spaces.messages.create", "spaces/DDDD", "",
			Decision{Reason: ReasonSpaceNotAllowed, Rule: "callers[0].allow[0].spaces",
				Message: `caller "notifier" may not call spaces.messages.create in spaces/DDDD; add "spaces/DDDD" to callers[0].allow[0].spaces or callers[0].allow[1].spaces in policy.yaml`}},
		{"space listed for another method only", caller("notifier"), "spaces.messages.get", "spaces/CCCC", "",
			Decision{Reason: ReasonSpaceNotAllowed, Rule: "callers[0].allow[0].spaces",
				Message: `caller "notifier" may not call spaces.messages.get in spaces/CCCC; add "spaces/CCCC" to callers[0].allow[0].spaces in policy.yaml`}},
		{"* methods in one space", caller("wild"), "spaces.messages.delete", "spaces/AAAA", "",
			allow("callers[2].allow[0]", "chat.bot", "")},
		{"* methods, other space", caller("wild"), "spaces.messages.delete", "spaces/BBBB", "",
			Decision{Reason: ReasonSpaceNotAllowed, Rule: "callers[2].allow[0].spaces",
				Message: `caller "wild" may not call spaces.messages.delete in spaces/BBBB; add "spaces/BBBB" to callers[2].allow[0].spaces in policy.yaml`}},
		{"* methods with specific spaces never reach a space-less method", caller("wild"), "spaces.list", "", "",
			Decision{Reason: ReasonSpaceNotAllowed, Rule: "callers[2].allow",
				Message: `caller "wild" may not call spaces.list: it names no space, so only a rule with spaces: ["*"] allows it; add {methods: [spaces.list], spaces: ["*"]} to callers[2].allow in policy.yaml`}},
		{"a space given for a space-less method changes nothing", caller("wild"), "spaces.list", "spaces/AAAA", "",
			Decision{Reason: ReasonSpaceNotAllowed, Rule: "callers[2].allow",
				Message: `caller "wild" may not call spaces.list: it names no space, so only a rule with spaces: ["*"] allows it; add {methods: [spaces.list], spaces: ["*"]} to callers[2].allow in policy.yaml`}},
		{"space-less media.download with spaces [*]", caller("delegate"), "media.download", "", "",
			allow("callers[3].allow[0]", "chat.bot", "")},

		// 3. Authentication.
		{"user-only method without a subject", caller("reader"), "spaces.messagePins.create", "spaces/AAAA", "",
			Decision{Reason: ReasonUserAuthRequired, Rule: "callers[1].subjects",
				Message: `caller "reader" called spaces.messagePins.create without a subject, but it needs user authentication through domain-wide delegation; name a subject allowed in callers[1].subjects in policy.yaml`}},
		{"subject given, caller has no subjects", caller("reader"), "spaces.messages.get", "spaces/AAAA", "bob@example.com",
			Decision{Reason: ReasonSubjectNotAllowed, Rule: "callers[1].subjects",
				Message: `caller "reader" may not act as "bob@example.com"; add it to callers[1].subjects in policy.yaml`}},
		{"subject not listed", caller("delegate"), "spaces.messages.create", "spaces/AAAA", "eve@example.com",
			Decision{Reason: ReasonSubjectNotAllowed, Rule: "callers[3].subjects",
				Message: `caller "delegate" may not act as "eve@example.com"; add it to callers[3].subjects in policy.yaml`}},
		{"subject is not an email", caller("delegate"), "spaces.messages.create", "spaces/AAAA", "alice@example.com@corp.example.org",
			Decision{Reason: ReasonSubjectNotAllowed, Rule: "callers[3].subjects",
				Message: `caller "delegate" may not act as "alice@example.com@corp.example.org": a subject is a user's email address, as listed in callers[3].subjects in policy.yaml`}},
		{"subject in a sub-domain of a pattern", caller("delegate"), "spaces.messages.create", "spaces/AAAA", "x@eu.corp.example.org",
			Decision{Reason: ReasonSubjectNotAllowed, Rule: "callers[3].subjects",
				Message: `caller "delegate" may not act as "x@eu.corp.example.org"; add it to callers[3].subjects in policy.yaml`}},
		{"app-only method with a subject", caller("delegate"), "spaces.messages.attachments.get", "spaces/AAAA", "alice@example.com",
			Decision{Reason: ReasonAppAuthRequired, Rule: "callers[3].allow[0]",
				Message: `caller "delegate" called spaces.messages.attachments.get as "alice@example.com", but it accepts only app authentication; call it without a subject`}},

		// 4. Scope choice.
		{"chat.bot preferred for messages.get", caller("reader"), "spaces.messages.get", "spaces/AAAA", "",
			allow("callers[1].allow[0]", "chat.bot", "")},
		{"messages.list needs chat.app.messages.readonly", caller("reader"), "spaces.messages.list", "spaces/AAAA", "",
			allow("callers[1].allow[0]", "chat.app.messages.readonly", "")},
		{"spaces.create: chat.app.spaces.create before chat.app.spaces", caller("reader"), "spaces.create", "", "",
			allow("callers[1].allow[1]", "chat.app.spaces.create", "")},
		{"spaces.get: chat.bot before chat.app.spaces", caller("reader"), "spaces.get", "spaces/AAAA", "",
			allow("callers[1].allow[1]", "chat.bot", "")},
		{"spaces.patch: only chat.app.spaces", caller("wild"), "spaces.patch", "spaces/AAAA", "",
			allow("callers[2].allow[0]", "chat.app.spaces", "")},
		{"app scope not granted", caller("wild"), "spaces.delete", "spaces/AAAA", "",
			Decision{Reason: ReasonScopeNotGranted, Rule: "callers[2].scopes",
				Message: `caller "wild" may not call spaces.delete with app authentication: it needs "chat.app.delete", which callers[2].scopes does not grant; add it to callers[2].scopes in policy.yaml`}},
		{"user scope not granted", caller("delegate"), "spaces.members.list", "spaces/AAAA", "alice@example.com",
			Decision{Reason: ReasonScopeNotGranted, Rule: "callers[3].scopes",
				Message: `caller "delegate" may not call spaces.members.list as a user: it needs one of "chat.memberships.readonly", "chat.memberships", "chat.import", which callers[3].scopes does not grant; add it to callers[3].scopes in policy.yaml`}},
		{"same method as the app uses chat.bot", caller("delegate"), "spaces.members.list", "spaces/AAAA", "",
			allow("callers[3].allow[0]", "chat.bot", "")},

		// Subjects: exact (any case) and patterns; never chat.bot.
		{"exact subject, narrowest user scope", caller("delegate"), "spaces.messages.reactions.create", "spaces/AAAA", "alice@example.com",
			allow("callers[3].allow[0]", "chat.messages.reactions.create", "alice@example.com")},
		{"exact subject, other case", caller("delegate"), "spaces.messages.reactions.create", "spaces/AAAA", "Alice@Example.COM",
			allow("callers[3].allow[0]", "chat.messages.reactions.create", "alice@example.com")},
		{"pattern subject", caller("delegate"), "spaces.messages.reactions.list", "spaces/AAAA", "bob@corp.example.org",
			allow("callers[3].allow[0]", "chat.messages", "bob@corp.example.org")},
		{"messages.create as a user gets chat.messages, never chat.bot", caller("delegate"), "spaces.messages.create", "spaces/AAAA", "BOB@corp.example.org",
			allow("callers[3].allow[0]", "chat.messages", "bob@corp.example.org")},
		{"messages.create as the app gets chat.bot", caller("delegate"), "spaces.messages.create", "spaces/AAAA", "",
			allow("callers[3].allow[0]", "chat.bot", "")},
		{"user-only search as a subject", caller("delegate"), "spaces.messages.search", "spaces/AAAA", "alice@example.com",
			allow("callers[3].allow[0]", "chat.messages", "alice@example.com")},

		// Callers that do not belong.
		{"nil caller", nil, "spaces.messages.create", "spaces/AAAA", "",
			Decision{Reason: ReasonUnknownCaller, Message: "the caller is not in the current policy; identify it again"}},
		{"caller from another policy", otherNotifier, "spaces.messages.create", "spaces/AAAA", "",
			Decision{Reason: ReasonUnknownCaller, Message: "the caller is not in the current policy; identify it again"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var m *chatapi.Method
			if tc.method != "" {
				m = method(tc.method)
			}
			got := p.Decide(tc.caller, m, tc.space, tc.subject)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A method Decide has never seen in the catalog (a future catalog entry
// or a test double) is still decided by id and never gets chat.bot with a
// subject.
func TestDecideNeverPairsBotWithSubject(t *testing.T) {
	p := mustParse(t, `
version: 1
callers:
  - name: d
    identify: {secretSHA256: H1}
    allow: [{methods: ["*"], spaces: ["*"]}]
    scopes: [chat.bot]
    subjects: [alice@example.com]
`)
	c, _ := p.CallerByName("d")
	broken := &chatapi.Method{ID: "spaces.messages.create", Paths: []string{"/v1/spaces/{space}/messages"},
		AppScopes: []chatapi.Scope{chatapi.ScopeBot}, UserScopes: []chatapi.Scope{chatapi.ScopeBot}}
	got := p.Decide(c, broken, "spaces/AAAA", "alice@example.com")
	if got.Allow || got.Reason != ReasonScopeNotGranted {
		t.Errorf("got %+v, want a SCOPE_NOT_GRANTED deny", got)
	}
}

// Every deny names the file, and every catalog method is decided without
// a panic, for every caller.
func TestDecideEveryMethod(t *testing.T) {
	p := mustParse(t, decideFile)
	for _, c := range p.Callers() {
		for _, m := range chatapi.Methods() {
			for _, subject := range []string{"", "alice@example.com"} {
				d := p.Decide(c, m, "spaces/AAAA", subject)
				if d.Allow != (d.Reason == "") || d.Allow != (d.Message == "") || d.Rule == "" {
					t.Errorf("%s %s %q: inconsistent decision %+v", c.Name, m.ID, subject, d)
				}
				if !d.Allow && d.Reason != ReasonAppAuthRequired && !strings.Contains(d.Message, "policy.yaml") {
					t.Errorf("%s %s %q: message does not name the file: %s", c.Name, m.ID, subject, d.Message)
				}
				if d.Allow && (len(d.Scopes) != 1 || (subject != "" && d.Scopes[0] == chatapi.ScopeBot)) {
					t.Errorf("%s %s %q: scopes %v", c.Name, m.ID, subject, d.Scopes)
				}
			}
		}
	}
}

// manyCallers is a policy with n callers; the last one, "caller-(n-1)",
// may create messages in spaces/AAAA.
func manyCallers(tb testing.TB, n int) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ncallers:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: caller-%d
    identify: {secretSHA256: %s}
    allow:
      - methods: [spaces.messages.create, spaces.messages.get]
        spaces: [spaces/AAAA, spaces/BBBB]
      - methods: ["spaces.members.*"]
        spaces: ["*"]
    scopes: [chat.bot]
`, i, HashSecret(fmt.Sprintf("secret-%d", i)))
	}
	p, err := Parse("policy.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkDecide shows that identifying a caller and deciding cost the
// same with 1 caller as with 10,000.
func BenchmarkDecide(b *testing.B) {
	create, _ := chatapi.Lookup("spaces.messages.create")
	for _, n := range []int{1, 10_000} {
		p := manyCallers(b, n)
		secret := fmt.Sprintf("secret-%d", n-1)
		c, ok := p.CallerBySecret(secret)
		if !ok {
			b.Fatal("caller not found")
		}
		b.Run(fmt.Sprintf("Decide/callers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Decide(c, create, "spaces/BBBB", ""); !d.Allow {
					b.Fatal(d.Message)
				}
			}
		})
		b.Run(fmt.Sprintf("CallerBySecret/callers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := p.CallerBySecret(secret); !ok {
					b.Fatal("caller not found")
				}
			}
		})
		b.Run(fmt.Sprintf("Deny/callers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := p.Decide(c, create, "spaces/CCCC", ""); d.Allow {
					b.Fatal("allowed")
				}
			}
		})
	}
}

const requestFile = `
version: 1
callers:
  - name: admin
    identify: {secretSHA256: H1}
    allow:
      - methods: [spaces.get, spaces.messages.get, "spaces.members.*"]
        spaces: ["*"]
    scopes: [chat.spaces.readonly, chat.messages.readonly, chat.admin.spaces.readonly, chat.admin.spaces]
    subjects: [root@example.com]
    adminAccess: true
  - name: plain
    identify: {secretSHA256: H2}
    allow:
      - methods: [spaces.get]
        spaces: ["*"]
      - methods: [spaces.messages.get]
        spaces: [spaces/AAAA]
        prefer: [chat.app.messages.readonly]
      - methods: [spaces.messages.get]
        spaces: ["*"]
      - methods: ["spaces.spaceEvents.*"]
        spaces: ["*"]
    scopes: [chat.bot, chat.spaces.readonly, chat.app.messages.readonly, chat.app.memberships, chat.memberships.readonly]
    subjects: [alice@example.com]
`

// DecideRequest: admin access is a grant of its own, a rule may prefer a
// wider scope it grants, and calls whose scopes depend on what they ask
// for get one scope per need.
func TestDecideRequest(t *testing.T) {
	p := mustParse(t, requestFile)
	caller := func(name string) *Caller { c, _ := p.CallerByName(name); return c }
	method := func(id string) *chatapi.Method { m, _ := chatapi.Lookup(id); return m }
	events, err := chatapi.SpaceEventNeeds(`event_types:"google.workspace.chat.message.v1.created" OR event_types:"google.workspace.chat.membership.v1.created"`)
	if err != nil {
		t.Fatal(err)
	}
	spaceOnly, _ := chatapi.SpaceEventNeeds(`event_types:"google.workspace.chat.space.v1.updated"`)
	allow := func(rule, subject string, scopes ...chatapi.Scope) Decision {
		return Decision{Allow: true, Rule: rule, Scopes: scopes, Subject: subject}
	}
	for _, tc := range []struct {
		name   string
		caller string
		req    Request
		want   Decision
	}{
		{"admin access, narrowest admin scope", "admin", Request{Method: method("spaces.get"), Space: "spaces/AAAA", Subject: "root@example.com", AdminAccess: true},
			allow("callers[0].allow[0]", "root@example.com", chatapi.ScopeAdminSpacesReadonly)},
		{"admin access for a write", "admin", Request{Method: method("spaces.members.delete"), Space: "spaces/AAAA", Subject: "root@example.com", AdminAccess: true},
			Decision{Reason: ReasonScopeNotGranted, Rule: "callers[0].scopes",
				Message: `caller "admin" may not call spaces.members.delete with admin access: it needs "chat.admin.memberships", which callers[0].scopes does not grant; add it to callers[0].scopes in policy.yaml`}},
		{"the same caller without admin access", "admin", Request{Method: method("spaces.get"), Space: "spaces/AAAA", Subject: "root@example.com"},
			allow("callers[0].allow[0]", "root@example.com", chatapi.ScopeSpacesReadonly)},
		{"admin access without a subject", "admin", Request{Method: method("spaces.get"), Space: "spaces/AAAA", AdminAccess: true},
			Decision{Reason: ReasonUserAuthRequired, Rule: "callers[0].subjects",
				Message: `caller "admin" called spaces.get with useAdminAccess=true, which acts as a Workspace administrator; name the administrator as the subject (allowed in callers[0].subjects in policy.yaml)`}},
		{"admin access on a method without it", "admin", Request{Method: method("spaces.messages.get"), Space: "spaces/AAAA", Subject: "root@example.com", AdminAccess: true},
			Decision{Reason: ReasonAdminAccessNotGranted, Rule: "callers[0].allow[0]", Message: "spaces.messages.get offers no admin access; call it without useAdminAccess"}},
		{"admin access not granted", "plain", Request{Method: method("spaces.get"), Space: "spaces/AAAA", Subject: "alice@example.com", AdminAccess: true},
			Decision{Reason: ReasonAdminAccessNotGranted, Rule: "callers[1].adminAccess",
				Message: `caller "plain" may not call spaces.get with useAdminAccess=true; set callers[1].adminAccess: true and grant a chat.admin.* scope in policy.yaml, or call without useAdminAccess`}},
		{"a rule that prefers the wider scope", "plain", Request{Method: method("spaces.messages.get"), Space: "spaces/AAAA"},
			allow("callers[1].allow[1]", "", chatapi.ScopeAppMessagesReadonly)},
		{"least privilege where no rule prefers", "plain", Request{Method: method("spaces.messages.get"), Space: "spaces/BBBB"},
			allow("callers[1].allow[2]", "", chatapi.ScopeBot)},
		{"one scope per kind of event", "plain", Request{Method: method("spaces.spaceEvents.list"), Space: "spaces/AAAA", Needs: events},
			allow("callers[1].allow[3]", "", chatapi.ScopeAppMemberships, chatapi.ScopeAppMessagesReadonly)},
		{"events as a user", "plain", Request{Method: method("spaces.spaceEvents.list"), Space: "spaces/AAAA", Subject: "alice@example.com", Needs: events},
			Decision{Reason: ReasonScopeNotGranted, Rule: "callers[1].scopes",
				Message: `caller "plain" may not call spaces.spaceEvents.list as a user for message events: it needs one of "chat.messages.readonly", "chat.messages", which callers[1].scopes does not grant; add it to callers[1].scopes in policy.yaml`}},
		{"a kind no scope is granted for", "plain", Request{Method: method("spaces.spaceEvents.list"), Space: "spaces/AAAA", Needs: spaceOnly},
			Decision{Reason: ReasonScopeNotGranted, Rule: "callers[1].scopes",
				Message: `caller "plain" may not call spaces.spaceEvents.list with app authentication for space events: it needs one of "chat.app.spaces.readonly", "chat.app.spaces", "chat.app.all.spaces.readonly", which callers[1].scopes does not grant; add it to callers[1].scopes in policy.yaml`}},
		{"get: every kind granted", "plain", Request{Method: method("spaces.spaceEvents.get"), Space: "spaces/AAAA", Needs: chatapi.SpaceEventKinds(), AnyNeed: true},
			allow("callers[1].allow[3]", "", chatapi.ScopeAppMemberships, chatapi.ScopeAppMessagesReadonly)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.DecideRequest(caller(tc.caller), tc.req)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
