package proxy_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	chat "google.golang.org/api/chat/v1"
	"google.golang.org/api/googleapi"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

const (
	adminSecret    = "admin-secret-0123456789abcdef000"
	delegateSecret = "delegate-secret-0123456789abcdef"
)

var scopesPolicy = fmt.Sprintf(`version: 1
callers:
  - name: space-admin
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.create]
        spaces: ["*"]
      - methods: [spaces.messages.list, spaces.get]
        spaces: [spaces/AAAA]
    scopes: [chat.app.spaces, chat.app.spaces.create, chat.app.messages.readonly, chat.bot]
  - name: delegate
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.messages.create, spaces.messages.attachments.get]
        spaces: [spaces/AAAA]
    scopes: [chat.bot, chat.messages.create]
    subjects: ["alice@example.com", "*@corp.example.com"]
`, policy.HashSecret(adminSecret), policy.HashSecret(delegateSecret))

func googleErr(t *testing.T, err error) *googleapi.Error {
	t.Helper()
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("err = %v, want a *googleapi.Error", err)
	}
	return gerr
}

// spaces.create carries the narrowest app scope the caller is granted
// (chat.app.spaces.create, not chat.app.spaces). Without admin approval
// Chat's 403 comes back unchanged with a hint; the moment the admin
// approves, the next call succeeds and the broker's view flips back.
func TestAppScopeApproval(t *testing.T) {
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA"}}, scopesPolicy)
	svc := e.chatService(t, adminSecret)
	space := &chat.Space{SpaceType: "SPACE", DisplayName: "Launch", Customer: "customers/my_customer"}

	_, err := svc.Spaces.Create(space).Do()
	gerr := googleErr(t, err)
	if gerr.Code != 403 || gerr.Message != chatapi.MsgAdminApproval {
		t.Fatalf("create before approval: %d %q, want Chat's approval 403", gerr.Code, gerr.Message)
	}
	hint := gerr.Header.Get(proxy.HintHeader)
	for _, want := range []string{"chat.app.spaces.create", "To perform this action, I need approval. <https://support.google.com/a?p=chat-app-auth|Learn more>."} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint %q does not contain %q", hint, want)
		}
	}
	if got := approvalOf(e.proxy, chatapi.ScopeAppSpacesCreate); got != proxy.NotApproved {
		t.Errorf("approval state after the 403 = %s, want %s", got, proxy.NotApproved)
	}
	if got := approvalOf(e.proxy, chatapi.ScopeAppSpaces); got != proxy.ApprovalUnknown {
		t.Errorf("chat.app.spaces state = %s, want %s (never used)", got, proxy.ApprovalUnknown)
	}

	// The broker does not refuse locally: the admin approves, and the very
	// next call goes through.
	e.emu.Approve(chatapi.ScopeAppSpacesCreate, true)
	created, err := svc.Spaces.Create(space).Do()
	if err != nil {
		t.Fatalf("create after approval: %v", err)
	}
	if !strings.HasPrefix(created.Name, "spaces/") {
		t.Errorf("created %+v", created)
	}
	if got := approvalOf(e.proxy, chatapi.ScopeAppSpacesCreate); got != proxy.Approved {
		t.Errorf("approval state after success = %s, want %s", got, proxy.Approved)
	}

	reqs := e.emu.Requests()
	if len(reqs) != 2 {
		t.Fatalf("emulator saw %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.MethodID != "spaces.create" || chatapi.ScopeKey(r.Scopes) != "chat.app.spaces.create" {
			t.Errorf("emulator saw %s with %v, want spaces.create with chat.app.spaces.create only", r.MethodID, r.Scopes)
		}
	}

	// spaces.get prefers chat.bot over chat.app.spaces.
	if _, err := svc.Spaces.Get("spaces/AAAA").Do(); err != nil {
		t.Fatal(err)
	}
	if last := e.emu.Requests()[2]; chatapi.ScopeKey(last.Scopes) != "chat.bot" {
		t.Errorf("spaces.get carried %v, want chat.bot", last.Scopes)
	}
}

