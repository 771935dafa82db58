package emulator_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/chat/v1"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

const space = "spaces/AAAA"

func TestMessageLifecycle(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}})
	svc := v.chat(t, chatapi.ScopeBot, chatapi.ScopeAppMessagesReadonly)

	created, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "hello"}).Do()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(created.Name, space+"/messages/") || created.Text != "hello" ||
		created.Sender == nil || created.Sender.Name != "users/app" || created.Sender.Type != "BOT" ||
		created.Thread == nil || !strings.HasPrefix(created.Thread.Name, space+"/threads/") ||
		created.Space == nil || created.Space.Name != space {
		t.Errorf("created = %+v", created)
	}
	if _, err := time.Parse(time.RFC3339, created.CreateTime); err != nil {
		t.Errorf("createTime %q: %v", created.CreateTime, err)
	}

	got, err := svc.Spaces.Messages.Get(created.Name).Do()
	if err != nil || got.Text != "hello" || got.Name != created.Name {
		t.Fatalf("get = %+v, %v", got, err)
	}

	patched, err := svc.Spaces.Messages.Patch(created.Name, &chat.Message{Text: "edited"}).UpdateMask("text").Do()
	if err != nil || patched.Text != "edited" || patched.LastUpdateTime == "" {
		t.Fatalf("patch = %+v, %v", patched, err)
	}
	updated, err := svc.Spaces.Messages.Update(created.Name, &chat.Message{Text: "again"}).UpdateMask("text").Do()
	if err != nil || updated.Text != "again" {
		t.Fatalf("update = %+v, %v", updated, err)
	}
	_, err = svc.Spaces.Messages.Patch(created.Name, &chat.Message{Text: "x"}).Do()
	if g, e := apiError(t, err); g.Code != 400 || e.Status != "INVALID_ARGUMENT" {
		t.Errorf("patch without updateMask: %d %s", g.Code, e.Status)
	}

	list, err := svc.Spaces.Messages.List(space).Do()
	if err != nil || len(list.Messages) != 1 || list.Messages[0].Text != "again" {
		t.Fatalf("list = %+v, %v", list, err)
	}

	if _, err := svc.Spaces.Messages.Delete(created.Name).Do(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = svc.Spaces.Messages.Get(created.Name).Do()
	if g, e := apiError(t, err); g.Code != 404 || e.Status != "NOT_FOUND" {
		t.Errorf("get after delete: %d %s", g.Code, e.Status)
	}
	if n := len(v.emu.Messages(space)); n != 0 {
		t.Errorf("Messages() has %d after delete, want 0", n)
	}

	// The request log saw every call, with the token that authorized it.
	reqs := v.emu.Requests()
	var ids []string
	for _, r := range reqs {
		ids = append(ids, fmt.Sprintf("%s:%d", r.MethodID, r.Status))
		if !strings.HasPrefix(r.Authorization, "Bearer ya29.emu-") || len(r.Scopes) != 2 || r.Subject != "" {
			t.Errorf("request %+v: want the emulator's bearer token with 2 scopes", r)
		}
	}
	want := "spaces.messages.create:200 spaces.messages.get:200 spaces.messages.patch:200 spaces.messages.update:200 " +
		"spaces.messages.patch:400 spaces.messages.list:200 spaces.messages.delete:200 spaces.messages.get:404"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("request log:\n got %s\nwant %s", got, want)
	}
	v.emu.ResetRequests()
	if n := len(v.emu.Requests()); n != 0 {
		t.Errorf("after ResetRequests: %d requests", n)
	}
}

