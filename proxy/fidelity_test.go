package proxy_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
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
	searcherSecret = "searcher-secret-0123456789abcdef"
	watcherSecret  = "watcher-secret-0123456789abcdef0"
	adminerSecret  = "adminer-secret-0123456789abcdef0"
	posterSecret   = "poster-secret-0123456789abcdef00"
)

var fidelityPolicy = "version: 1\ncallers:\n" +
	callerEntry("searcher", searcherSecret, "[spaces.messages.search, spaces.messages.create]", "[spaces/AAAA]",
		"[chat.messages.readonly, chat.messages.create]", "subjects: [alice@example.com]") +
	callerEntry("watcher", watcherSecret, `["spaces.spaceEvents.*", spaces.messages.get]`, "[spaces/AAAA]",
		"[chat.bot, chat.app.messages.readonly, chat.app.memberships.readonly]") +
	fmt.Sprintf(`  - name: adminer
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.get]
        spaces: ["*"]
      - methods: [spaces.messages.get]
        spaces: [spaces/BBBB]
        prefer: [chat.app.messages.readonly]
    scopes: [chat.bot, chat.app.messages.readonly, chat.spaces.readonly, chat.admin.spaces.readonly]
    subjects: [root@example.com, alice@example.com]
    adminAccess: true
`, policy.HashSecret(adminerSecret)) +
	callerEntry("plain", opsSecret, "[spaces.get]", `["*"]`, "[chat.bot, chat.spaces.readonly]", "subjects: [alice@example.com]") +
	callerEntry("poster", posterSecret, "[spaces.messages.create, media.upload]", `["*"]`, "[chat.messages.create]", "subjects: [alice@example.com]")

func fidelityEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWith(t, emulator.Config{Spaces: []string{"spaces/AAAA", "spaces/BBBB"}, Delegation: true,
		Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly, chatapi.ScopeAppMembershipsReadonly}}, fidelityPolicy)
	e.emu.AddMember("spaces/AAAA", "alice@example.com")
	e.emu.AddMember("spaces/BBBB", "alice@example.com")
	return e
}

