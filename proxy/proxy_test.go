package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	chat "google.golang.org/api/chat/v1"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/testenv"
	"github.com/chat-broker/chat-broker/internal/testlog"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

const (
	notifierSecret = "notifier-secret-0123456789abcdef"
	readerSecret   = "reader-secret-0123456789abcdef00"
	opsSecret      = "ops-secret-0123456789abcdef00000"
	unknownSecret  = "nobody-secret-0123456789abcdef00"
)

// callerEntry is one entry of a test policy's callers: identified by the
// hash of secret, allowed methods in spaces by one rule, with scopes; each
// of more is a further field of the caller (limits, subjects).
func callerEntry(name, secret, methods, spaces, scopes string, more ...string) string {
	s := fmt.Sprintf("  - name: %s\n    identify: {secretSHA256: %q}\n    allow:\n      - methods: %s\n        spaces: %s\n    scopes: %s\n",
		name, policy.HashSecret(secret), methods, spaces, scopes)
	for _, m := range more {
		s += "    " + m + "\n"
	}
	return s
}

// policyOf is a version 1 policy of these callers, each a callerEntry.
func policyOf(callers ...string) string {
	return "version: 1\ncallers:\n" + strings.Join(callers, "")
}

// opsCaller may call every method in every space.
var opsCaller = callerEntry("ops", opsSecret, `["*"]`, `["*"]`, "[chat.bot]")

var testPolicy = policyOf(
	callerEntry("notifier", notifierSecret, "[spaces.messages.create, spaces.messages.get, spaces.messages.list]", "[spaces/AAAA]", "[chat.bot, chat.app.messages.readonly]"),
	callerEntry("reader", readerSecret, "[spaces.get, spaces.messages.get]", `["*"]`, "[chat.bot]"),
	opsCaller,
)

// env is a real broker in front of a real emulator, both on loopback
// sockets.
type env struct {
	emu    *emulator.Emulator
	broker *broker.Broker
	proxy  *proxy.Proxy
	policy *policy.Policy
	url    string // the broker's proxy listener
	logs   *testlog.Buffer
	up     *url.URL // the emulator
}

// withProxy returns a copy of e with another proxy (opts changing its
// configuration) in front of the same emulator and broker, so subtests
// that need their own proxy do not each generate an emulator key.
func (e *env) withProxy(t *testing.T, opts ...func(*proxy.Config)) *env {
	t.Helper()
	logger := e.logs.Logger()
	cp := *e
	cp.proxy, cp.url = serveProxy(t, proxy.Config{Upstream: e.up, Policy: policy.NewStore(e.policy), Tokens: e.broker.Source(), Audit: logger, Logger: logger}, opts...)
	return &cp
}

// serveProxy serves the proxy cfg describes, opts applied to cfg first,
// on a loopback listener, and returns it with its URL.
func serveProxy(t testing.TB, cfg proxy.Config, opts ...func(*proxy.Config)) (*proxy.Proxy, string) {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	px, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	return px, srv.URL
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, emulator.Config{
		Spaces:   []string{"spaces/AAAA", "spaces/BBBB"},
		Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly},
	}, testPolicy)
}

// newEnvWith is newEnv with a chosen emulator configuration and policy;
// opts change the proxy's configuration.
func newEnvWith(t *testing.T, cfg emulator.Config, policyText string, opts ...func(*proxy.Config)) *env {
	t.Helper()
	logs := &testlog.Buffer{}
	g := testenv.Start(t, cfg, logs.Logger())
	pol, err := policy.Parse("policy.yaml", []byte(policyText))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{emu: g.Emu, broker: g.Broker, policy: pol, logs: logs, up: g.URL}
	return e.withProxy(t, opts...)
}

func (e *env) chatService(t *testing.T, secret string) *chat.Service {
	t.Helper()
	svc, err := chat.NewService(context.Background(),
		option.WithEndpoint(e.url+"/"),
		option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: secret})))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// The official Go client, changed only in endpoint and credential, posts,