func TestMessageIdempotency(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	svc := v.chat(t, chatapi.ScopeBot)

	first, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "once"}).RequestId("req-1").Do()
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "twice"}).RequestId("req-1").Do()
	if err != nil {
		t.Fatal(err)
	}
	if again.Name != first.Name || again.Text != "once" {
		t.Errorf("repeat requestId: got %s %q, want %s %q", again.Name, again.Text, first.Name, "once")
	}
	msgs := v.emu.Messages(space)
	if len(msgs) != 1 || msgs[0].RequestID != "req-1" {
		t.Fatalf("Messages() = %+v, want one with RequestID req-1", msgs)
	}

	byClient, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "mine"}).MessageId("client-build-42").Do()
	if err != nil {
		t.Fatal(err)
	}
	if byClient.ClientAssignedMessageId != "client-build-42" {
		t.Errorf("clientAssignedMessageId = %q", byClient.ClientAssignedMessageId)
	}
	got, err := svc.Spaces.Messages.Get(space + "/messages/client-build-42").Do()
	if err != nil || got.Name != byClient.Name {
		t.Errorf("get by client id = %+v, %v", got, err)
	}
	_, err = svc.Spaces.Messages.Create(space, &chat.Message{Text: "dup"}).MessageId("client-build-42").Do()
	if g, e := apiError(t, err); g.Code != 409 || e.Status != "ALREADY_EXISTS" {
		t.Errorf("duplicate messageId: %d %s", g.Code, e.Status)
	}
	for _, tc := range []struct{ name, id string }{
		{"no client- prefix", "build-42"},
		{"upper case", "client-UPPER"},
		{"64 characters", "client-" + strings.Repeat("x", 57)},
		{"underscore", "client-a_b"},
	} {
		t.Run("messageId with "+tc.name, func(t *testing.T) {
			_, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "bad"}).MessageId(tc.id).Do()
			if g, _ := apiError(t, err); g.Code != 400 {
				t.Errorf("messageId %q: status %d, want 400", tc.id, g.Code)
			}
		})
	}

	// allowMissing creates a message under a client-assigned id.
	up, err := svc.Spaces.Messages.Patch(space+"/messages/client-upsert", &chat.Message{Text: "new"}).UpdateMask("text").AllowMissing(true).Do()
	if err != nil || up.ClientAssignedMessageId != "client-upsert" || up.Text != "new" {
		t.Errorf("allowMissing = %+v, %v", up, err)
	}
	if n := len(v.emu.Messages(space)); n != 3 {
		t.Errorf("Messages() has %d, want 3", n)
	}
}

func TestMessageThreads(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	svc := v.chat(t, chatapi.ScopeBot)
	root, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "root", Thread: &chat.Thread{ThreadKey: "build-7"}}).Do()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "reply", Thread: &chat.Thread{ThreadKey: "build-7"}}).
		MessageReplyOption("REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD").Do()
	if err != nil {
		t.Fatal(err)
	}
	if reply.Thread.Name != root.Thread.Name || !reply.ThreadReply {
		t.Errorf("reply thread %s (reply %v), want %s", reply.Thread.Name, reply.ThreadReply, root.Thread.Name)
	}
	_, err = svc.Spaces.Messages.Create(space, &chat.Message{Text: "x", Thread: &chat.Thread{Name: space + "/threads/nope"}}).
		MessageReplyOption("REPLY_MESSAGE_OR_FAIL").Do()
	if g, _ := apiError(t, err); g.Code != 404 {
		t.Errorf("reply to missing thread: %d, want 404", g.Code)
	}
	if msgs := v.emu.Messages(space); len(msgs) != 2 || msgs[1].Thread != root.Thread.Name {
		t.Errorf("Messages() = %+v, want the reply in the root's thread", msgs)
	}

	// REPLY_MESSAGE_OR_FAIL with a threadKey not used before starts that
	// thread; the next reply with the key lands in it.
	first, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "new", Thread: &chat.Thread{ThreadKey: "deploy-9"}}).
		MessageReplyOption("REPLY_MESSAGE_OR_FAIL").Do()
	if err != nil {
		t.Fatalf("REPLY_MESSAGE_OR_FAIL with a new threadKey: %v, want a new thread", err)
	}
	if first.Thread.Name == root.Thread.Name || first.ThreadReply || first.Thread.ThreadKey != "deploy-9" {
		t.Errorf("new threadKey: thread %s reply %v key %q, want a new thread keyed deploy-9", first.Thread.Name, first.ThreadReply, first.Thread.ThreadKey)
	}
	second, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "again", Thread: &chat.Thread{ThreadKey: "deploy-9"}}).
		MessageReplyOption("REPLY_MESSAGE_OR_FAIL").Do()
	if err != nil || second.Thread.Name != first.Thread.Name || !second.ThreadReply {
		t.Errorf("second reply with deploy-9: %v, want a reply in %s", err, first.Thread.Name)
	}
}