func approvalOf(px *proxy.Proxy, s chatapi.Scope) proxy.ApprovalState {
	for _, a := range px.Approvals() {
		if a.Scope == s {
			return a.State
		}
	}
	return "absent"
}

// Chat's "not permitted" 403 passes through with a hint naming the space.
func TestNotMemberHint(t *testing.T) {
	e := newEnv(t)
	e.emu.AddSpace("spaces/CCCC", false)
	_, err := e.chatService(t, readerSecret).Spaces.Messages.Get("spaces/CCCC/messages/M1").Do()
	gerr := googleErr(t, err)
	if gerr.Code != 403 || gerr.Message != chatapi.MsgNotPermitted {
		t.Fatalf("got %d %q, want Chat's %q unchanged", gerr.Code, gerr.Message, chatapi.MsgNotPermitted)
	}
	if hint := gerr.Header.Get(proxy.HintHeader); !strings.Contains(hint, "not a member of spaces/CCCC") {
		t.Errorf("hint = %q", hint)
	}
	e.logs.WaitFor(t, `"hint":"The Chat app is not a member of spaces/CCCC`)
}

// A caller acts as a user only when the policy lets it; the token then
// carries a user scope and the subject, never chat.bot, and the subject
// header never reaches Google.
func TestDelegation(t *testing.T) {
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA"}, Delegation: true}, scopesPolicy)
	svc := e.chatService(t, delegateSecret)

	for _, tc := range []struct {
		desc, subject string
		wantStatus    int
		wantReason    string
	}{
		{"listed user", "alice@example.com", 200, ""},
		{"domain pattern", "Bob@Corp.Example.com", 200, ""},
		{"unlisted user", "mallory@example.com", 403, "SUBJECT_NOT_ALLOWED"},
		{"look-alike domain", "eve@corp.example.com.evil.test", 403, "SUBJECT_NOT_ALLOWED"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			before := len(e.emu.Requests())
			call := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "as " + tc.subject})
			call.Header().Set(proxy.SubjectHeader, tc.subject)
			_, err := call.Do()
			reqs := e.emu.Requests()[before:]
			if tc.wantStatus == 200 {
				if err != nil {
					t.Fatalf("create as %s: %v", tc.subject, err)
				}
				if len(reqs) != 1 || reqs[0].Subject != strings.ToLower(tc.subject) || chatapi.ScopeKey(reqs[0].Scopes) != "chat.messages.create" {
					t.Fatalf("emulator saw %+v, want one call as %s with chat.messages.create", reqs, tc.subject)
				}
				return
			}
			gerr := googleErr(t, err)
			if gerr.Code != tc.wantStatus || !strings.Contains(gerr.Body, tc.wantReason) {
				t.Errorf("got %d %s, want %d %s", gerr.Code, gerr.Body, tc.wantStatus, tc.wantReason)
			}
			if len(reqs) != 0 {
				t.Errorf("a refused delegation reached the emulator: %+v", reqs)
			}
		})
	}

	// Without a subject the same caller acts as the app, with chat.bot.
	if _, err := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "as app"}).Do(); err != nil {
		t.Fatal(err)
	}
	reqs := e.emu.Requests()
	if last := reqs[len(reqs)-1]; last.Subject != "" || chatapi.ScopeKey(last.Scopes) != "chat.bot" {
		t.Errorf("app call went as %q with %v, want the app with chat.bot", last.Subject, last.Scopes)
	}
	for _, r := range reqs {
		if strings.Contains(strings.ToLower(r.RawQuery), "subject") {
			t.Errorf("subject leaked into the query: %s", r.RawQuery)
		}
	}

	// An app-only method with a subject is refused, never minted with chat.bot + sub.
	call := svc.Spaces.Messages.Attachments.Get("spaces/AAAA/messages/M1/attachments/A1")
	call.Header().Set(proxy.SubjectHeader, "alice@example.com")
	_, err := call.Do()
	if gerr := googleErr(t, err); gerr.Code != 403 || !strings.Contains(gerr.Body, "APP_AUTH_REQUIRED") {
		t.Errorf("attachment as a user: %d %s, want 403 APP_AUTH_REQUIRED", gerr.Code, gerr.Body)
	}
	for _, m := range e.emu.Mints() {
		if m.Subject != "" && strings.Contains(chatapi.ScopeKey(m.Scopes), "chat.bot") {
			t.Errorf("a token was minted with chat.bot and subject %s", m.Subject)
		}
	}
}