// reads back and lists a message through the broker; the emulator sees
// the broker's tokens with the narrowest scope per method, never the
// caller's secret.
func TestOfficialGoClient(t *testing.T) {
	e := newEnv(t)
	svc := e.chatService(t, notifierSecret)

	created, err := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "Hello, world!"}).Do()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Text != "Hello, world!" || !strings.HasPrefix(created.Name, "spaces/AAAA/messages/") {
		t.Fatalf("create returned %+v", created)
	}
	got, err := svc.Spaces.Messages.Get(created.Name).Do()
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Name != created.Name || got.Text != "Hello, world!" {
		t.Errorf("get = %q %q, want %q %q", got.Name, got.Text, created.Name, "Hello, world!")
	}
	list, err := svc.Spaces.Messages.List("spaces/AAAA").Do()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Messages) != 1 || list.Messages[0].Name != created.Name {
		t.Errorf("list = %+v, want the one message %s", list.Messages, created.Name)
	}

	wantScopes := map[string]string{
		"spaces.messages.create": "chat.bot",
		"spaces.messages.get":    "chat.bot",
		"spaces.messages.list":   "chat.app.messages.readonly",
	}
	reqs := e.emu.Requests()
	if len(reqs) != 3 {
		t.Fatalf("emulator saw %d requests, want 3: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if strings.Contains(r.Authorization, notifierSecret) {
			t.Errorf("%s: the caller's secret reached Google", r.MethodID)
		}
		if !strings.HasPrefix(r.Authorization, "Bearer ") || len(r.Authorization) < len("Bearer ")+10 {
			t.Errorf("%s: Authorization = %q, want the broker's token", r.MethodID, r.Authorization)
		}
		if got := chatapi.ScopeKey(r.Scopes); got != wantScopes[r.MethodID] {
			t.Errorf("%s carried scopes %q, want %q", r.MethodID, got, wantScopes[r.MethodID])
		}
	}
	if n := len(e.emu.Mints()); n != 2 {
		t.Errorf("%d mints, want 2 (one per scope set)", n)
	}
}

// A denial explains itself through the client library's error type.
func TestDenialThroughGoClient(t *testing.T) {
	e := newEnv(t)
	svc := e.chatService(t, notifierSecret)
	_, err := svc.Spaces.Messages.Create("spaces/BBBB", &chat.Message{Text: "hi"}).Do()
	if err == nil {
		t.Fatal("create in spaces/BBBB succeeded; the policy allows only spaces/AAAA")
	}
	for _, want := range []string{"403", "SPACE_NOT_ALLOWED", "spaces/BBBB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("a denied call reached the emulator (%d requests)", n)
	}
}

type rawCase struct {
	desc       string
	verb, path string
	header     http.Header
	body       string
	wantStatus int
	wantReason string
}

func bearer(secret string) http.Header {
	return http.Header{"Authorization": {"Bearer " + secret}}
}