func TestMessagePaging(t *testing.T) {
	clock := newClock()
	v := newEnv(t, emulator.Config{Now: clock.Now, Spaces: []string{space}, Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}})
	svc := v.chat(t, chatapi.ScopeBot, chatapi.ScopeAppMessagesReadonly)
	created := postMessages(t, svc, 7, func(int) { clock.Advance(time.Second) })

	var pages []int
	var seen []string
	err := svc.Spaces.Messages.List(space).PageSize(3).Pages(context.Background(), func(r *chat.ListMessagesResponse) error {
		pages = append(pages, len(r.Messages))
		for _, m := range r.Messages {
			seen = append(seen, m.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pages) != "[3 3 1]" || strings.Join(seen, " ") != strings.Join(created, " ") {
		t.Errorf("pages %v, order %v; want [3 3 1] in creation order %v", pages, seen, created)
	}

	desc, err := svc.Spaces.Messages.List(space).OrderBy("createTime desc").PageSize(2).Do()
	if err != nil || len(desc.Messages) != 2 || desc.Messages[0].Name != created[6] || desc.NextPageToken == "" {
		t.Errorf("desc = %+v, %v", desc, err)
	}
	// created[2] was made at start+2s; strictly after means 4 remain.
	start := v.emu.Messages(space)[0].CreateTime
	since, err := svc.Spaces.Messages.List(space).Filter(fmt.Sprintf("create_time > %q", start.Add(2*time.Second).Format(time.RFC3339Nano))).Do()
	if err != nil || len(since.Messages) != 4 || since.Messages[0].Name != created[3] {
		t.Errorf("filtered = %d messages, %v", len(since.Messages), err)
	}
	_, err = svc.Spaces.Messages.List(space).PageToken("garbage").Do()
	if g, _ := apiError(t, err); g.Code != 400 {
		t.Errorf("bad page token: %d, want 400", g.Code)
	}
}

// The list filters the emulator takes, in Chat's syntax, including the
// forms Chat's reference shows with unquoted values, and its refusals.
func TestListFilters(t *testing.T) {
	clock := newClock()
	v := newEnv(t, emulator.Config{Now: clock.Now, Spaces: []string{space}, Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}})
	bot := v.chat(t, chatapi.ScopeBot)
	var msgs []*chat.Message
	for _, text := range []string{"first", "second", "third"} {
		m, err := bot.Spaces.Messages.Create(space, &chat.Message{Text: text}).Do()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		clock.Advance(time.Second)
	}
	thread, after := msgs[1].Thread.Name, msgs[0].CreateTime
	tok := v.token(t, "", chatapi.ScopeBot, chatapi.ScopeAppMessagesReadonly)
	messages, members, spaces := "/v1/"+space+"/messages", "/v1/"+space+"/members", "/v1/spaces"

	for _, tc := range []struct {
		name, path, filter string
		want               int    // items listed, when wantErr is ""
		wantErr            string // in the 400's message
	}{
		{"thread, unquoted as in Chat's reference", messages, `thread.name = ` + thread, 1, ""},
		{"thread, quoted", messages, `thread.name = "` + thread + `"`, 1, ""},
		{"time and unquoted thread", messages, `create_time > "` + after + `" AND thread.name = ` + thread, 1, ""},
		{"time, unquoted", messages, `createTime > ` + after, 2, ""},
		{"time range", messages, `create_time >= "` + after + `" AND create_time < "` + msgs[2].CreateTime + `"`, 2, ""},
		{"not a thread", messages, `thread.name != '` + thread + `'`, 2, ""},
		{"role", members, `role = "ROLE_MANAGER"`, 1, ""},
		{"ORs in parentheses", members, `(role = "ROLE_MANAGER" OR role = "ROLE_MEMBER") AND member.type = "HUMAN"`, 2, ""},
		{"member type, unquoted", members, `member.type != BOT`, 2, ""},
		{"space type", spaces, `spaceType = "SPACE"`, 1, ""},
		{"a field the list has no filter on", spaces, `displayName = "x"`, 0, `cannot filter on "displayName"`},
		{"has on a string field", members, `role : "ROLE_MANAGER"`, 0, "role takes only = and !="},
		{"has on a time field", messages, `create_time : "x"`, 0, "create_time takes a comparison, not :"},
		{"a time that is not RFC 3339", messages, `create_time > "yesterday"`, 0, "create_time needs an RFC 3339 time"},
		{"parentheses around an AND", members, `(role = "ROLE_MANAGER" AND member.type = "HUMAN") OR role = "ROLE_MEMBER"`, 0, "parentheses are supported only around a group of ORs"},
		{"an operand missing", members, `role = "ROLE_MANAGER" OR  OR role = "ROLE_MEMBER"`, 0, "an AND or OR is missing an operand"},
		{"no operator", members, `role`, 0, `cannot read "role" as FIELD OPERATOR VALUE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := v.do(t, "GET", tc.path+"?filter="+url.QueryEscape(tc.filter), tok, "", "")
			if tc.wantErr != "" {
				e, ok := chatapi.ParseError(body)
				if status != 400 || !ok || e.Status != "INVALID_ARGUMENT" || !strings.Contains(e.Message, tc.wantErr) {
					t.Errorf("%d %s, want 400 INVALID_ARGUMENT containing %q", status, body, tc.wantErr)
				}
				return
			}
			var page map[string][]json.RawMessage
			if err := json.Unmarshal(body, &page); status != 200 || err != nil {
				t.Fatalf("%d %s", status, body)
			}
			n := 0
			for k, items := range page {
				if k != "nextPageToken" {
					n += len(items)
				}
			}
			if n != tc.want {
				t.Errorf("%d items, want %d: %s", n, tc.want, body)
			}
		})
	}
}

func TestSpacesAndMembers(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Approved: []chatapi.Scope{chatapi.ScopeAppSpacesCreate}})
	v.emu.AddSpace("spaces/OTHER", false)
	creator := v.chat(t, chatapi.ScopeAppSpacesCreate)
	bot := v.chat(t, chatapi.ScopeBot)

	in := &chat.Space{DisplayName: "Release train", SpaceType: "SPACE", Customer: "customers/my_customer"}
	sp, err := creator.Spaces.Create(in).RequestId("setup-1").Do()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(sp.Name, "spaces/") || sp.DisplayName != "Release train" || sp.SpaceType != "SPACE" {
		t.Errorf("space = %+v", sp)
	}
	again, err := creator.Spaces.Create(in).RequestId("setup-1").Do()
	if err != nil || again.Name != sp.Name {
		t.Errorf("repeat requestId: %+v, %v; want %s", again, err, sp.Name)
	}
	_, err = creator.Spaces.Create(in).RequestId("setup-2").Do()
	if g, _ := apiError(t, err); g.Code != 409 {
		t.Errorf("same display name: %d, want 409", g.Code)
	}
	_, err = creator.Spaces.Create(&chat.Space{DisplayName: "No customer", SpaceType: "SPACE"}).Do()
	if g, _ := apiError(t, err); g.Code != 400 {
		t.Errorf("no customer: %d, want 400", g.Code)
	}

	list, err := bot.Spaces.List().Do()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list.Spaces {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, " "), space+" "+sp.Name; got != want {
		t.Errorf("spaces.list = %s, want %s (not spaces/OTHER)", got, want)
	}
	page, err := bot.Spaces.List().PageSize(1).Do()
	if err != nil || len(page.Spaces) != 1 || page.NextPageToken == "" {
		t.Errorf("paged spaces.list = %+v, %v", page, err)
	}

	got, err := bot.Spaces.Get(sp.Name).Do()
	if err != nil || got.DisplayName != "Release train" {
		t.Errorf("get = %+v, %v", got, err)
	}

	members, err := bot.Spaces.Members.List(sp.Name).Do()
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, m := range members.Memberships {
		rows = append(rows, m.Member.Type+" "+m.Name)
	}
	if len(rows) != 3 || rows[2] != "BOT "+sp.Name+"/members/app" || !strings.HasPrefix(rows[0], "HUMAN ") {
		t.Errorf("members = %v, want two humans and the app", rows)
	}
	humans, err := bot.Spaces.Members.List(sp.Name).Filter(`member.type = "HUMAN"`).Do()
	if err != nil || len(humans.Memberships) != 2 {
		t.Errorf("humans = %+v, %v", humans, err)
	}
	app, err := bot.Spaces.Members.Get(sp.Name + "/members/app").Do()
	if err != nil || app.Member.Name != "users/app" || app.State != "JOINED" {
		t.Errorf("members.get app = %+v, %v", app, err)
	}
}

func TestAuthErrors(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	v.emu.AddSpace("spaces/OTHER", false)
	ctx := context.Background()

	// No credentials at all.
	anon, err := chat.NewService(ctx, option.WithEndpoint(v.srv.URL+"/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.Spaces.Messages.Create(space, &chat.Message{Text: "x"}).Do()
	g, e := apiError(t, err)
	if g.Code != 401 || e.Message != chatapi.MsgCredentialsMissing || reason(e) != "CREDENTIALS_MISSING" ||
		g.Header.Get("WWW-Authenticate") != `Bearer realm="https://accounts.google.com/"` {
		t.Errorf("no token: %d %q %s %q", g.Code, e.Message, reason(e), g.Header.Get("WWW-Authenticate"))
	}
	if d, _ := e.Info(); d.Metadata["method"] != "google.chat.v1.ChatService.CreateMessage" || d.Metadata["service"] != "chat.googleapis.com" {
		t.Errorf("ErrorInfo metadata = %v", d.Metadata)
	}

	bot := v.chat(t, chatapi.ScopeBot)
	spacesOnly := v.chat(t, chatapi.ScopeAppSpaces)
	reader := v.chat(t, chatapi.ScopeAppMessagesReadonly)

	for _, tc := range []struct {
		desc       string
		call       func() error
		wantStatus int
		wantMsg    string
		wantReason string
	}{
		{"insufficient scope", func() error {
			_, err := spacesOnly.Spaces.Messages.Create(space, &chat.Message{Text: "x"}).Do()
			return err
		}, 403, chatapi.MsgInsufficientScopes, "ACCESS_TOKEN_SCOPE_INSUFFICIENT"},
		{"app scope not approved", func() error {
			_, err := reader.Spaces.Messages.List(space).Do()
			return err
		}, 403, chatapi.MsgAdminApproval, ""},
		{"app not a member", func() error {
			_, err := bot.Spaces.Messages.Create("spaces/OTHER", &chat.Message{Text: "x"}).Do()
			return err
		}, 403, chatapi.MsgNotPermitted, ""},
		{"unknown space", func() error {
			_, err := bot.Spaces.Messages.Create("spaces/NOPE", &chat.Message{Text: "x"}).Do()
			return err
		}, 404, "Requested entity was not found.", ""},
		{"user-only method", func() error {
			_, err := bot.Spaces.MessagePins.Create(space, &chat.MessagePin{}).Do()
			return err
		}, 403, chatapi.MsgUserAuthOnly, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, e := apiError(t, tc.call())
			if e.Code != tc.wantStatus || e.Message != tc.wantMsg || reason(e) != tc.wantReason {
				t.Errorf("got %d %q %q, want %d %q %q", e.Code, e.Message, reason(e), tc.wantStatus, tc.wantMsg, tc.wantReason)
			}
		})
	}

	// The insufficient-scope challenge names the accepted scopes.
	_, err = spacesOnly.Spaces.Messages.Create(space, &chat.Message{Text: "x"}).Do()
	g, _ = apiError(t, err)
	if h := g.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, chatapi.ScopeBot.URL()) {
		t.Errorf("WWW-Authenticate = %q", h)
	}

	// Approval takes effect for the token already held.
	v.emu.Approve(chatapi.ScopeAppMessagesReadonly, true)
	if _, err := reader.Spaces.Messages.List(space).Do(); err != nil {
		t.Errorf("after Approve: %v", err)
	}
	// An approved chat.app.* scope reads spaces the app is not in.
	if _, err := reader.Spaces.Messages.List("spaces/OTHER").Do(); err != nil {
		t.Errorf("approved scope outside membership: %v", err)
	}
	v.emu.AddSpace("spaces/OTHER", true)
	if _, err := bot.Spaces.Messages.Create("spaces/OTHER", &chat.Message{Text: "x"}).Do(); err != nil {
		t.Errorf("after the app joined: %v", err)
	}
}

func TestTokenValidity(t *testing.T) {
	clock := newClock()
	v := newEnv(t, emulator.Config{Now: clock.Now, TokenLifetime: 10 * time.Minute, Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)
	for _, tc := range []struct {
		desc       string
		auth       string // the Authorization header; "" sends none
		advance    time.Duration
		wantStatus int
		wantReason string
		wantChal   string
	}{
		{"valid", "Bearer " + tok, 0, 200, "", ""},
		{"unknown token", "Bearer ya29.not-issued", 0, 401, "", `Bearer realm="https://accounts.google.com/", error="invalid_token"`},
		{"not a bearer", "Basic dXNlcjpwYXNz", 0, 401, "", `Bearer realm="https://accounts.google.com/", error="invalid_token"`},
		{"missing", "", 0, 401, "CREDENTIALS_MISSING", `Bearer realm="https://accounts.google.com/"`},
		{"expired", "Bearer " + tok, 10 * time.Minute, 401, "ACCESS_TOKEN_EXPIRED", `Bearer realm="https://accounts.google.com/", error="invalid_token"`},
	} {
		// Rows run in order: the clock only moves forward.
		t.Run(tc.desc, func(t *testing.T) {
			clock.Advance(tc.advance)
			req, _ := http.NewRequest("GET", v.srv.URL+"/v1/"+space, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := v.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("WWW-Authenticate") != tc.wantChal {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.wantStatus, tc.wantChal)
			}
		})
	}
	last := v.emu.Requests()[len(v.emu.Requests())-1]
	if last.Status != 401 || last.Scopes != nil {
		t.Errorf("expired request logged as %+v, want 401 without scopes", last)
	}
}

// Raw requests: what the official client never sends.
func TestRequestHandling(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)
	long := strings.Repeat("a", 32001)
	for _, tc := range []struct {
		desc, verb, path, ct, body string
		wantStatus                 int
		wantStatusName, wantInMsg  string
	}{
		{"unknown path", "GET", "/v1/nothing", "", "", 404, "NOT_FOUND", "Method not found."},
		{"root", "GET", "/", "", "", 404, "NOT_FOUND", ""},
		{"wrong verb", "PUT", "/v1/spaces/AAAA/messages", "", "", 405, "UNIMPLEMENTED", ""},
		{"no content type", "POST", "/v1/spaces/AAAA/messages", "", `{"text":"x"}`, 400, "INVALID_ARGUMENT", "application/json"},
		{"form content type", "POST", "/v1/spaces/AAAA/messages", "application/x-www-form-urlencoded", `text=x`, 400, "INVALID_ARGUMENT", "application/json"},
		{"bad JSON", "POST", "/v1/spaces/AAAA/messages", "application/json", `{"text":`, 400, "INVALID_ARGUMENT", "Invalid JSON payload"},
		{"not an object", "POST", "/v1/spaces/AAAA/messages", "application/json", `["x"]`, 400, "INVALID_ARGUMENT", "Invalid JSON payload"},
		{"unknown field", "POST", "/v1/spaces/AAAA/messages", "application/json", `{"txt":"x"}`, 400, "INVALID_ARGUMENT", `Unknown name "txt"`},
		{"text not a string", "POST", "/v1/spaces/AAAA/messages", "application/json", `{"text":5}`, 400, "INVALID_ARGUMENT", "message.text"},
		{"empty message", "POST", "/v1/spaces/AAAA/messages", "application/json", `{}`, 400, "INVALID_ARGUMENT", "Message cannot be empty"},
		{"text too long", "POST", "/v1/spaces/AAAA/messages", "application/json", `{"text":"` + long + `"}`, 400, "INVALID_ARGUMENT", "32000"},
		{"body too large", "POST", "/v1/spaces/AAAA/messages", "application/json", `{"text":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "OUT_OF_RANGE", "exceeds"},
		{"bad messageReplyOption", "POST", "/v1/spaces/AAAA/messages?messageReplyOption=SOMETIMES", "application/json", `{"text":"x"}`, 400, "INVALID_ARGUMENT", "message_reply_option"},
		{"snake_case and cards are fine", "POST", "/v1/spaces/AAAA/messages", "application/json; charset=utf-8", `{"cards_v2":[{"cardId":"c"}]}`, 200, "", ""},
		{"bad filter", "GET", "/v1/spaces?filter=" + "displayName%20%3D%20%22x%22", "", "", 400, "INVALID_ARGUMENT", "cannot filter"},
		{"unimplemented", "GET", "/v1/spaces/AAAA/messages/m/attachments/a", "", "", 501, "UNIMPLEMENTED", "chat-broker emulator: spaces.messages.attachments.get is not implemented"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			status, h, body := v.do(t, tc.verb, tc.path, tok, tc.ct, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %.200s", status, tc.wantStatus, body)
			}
			if tc.wantStatus == 200 {
				if !strings.Contains(string(body), `"cardsV2":[{"cardId":"c"}]`) {
					t.Errorf("cards not echoed: %s", body)
				}
				return
			}
			e, ok := chatapi.ParseError(body)
			if !ok || e.Status != tc.wantStatusName || !strings.Contains(e.Message, tc.wantInMsg) {
				t.Errorf("got %s, want %s containing %q", body, tc.wantStatusName, tc.wantInMsg)
			}
			if tc.wantStatus == 405 && h.Get("Allow") != "GET, POST" {
				t.Errorf("Allow = %q, want GET, POST", h.Get("Allow"))
			}
		})
	}
	for _, r := range v.emu.Requests() {
		if r.Path == "/v1/nothing" && (r.MethodID != "" || r.Status != 404) {
			t.Errorf("unrouted request logged as %+v", r)
		}
	}
}

// Google accepts gzip request bodies (Content-Encoding: gzip, the Java
// client's default) and so does the emulator, which logs the encoding.
func TestGzipBodies(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	send := func(body string) (int, []byte) {
		req, _ := http.NewRequest("POST", v.srv.URL+"/v1/spaces/AAAA/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
		req.Header.Set("Content-Encoding", "gzip")
		status, _, b := v.roundTrip(t, req)
		return status, b
	}
	if status, body := send(gz(`{"text":"zipped"}`)); status != 200 || !strings.Contains(string(body), `"text":"zipped"`) {
		t.Fatalf("gzip body: %d %s", status, body)
	}
	if reqs := v.emu.Requests(); len(reqs) != 1 || reqs[0].ContentEncoding != "gzip" {
		t.Errorf("logged %+v, want one request with ContentEncoding gzip", reqs)
	}
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"plain body", `{"text":"x"}`, 400},
		{"expands past the limit", gz(`{"text":"` + strings.Repeat("a", 2<<20) + `"}`), 413},
	} {
		if status, body := send(tc.body); status != tc.want {
			t.Errorf("%s: %d %.200s, want %d", tc.name, status, body, tc.want)
		}
	}
	if msgs := v.emu.Messages(space); len(msgs) != 1 {
		t.Errorf("emulator holds %d messages, want the one", len(msgs))
	}
}

func TestFaultInjection(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 2})
	for i := range 3 {
		status, h, body := v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"x"}`)
		if i < 2 {
			e, _ := chatapi.ParseError(body)
			if status != 429 || h.Get("Retry-After") != "2" || e == nil || reason(e) != "RATE_LIMIT_EXCEEDED" {
				t.Errorf("try %d: %d Retry-After %q %s", i, status, h.Get("Retry-After"), body)
			}
			continue
		}
		if status != 200 {
			t.Errorf("try %d after the fault: %d %s", i, status, body)
		}
	}
	if n := len(v.emu.Messages(space)); n != 1 {
		t.Errorf("%d messages stored, want 1: a failed request changes nothing", n)
	}
	v.emu.InjectFault(emulator.Fault{Status: 503})
	if status, _, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", ""); status != 503 {
		t.Errorf("every-method fault: %d, want 503", status)
	}
	v.emu.ClearFaults()
	if status, _, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", ""); status != 200 {
		t.Errorf("after ClearFaults: %d, want 200", status)
	}
}

func TestUnimplementedAfterChecks(t *testing.T) {
	v := newEnv(t, emulator.Config{Delegation: true, Spaces: []string{space}})
	svc := v.chatAs(t, "alice@example.com", chatapi.ScopeCustomEmojisReadonly)
	_, err := svc.CustomEmojis.List().Do()
	if _, e := apiError(t, err); e.Code != 501 || e.Message != "chat-broker emulator: customEmojis.list is not implemented" {
		t.Errorf("got %d %q, want 501", e.Code, e.Message)
	}
	// The scope check comes first.
	_, err = svc.CustomEmojis.Create(&chat.CustomEmoji{EmojiName: ":x:"}).Do()
	if _, e := apiError(t, err); e.Code != 403 || e.Message != chatapi.MsgInsufficientScopes {
		t.Errorf("customEmojis.create without its scope: %d %q", e.Code, e.Message)
	}
}

// Many clients at once, under -race.
func TestConcurrentUse(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		svc := v.chat(t, chatapi.ScopeBot)
		wg.Go(func() {
			for i := range each {
				// Each message is sent twice with one requestId.
				for range 2 {
					if _, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: "x"}).RequestId(fmt.Sprintf("w%d-%d", w, i)).Do(); err != nil {
						errs <- err
					}
				}
				_ = v.emu.Requests()
				_ = v.emu.Mints()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(v.emu.Messages(space)); n != workers*each {
		t.Errorf("%d messages, want %d", n, workers*each)
	}
	if n := len(v.emu.Requests()); n != 2*workers*each {
		t.Errorf("%d requests logged, want %d", n, 2*workers*each)
	}
}