// When Google refuses delegation (not granted in the Admin console), the
// caller is told what the admin must do.
func TestDelegationNotGranted(t *testing.T) {
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA"}}, scopesPolicy)
	req, _ := http.NewRequest("POST", e.url+"/v1/spaces/AAAA/messages", strings.NewReader(`{"text":"x"}`))
	req.Header.Set("Authorization", "Bearer "+delegateSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(proxy.SubjectHeader, "alice@example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("status %d, want 403 DELEGATION_NOT_GRANTED", resp.StatusCode)
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d calls reached Chat without a token", n)
	}
}

// A subject Google does not know is the caller's mistake: 400
// SUBJECT_NOT_FOUND with the fix, not a 503 that tells clients to retry.
// A user the domain has still gets a token afterwards.
func TestSubjectUnknownToGoogle(t *testing.T) {
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA"}, Delegation: true,
		Users: []string{"alice@example.com"}}, scopesPolicy)
	svc := e.chatService(t, delegateSecret)
	post := func(subject string) error {
		call := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "x"})
		call.Header().Set(proxy.SubjectHeader, subject)
		_, err := call.Do()
		return err
	}
	gerr := googleErr(t, post("ghost@corp.example.com"))
	if gerr.Code != 400 || !strings.Contains(gerr.Body, "SUBJECT_NOT_FOUND") ||
		!strings.Contains(gerr.Body, "ghost@corp.example.com") || !strings.Contains(gerr.Body, proxy.SubjectHeader) {
		t.Errorf("unknown subject: %d %s, want 400 SUBJECT_NOT_FOUND naming the user and the header", gerr.Code, gerr.Body)
	}
	if gerr.Header.Get("Retry-After") != "" {
		t.Errorf("Retry-After %q on a refusal no retry fixes", gerr.Header.Get("Retry-After"))
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d calls reached Chat without a token", n)
	}
	if err := post("alice@example.com"); err != nil {
		t.Errorf("known subject after an unknown one: %v", err)
	}
}

func TestSubjectHeaderShapes(t *testing.T) {
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA"}, Delegation: true}, scopesPolicy)
	for _, tc := range []struct {
		desc   string
		values []string
		reason string
	}{
		{"empty", []string{" "}, "SUBJECT_EMPTY"},
		{"twice", []string{"alice@example.com", "bob@corp.example.com"}, "SUBJECT_AMBIGUOUS"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url+"/v1/spaces/AAAA/messages", strings.NewReader(`{"text":"x"}`))
			req.Header.Set("Authorization", "Bearer "+delegateSecret)
			req.Header.Set("Content-Type", "application/json")
			req.Header[proxy.SubjectHeader] = tc.values
			resp, body := roundTrip(t, req)
			gerr, ok := chatapi.ParseError(body)
			if !ok {
				t.Fatalf("body is not a Google error: %s", body)
			}
			if info, _ := gerr.Info(); resp.StatusCode != 400 || info.Reason != tc.reason {
				t.Errorf("%d %s, want 400 %s", resp.StatusCode, body, tc.reason)
			}
		})
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d malformed-subject calls reached Chat", n)
	}
}