// post sends a raw request to the broker and returns the status, the
// body and the broker's ErrorInfo reason.
func post(t *testing.T, e *env, verb, path, secret string, h http.Header, body []byte) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(verb, e.url+path, bytes.NewReader(body))
	req.Header = h.Clone()
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, b := roundTrip(t, req)
	reason := ""
	if ge, ok := chatapi.ParseError(b); ok {
		info, _ := ge.Info()
		reason = info.Reason
	}
	return resp.StatusCode, string(b), reason
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// messages.search searches every space unless its filter says otherwise,
// so a caller whose rules name spaces must name them in the filter; the
// broker reads the filter as Google will, gzip included, and refuses
// what it cannot read for certain before anything reaches Chat.
func TestSearchIsLimitedToTheCallersSpaces(t *testing.T) {
	e := fidelityEnv(t)
	// Alice has a report in each space; the searcher may search AAAA only.
	poster := e.chatService(t, posterSecret)
	for space, text := range map[string]string{"spaces/AAAA": "quarterly report", "spaces/BBBB": "secret report"} {
		call := poster.Spaces.Messages.Create(space, &chat.Message{Text: text})
		call.Header().Set(proxy.SubjectHeader, "alice@example.com")
		if _, err := call.Do(); err != nil {
			t.Fatal(err)
		}
	}
	svc := e.chatService(t, searcherSecret)
	if all, err := e.chatService(t, searcherSecret).Spaces.Messages.Search("spaces/-", &chat.SearchMessagesRequest{Filter: "report"}).Do(); err == nil {
		t.Fatalf("an unlimited search went through: %d results", len(all.Results))
	}

	search := func(filter string) (*chat.SearchMessagesResponse, error) {
		call := svc.Spaces.Messages.Search("spaces/-", &chat.SearchMessagesRequest{Filter: filter})
		call.Header().Set(proxy.SubjectHeader, "alice@example.com")
		return call.Do()
	}
	res, err := search(`report AND space.name = "spaces/AAAA"`)
	if err != nil || len(res.Results) != 1 || res.Results[0].Message.Text != "quarterly report" {
		t.Fatalf("search in AAAA: %+v, %v; want the one report of AAAA", res, err)
	}
	if m := e.emu.Requests(); m[len(m)-1].MethodID != "spaces.messages.search" || chatapi.ScopeKey(m[len(m)-1].Scopes) != "chat.messages.readonly" {
		t.Errorf("Chat saw %s with %v, want messages.search with chat.messages.readonly", m[len(m)-1].MethodID, m[len(m)-1].Scopes)
	}

	before := len(e.emu.Requests())
	jsonCT := http.Header{"Content-Type": {"application/json"}, proxy.SubjectHeader: {"alice@example.com"}}
	gzipCT := jsonCT.Clone()
	gzipCT.Set("Content-Encoding", "gzip")
	bomb := gz(t, append(append([]byte(`{"filter": "space.name = \"spaces/AAAA\"", "pageToken": "`), bytes.Repeat([]byte("a"), 8<<20)...), `"}`...))
	for _, tc := range []struct {
		name       string
		path       string
		h          http.Header
		body       []byte
		wantStatus int
		wantReason string
	}{
		{"no space named", "/v1/spaces/-/messages:search", jsonCT, []byte(`{"filter": "report"}`), 403, "SPACE_NOT_ALLOWED"},
		{"another space", "/v1/spaces/-/messages:search", jsonCT, []byte(`{"filter": "report AND space.name = \"spaces/BBBB\""}`), 403, "SPACE_NOT_ALLOWED"},
		{"one allowed, one not", "/v1/spaces/-/messages:search", jsonCT, []byte(`{"filter": "(space.name = \"spaces/AAAA\" OR space.name = \"spaces/BBBB\")"}`), 403, "SPACE_NOT_ALLOWED"},
		{"OR around the space", "/v1/spaces/-/messages:search", jsonCT, []byte(`{"filter": "space.name = \"spaces/AAAA\" OR report"}`), 400, "FILTER_NOT_READABLE"},
		{"a space as parent", "/v1/spaces/AAAA/messages:search", jsonCT, []byte(`{"filter": "report"}`), 400, "SEARCH_PARENT_INVALID"},
		{"filter twice", "/v1/spaces/-/messages:search", jsonCT, []byte(`{"filter": "space.name = \"spaces/AAAA\"", "filter": "report"}`), 400, "BODY_UNREADABLE"},
		{"filter in other case", "/v1/spaces/-/messages:search", jsonCT, []byte(`{"Filter": "report", "filter": "space.name = \"spaces/AAAA\""}`), 400, "BODY_UNREADABLE"},
		{"gzip, another space", "/v1/spaces/-/messages:search", gzipCT, gz(t, []byte(`{"filter": "space.name = \"spaces/BBBB\""}`)), 403, "SPACE_NOT_ALLOWED"},
		{"gzip bomb", "/v1/spaces/-/messages:search", gzipCT, bomb, 413, "BODY_TOO_LARGE"},
		{"gzip header, plain body", "/v1/spaces/-/messages:search", gzipCT, []byte(`{"filter": "space.name = \"spaces/AAAA\""}`), 400, "BODY_UNREADABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, reason := post(t, e, "POST", tc.path, searcherSecret, tc.h, tc.body)
			if status != tc.wantStatus || reason != tc.wantReason {
				t.Errorf("%d %s %.300s; want %d %s", status, reason, body, tc.wantStatus, tc.wantReason)
			}
		})
	}
	if n := len(e.emu.Requests()) - before; n != 0 {
		t.Errorf("%d refused searches reached Chat", n)
	}

	// Gzip as Java sends it, naming the caller's space: Chat gets the
	// bytes as sent and answers.
	status, body, _ := post(t, e, "POST", "/v1/spaces/-/messages:search", searcherSecret, gzipCT,
		gz(t, []byte(`{"filter": "report space.name = \"spaces/AAAA\""}`)))
	if status != 200 || !strings.Contains(body, "quarterly report") || strings.Contains(body, "secret report") {
		t.Errorf("gzip search: %d %.300s; want AAAA's report only", status, body)
	}
}