func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// Requests the broker must refuse never reach the emulator, and each
// refusal is in Google's error shape with the broker's reason.
func TestRefusalsNeverReachUpstream(t *testing.T) {
	e := newEnv(t)
	ok := bearer(notifierSecret)
	jsonBody := with(ok, "Content-Type", "application/json")
	for _, tc := range []rawCase{
		{"wrong space", "POST", "/v1/spaces/BBBB/messages", jsonBody, `{"text":"x"}`, 403, "SPACE_NOT_ALLOWED"},
		{"wrong method", "DELETE", "/v1/spaces/AAAA/messages/M1", ok, "", 403, "METHOD_NOT_ALLOWED"},
		{"method without a space needs spaces *", "GET", "/v1/spaces", ok, "", 403, "METHOD_NOT_ALLOWED"},
		{"method not listed", "POST", "/v1/spaces/AAAA/messages/M1/reactions", bearer(readerSecret), `{}`, 403, "METHOD_NOT_ALLOWED"},
		{"user-only method without a subject", "POST", "/v1/spaces/AAAA/messagePins", with(bearer(opsSecret), "Content-Type", "application/json"), `{}`, 403, "USER_AUTH_REQUIRED"},
		{"no granted scope serves the method", "GET", "/v1/spaces/AAAA/messages", bearer(opsSecret), "", 403, "SCOPE_NOT_GRANTED"},
		{"unknown caller", "POST", "/v1/spaces/AAAA/messages", bearer(unknownSecret), `{"text":"x"}`, 401, "CALLER_UNKNOWN"},
		{"no credential", "GET", "/v1/spaces/AAAA/messages", nil, "", 401, "CALLER_CREDENTIAL_MISSING"},
		{"basic auth", "GET", "/v1/spaces/AAAA/messages", http.Header{"Authorization": {"Basic bm90aWZpZXI6eA=="}}, "", 401, "CALLER_CREDENTIAL_MALFORMED"},
		{"two Authorization headers", "GET", "/v1/spaces/AAAA/messages", with(ok, "Authorization", "Bearer "+readerSecret), "", 400, "CREDENTIAL_NOT_ALLOWED"},
		{"unknown path", "GET", "/v1/spaces/AAAA/nothing", ok, "", 404, "UNKNOWN_METHOD"},
		{"batch", "POST", "/batch", jsonBody, `{}`, 404, "UNKNOWN_METHOD"},
		{"wrong verb", "PUT", "/v1/spaces/AAAA/messages", jsonBody, `{}`, 405, "VERB_NOT_ALLOWED"},
		{"access_token in query", "GET", "/v1/spaces/AAAA/messages?access_token=ya29.x", ok, "", 400, "PARAMETER_NOT_ALLOWED"},
		{"API key in query", "GET", "/v1/spaces/AAAA/messages?key=AIza", ok, "", 400, "PARAMETER_NOT_ALLOWED"},
		{"$ct override", "POST", "/v1/spaces/AAAA/messages?$ct=application/x-protobuf", jsonBody, `{}`, 400, "PARAMETER_NOT_ALLOWED"},
		{"alt=proto", "GET", "/v1/spaces/AAAA/messages?alt=proto", ok, "", 400, "PARAMETER_NOT_ALLOWED"},
		{"alt=media outside media", "GET", "/v1/spaces/AAAA/messages/M1?alt=media", ok, "", 400, "PARAMETER_NOT_ALLOWED"},
		{"repeated requestId", "POST", "/v1/spaces/AAAA/messages?requestId=a&requestId=b", jsonBody, `{}`, 400, "PARAMETER_REPEATED"},
		{"method override", "POST", "/v1/spaces/AAAA/messages", with(jsonBody, "X-HTTP-Method-Override", "DELETE"), `{}`, 400, "METHOD_OVERRIDE_NOT_ALLOWED"},
		{"API key header", "GET", "/v1/spaces/AAAA/messages", with(ok, "X-Goog-Api-Key", "AIza"), "", 400, "CREDENTIAL_NOT_ALLOWED"},
		{"cookie", "GET", "/v1/spaces/AAAA/messages", with(ok, "Cookie", "SID=x"), "", 400, "CREDENTIAL_NOT_ALLOWED"},
		{"forwarded", "GET", "/v1/spaces/AAAA/messages", with(ok, "X-Forwarded-For", "10.0.0.1"), "", 400, "FORWARDING_HEADER_NOT_ALLOWED"},
		{"grpc", "POST", "/v1/spaces/AAAA/messages", with(ok, "Content-Type", "application/grpc"), "x", 415, "CONTENT_TYPE_NOT_ALLOWED"},
		{"form body", "POST", "/v1/spaces/AAAA/messages", with(ok, "Content-Type", "application/x-www-form-urlencoded"), "text=x", 415, "CONTENT_TYPE_NOT_ALLOWED"},
		{"body on a GET", "GET", "/v1/spaces/AAAA/messages", jsonBody, `{}`, 400, "BODY_NOT_ALLOWED"},
		{"oversized body", "POST", "/v1/spaces/AAAA/messages", jsonBody, `{"text":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "BODY_TOO_LARGE"},
		{"encoded slash", "GET", "/v1/spaces/AAAA%2Fmessages", ok, "", 400, "PATH_NOT_CANONICAL"},
		{"dot segment", "GET", "/v1/spaces/AAAA/messages/..", ok, "", 400, "PATH_NOT_CANONICAL"},
		{"empty segment", "GET", "/v1/spaces//AAAA/messages", ok, "", 400, "PATH_NOT_CANONICAL"},
		{"trailing slash", "GET", "/v1/spaces/AAAA/messages/", ok, "", 400, "PATH_NOT_CANONICAL"},
		{"semicolon", "GET", "/v1/spaces/AAAA;x/messages", ok, "", 400, "PATH_NOT_CANONICAL"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req, err := http.NewRequest(tc.verb, e.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == "" {
				req.Body, req.ContentLength = http.NoBody, 0
			}
			if tc.header != nil {
				req.Header = tc.header
			}
			resp, body := roundTrip(t, req)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			gerr, ok := chatapi.ParseError(body)
			if !ok {
				t.Fatalf("body is not a Google error: %s", body)
			}
			info, _ := gerr.Info()
			if info.Domain != chatapi.DomainBroker || info.Reason != tc.wantReason {
				t.Errorf("ErrorInfo = %s/%s, want %s/%s (message %q)", info.Domain, info.Reason, chatapi.DomainBroker, tc.wantReason, gerr.Message)
			}
			if gerr.Status != chatapi.StatusName(tc.wantStatus) || gerr.Message == "" {
				t.Errorf("status name %q message %q", gerr.Status, gerr.Message)
			}
		})
	}
	if reqs := e.emu.Requests(); len(reqs) != 0 {
		t.Errorf("refused requests reached the emulator: %+v", reqs)
	}

	// The broker still serves a legitimate call afterwards.
	resp, err := doJSON(e.url, "POST", "/v1/spaces/AAAA/messages", notifierSecret, `{"text":"after"}`)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("legitimate call after refusals: %v %v", resp, err)
	}
}

// roundTrip sends req and reads the whole answer.
func roundTrip(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func doJSON(base, verb, path, secret, body string) (*http.Response, error) {
	req, err := http.NewRequest(verb, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// Google's Java client sends PATCH as POST with X-HTTP-Method-Override:
// PATCH. The broker decides on PATCH and sends Google a real PATCH, with
// no override header left.
func TestJavaPatchOverride(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("POST", e.url+"/v1/spaces/AAAA/messages/M1?updateMask=text", strings.NewReader(`{"text":"x"}`))
	req.Header.Set("Authorization", "Bearer "+opsSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-HTTP-Method-Override", "PATCH")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := e.emu.Requests()
	if len(reqs) != 1 || reqs[0].Verb != "PATCH" || reqs[0].MethodID != "spaces.messages.patch" {
		t.Fatalf("emulator saw %+v, want one PATCH spaces.messages.patch", reqs)
	}
	// The same shape from a caller not allowed to patch is denied as a patch.
	req, _ = http.NewRequest("POST", e.url+"/v1/spaces/AAAA/messages/M1?updateMask=text", strings.NewReader(`{"text":"x"}`))
	req.Header.Set("Authorization", "Bearer "+notifierSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-HTTP-Method-Override", "PATCH")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || len(e.emu.Requests()) != 1 {
		t.Errorf("patch by a caller without it: %d, want 403 and nothing forwarded", resp.StatusCode)
	}
}

// With no token to be had, the caller gets 503 with Retry-After and
// nothing reaches Chat.
func TestNoTokenIs503(t *testing.T) {
	e := newEnv(t)
	e.emu.SetTokenEndpointDown(true)
	req, _ := http.NewRequest("GET", e.url+"/v1/spaces/AAAA/messages/M1", nil)
	req.Header.Set("Authorization", "Bearer "+notifierSecret)
	resp, body := roundTrip(t, req)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d Retry-After %q, want 503 with Retry-After; body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if gerr, ok := chatapi.ParseError(body); !ok || !strings.Contains(gerr.Message, "token") {
		t.Errorf("body %s does not explain the missing token", body)
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d requests reached the Chat API without a token", n)
	}

	// The endpoint comes back: the next call goes through.
	e.emu.SetTokenEndpointDown(false)
	resp, err := doJSON(e.url, "POST", "/v1/spaces/AAAA/messages", notifierSecret, `{"text":"back"}`)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after recovery: %v %v", resp, err)
	}
}

// Chat's own errors pass through unchanged: here the app is not a member
// of spaces/CCCC, which the reader may address by policy.
func TestChatErrorsPassThrough(t *testing.T) {
	e := newEnv(t)
	e.emu.AddSpace("spaces/CCCC", false)
	svc := e.chatService(t, readerSecret)
	_, err := svc.Spaces.Get("spaces/CCCC").Do()
	if err == nil || !strings.Contains(err.Error(), chatapi.MsgNotPermitted) {
		t.Fatalf("get spaces/CCCC: err = %v, want Chat's %q", err, chatapi.MsgNotPermitted)
	}

	// An admin withdraws approval of chat.app.messages.readonly: the list
	// reaches Chat and Chat's approval 403 comes back unchanged.
	e.emu.Approve(chatapi.ScopeAppMessagesReadonly, false)
	_, err = e.chatService(t, notifierSecret).Spaces.Messages.List("spaces/AAAA").Do()
	if err == nil || !strings.Contains(err.Error(), chatapi.MsgAdminApproval) {
		t.Fatalf("list without approval: err = %v, want Chat's %q", err, chatapi.MsgAdminApproval)
	}
	reqs := e.emu.Requests()
	if last := reqs[len(reqs)-1]; last.MethodID != "spaces.messages.list" || last.Status != 403 {
		t.Errorf("emulator's last request = %s %d, want spaces.messages.list 403", last.MethodID, last.Status)
	}
}

// No caller secret or Google token appears in a log line, an audit record
// or a response.
func TestSecretsStaySecret(t *testing.T) {
	e := newEnv(t)
	svc := e.chatService(t, notifierSecret)
	var bodies bytes.Buffer
	m, err := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "s"}).Do()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&bodies, "%+v", m)
	_, err = svc.Spaces.Messages.Create("spaces/BBBB", &chat.Message{Text: "s"}).Do()
	fmt.Fprintf(&bodies, "%v", err)
	_, err = e.chatService(t, unknownSecret).Spaces.Messages.List("spaces/AAAA").Do()
	fmt.Fprintf(&bodies, "%v", err)

	var tokens []string
	for _, r := range e.emu.Requests() {
		tokens = append(tokens, strings.TrimPrefix(r.Authorization, "Bearer "))
	}
	if len(tokens) == 0 {
		t.Fatal("no request reached the emulator; nothing to check")
	}
	// Wait for all three audit records before scanning.
	e.logs.WaitFor(t, `"decision":"allow"`)
	e.logs.WaitFor(t, `"reason":"SPACE_NOT_ALLOWED"`)
	logs := e.logs.WaitFor(t, `"reason":"CALLER_UNKNOWN"`)
	for _, s := range append(tokens, notifierSecret, unknownSecret) {
		if strings.Contains(logs, s) {
			t.Errorf("a secret appears in the logs")
		}
		if strings.Contains(bodies.String(), s) {
			t.Errorf("a secret appears in a response")
		}
	}
}

// panicTokens fails the way a bug would: by panicking.
type panicTokens struct{}

func (panicTokens) Token(context.Context, string, []chatapi.Scope) (proxy.Token, error) {
	panic("token source bug")
}

// A call that panics inside the broker still leaves its audit record
// (status 500, reason INTERNAL) and the caller's connection is cut, as
// net/http does for a handler that panics.
func TestPanicIsAudited(t *testing.T) {
	var audit, logs, serverLog testlog.Buffer
	up, _ := url.Parse("http://127.0.0.1:1")
	px, err := proxy.New(proxy.Config{Upstream: up, Policy: policy.NewStore(mustParse(t, testPolicy)), Tokens: panicTokens{},
		Audit: slog.New(slog.NewJSONHandler(&audit, nil)), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(px)
	srv.Config.ErrorLog = log.New(&serverLog, "", 0) // net/http reports the panic here
	srv.Start()
	t.Cleanup(srv.Close)
	if resp, err := open(srv.URL, "GET", "/v1/spaces/AAAA/messages/M1", ""); err == nil {
		resp.Body.Close()
		t.Fatalf("the caller got %d; want its connection cut", resp.StatusCode)
	}
	rec := audit.WaitFor(t, `"msg":"call"`)
	for _, want := range []string{`"status":500`, `"reason":"INTERNAL"`, `"caller":"ops"`, `"method":"spaces.messages.get"`} {
		if !strings.Contains(rec, want) {
			t.Errorf("audit record lacks %s: %s", want, rec)
		}
	}
	if got := logs.WaitFor(t, "call failed in the broker"); strings.Contains(got, opsSecret) {
		t.Errorf("the log carries the caller's secret: %s", got)
	}
}