// spaces.spaceEvents: the token carries one scope for each kind of event
// the filter asks for, so Chat accepts it; a kind the caller is granted
// no scope for is refused before Chat.
func TestSpaceEventScopesFollowTheFilter(t *testing.T) {
	e := fidelityEnv(t)
	svc := e.chatService(t, watcherSecret)
	const (
		msgCreated    = "google.workspace.chat.message.v1.created"
		memberCreated = "google.workspace.chat.membership.v1.created"
		spaceUpdated  = "google.workspace.chat.space.v1.updated"
	)
	for _, tc := range []struct {
		name, filter string
		wantScopes   string
	}{
		{"message events", `event_types:"` + msgCreated + `"`, "chat.app.messages.readonly"},
		{"membership events", `event_types:"` + memberCreated + `"`, "chat.app.memberships.readonly"},
		{"both", `event_types:"` + msgCreated + `" OR event_types:"` + memberCreated + `"`, "chat.app.memberships.readonly chat.app.messages.readonly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Spaces.SpaceEvents.List("spaces/AAAA").Filter(tc.filter).Do(); err != nil {
				t.Fatalf("list: %v", err)
			}
			reqs := e.emu.Requests()
			if got := chatapi.ScopeKey(reqs[len(reqs)-1].Scopes); got != tc.wantScopes {
				t.Errorf("token scopes %q, want %q", got, tc.wantScopes)
			}
		})
	}
	before := len(e.emu.Requests())
	_, err := svc.Spaces.SpaceEvents.List("spaces/AAAA").Filter(`event_types:"` + spaceUpdated + `"`).Do()
	if gerr := googleErr(t, err); gerr.Code != 403 || !strings.Contains(gerr.Body, "SCOPE_NOT_GRANTED") || !strings.Contains(gerr.Body, "space events") {
		t.Errorf("space events without a scope for them: %d %s, want 403 SCOPE_NOT_GRANTED naming space events", gerr.Code, gerr.Body)
	}
	_, err = svc.Spaces.SpaceEvents.List("spaces/AAAA").Filter(`event_types:"google.workspace.chat.thread.v1.created"`).Do()
	if gerr := googleErr(t, err); gerr.Code != 400 || !strings.Contains(gerr.Body, "FILTER_NOT_READABLE") {
		t.Errorf("an unknown event type: %d %s, want 400 FILTER_NOT_READABLE", gerr.Code, gerr.Body)
	}
	if n := len(e.emu.Requests()) - before; n != 0 {
		t.Errorf("%d refused calls reached Chat", n)
	}
}

// Admin access is a grant: a caller with adminAccess, acting as an
// administrator, gets a chat.admin.* scope with useAdminAccess=true;
// anyone else is refused before Chat, told why.
func TestAdminAccessIsAGrant(t *testing.T) {
	e := fidelityEnv(t)
	get := func(secret, subject string) (*chat.Space, error) {
		call := e.chatService(t, secret).Spaces.Get("spaces/AAAA").UseAdminAccess(true)
		call.Header().Set(proxy.SubjectHeader, subject)
		return call.Do()
	}
	if _, err := get(adminerSecret, "root@example.com"); err != nil {
		t.Fatalf("admin get: %v", err)
	}
	reqs := e.emu.Requests()
	last := reqs[len(reqs)-1]
	if chatapi.ScopeKey(last.Scopes) != "chat.admin.spaces.readonly" || last.Subject != "root@example.com" || !strings.Contains(last.RawQuery, "useAdminAccess=true") {
		t.Errorf("Chat saw %v as %q, query %q; want chat.admin.spaces.readonly as root with useAdminAccess=true", last.Scopes, last.Subject, last.RawQuery)
	}
	before := len(reqs)
	_, err := get(opsSecret, "alice@example.com")
	if gerr := googleErr(t, err); gerr.Code != 403 || !strings.Contains(gerr.Body, "ADMIN_ACCESS_NOT_GRANTED") || !strings.Contains(gerr.Body, "adminAccess: true") {
		t.Errorf("admin get without the grant: %d %s, want 403 ADMIN_ACCESS_NOT_GRANTED saying how to grant it", gerr.Code, gerr.Body)
	}
	for _, q := range []string{"useAdminAccess=yes", "useAdminAccess=true&useAdminAccess=true"} {
		status, body, reason := post(t, e, "GET", "/v1/spaces/AAAA?"+q, adminerSecret, http.Header{proxy.SubjectHeader: {"root@example.com"}}, nil)
		if status != 400 {
			t.Errorf("%s: %d %s %.200s, want 400", q, status, reason, body)
		}
	}
	status, _, reason := post(t, e, "GET", "/v1/spaces/AAAA/messages/M1?useAdminAccess=true", adminerSecret, http.Header{proxy.SubjectHeader: {"root@example.com"}}, nil)
	if status != 400 || reason != "PARAMETER_NOT_ALLOWED" {
		t.Errorf("useAdminAccess on messages.get: %d %s, want 400 PARAMETER_NOT_ALLOWED", status, reason)
	}
	if n := len(e.emu.Requests()) - before; n != 0 {
		t.Errorf("%d refused calls reached Chat", n)
	}
}

// A rule may prefer a wider scope it grants (chat.app.messages.readonly
// sees what chat.bot hides); without one, the narrowest wins.
func TestRulePrefersAScope(t *testing.T) {
	e := fidelityEnv(t)
	bot := e.chatService(t, watcherSecret)
	_, err := bot.Spaces.Messages.Get("spaces/AAAA/messages/none").Do()
	reqs := e.emu.Requests()
	if last := reqs[len(reqs)-1]; chatapi.ScopeKey(last.Scopes) != "chat.bot" {
		t.Errorf("no preference: %v (%v), want chat.bot", last.Scopes, err)
	}
	_, err = e.chatService(t, adminerSecret).Spaces.Messages.Get("spaces/BBBB/messages/none").Do()
	reqs = e.emu.Requests()
	if last := reqs[len(reqs)-1]; chatapi.ScopeKey(last.Scopes) != "chat.app.messages.readonly" {
		t.Errorf("prefer chat.app.messages.readonly: %v (%v)", last.Scopes, err)
	}
}

// A resumable upload goes through the broker from start to end: the
// session URL comes back pointing at the broker, the bytes stream through
// it (the Go client sends 20 MiB in a 16 MiB and a 4 MiB chunk), Chat sees
// only the broker's token, and no other caller can use the session.
func TestResumableUploadThroughTheBroker(t *testing.T) {
	e := fidelityEnv(t)
	svc := e.chatService(t, posterSecret)
	data := bytes.Repeat([]byte("chat-broker/0123"), (20<<20)/16)
	sum := sha256.Sum256(data)
	call := svc.Media.Upload("spaces/AAAA", &chat.UploadAttachmentRequest{Filename: "big.bin"}).
		Media(bytes.NewReader(data), googleapi.ContentType("application/octet-stream"))
	call.Header().Set(proxy.SubjectHeader, "alice@example.com")
	if _, err := call.Do(); err != nil {
		t.Fatalf("upload: %v", err)
	}
	ups := e.emu.Uploads()
	if len(ups) != 1 || ups[0].Protocol != "resumable" || ups[0].Chunks != 2 || ups[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("uploads %+v, want one resumable upload of 2 chunks with the data's hash", ups)
	}
	for _, r := range e.emu.Requests() {
		if r.MethodID == "media.upload" && (!strings.HasPrefix(r.Authorization, "Bearer ya29.") || r.Subject != "alice@example.com") {
			t.Errorf("%s %s reached Chat with %q as %q, want the broker's token for alice", r.Verb, r.Path, r.Authorization, r.Subject)
		}
	}

	// Start one by hand to see the session URL, then try it as others.
	h := http.Header{"Content-Type": {"application/json"}, proxy.SubjectHeader: {"alice@example.com"}}
	req, _ := http.NewRequest("POST", e.url+"/upload/v1/spaces/AAAA/attachments:upload?uploadType=resumable", strings.NewReader(`{"filename":"f"}`))
	req.Header = h.Clone()
	req.Header.Set("Authorization", "Bearer "+posterSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 200 || !strings.HasPrefix(loc, e.url+"/upload/v1/spaces/AAAA/attachments:upload?") || !strings.Contains(loc, "upload_id=") {
		t.Fatalf("start: %d Location %q, want the broker's own upload URL with an upload_id", resp.StatusCode, loc)
	}
	path := strings.TrimPrefix(loc, e.url)
	before := len(e.emu.Requests())
	chunk := http.Header{"Content-Range": {"bytes 0-2/3"}, "Content-Type": {"application/octet-stream"}}
	for _, tc := range []struct {
		name, secret, subject, path string
	}{
		{"another caller", searcherSecret, "alice@example.com", path},
		{"another subject", posterSecret, "bob@example.com", path},
		{"another space", posterSecret, "alice@example.com", strings.Replace(path, "spaces/AAAA", "spaces/BBBB", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hh := chunk.Clone()
			hh.Set(proxy.SubjectHeader, tc.subject)
			status, body, reason := post(t, e, "PUT", tc.path, tc.secret, hh, []byte("abc"))
			if status != 404 && status != 403 {
				t.Errorf("%d %s %.200s, want a refusal", status, reason, body)
			}
		})
	}
	if n := len(e.emu.Requests()) - before; n != 0 {
		t.Errorf("%d continuations by others reached Chat", n)
	}
	// The starter finishes it with a PUT, as Java and Python send bytes.
	hh := chunk.Clone()
	hh.Set(proxy.SubjectHeader, "alice@example.com")
	if status, body, _ := post(t, e, "PUT", path, posterSecret, hh, []byte("abc")); status != 200 || !strings.Contains(body, "attachmentDataRef") {
		t.Errorf("finish by PUT: %d %.200s", status, body)
	}
	// The session is over: it cannot be written again.
	if status, _, reason := post(t, e, "PUT", path, posterSecret, hh, []byte("abc")); status != 404 || reason != "UPLOAD_SESSION_UNKNOWN" {
		t.Errorf("a finished session again: %d %s, want 404 UPLOAD_SESSION_UNKNOWN", status, reason)
	}
}
