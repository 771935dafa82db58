package emulator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

func TestAdminApprovals(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	if status, out := v.admin(t, "GET", "/emulator/approvals", ""); status != 200 || fmt.Sprint(out["approved"]) != "[]" {
		t.Fatalf("GET approvals: %d %v, want 200 []", status, out)
	}
	creator := v.chat(t, chatapi.ScopeAppSpacesCreate)
	create := func(name string) error {
		_, err := creator.Spaces.Create(&chat.Space{DisplayName: name, SpaceType: "SPACE", Customer: "customers/my_customer"}).Do()
		return err
	}
	wantAPIError(t, "spaces.create before approval", create("one"), 403, chatapi.MsgAdminApproval)

	status, out := v.admin(t, "POST", "/emulator/approvals", `{"scope":"chat.app.spaces.create","approved":true}`)
	if status != 200 || fmt.Sprint(out["approved"]) != "[chat.app.spaces.create]" {
		t.Fatalf("approve: %d %v", status, out)
	}
	if err := create("two"); err != nil {
		t.Errorf("spaces.create after approval: %v", err)
	}
	// The scope URL form works too.
	if status, out := v.admin(t, "POST", "/emulator/approvals", `{"scope":"`+chatapi.ScopeAppSpacesCreate.URL()+`","approved":false}`); status != 200 || fmt.Sprint(out["approved"]) != "[]" {
		t.Fatalf("unapprove: %d %v", status, out)
	}
	wantAPIError(t, "spaces.create after unapproval", create("three"), 403, chatapi.MsgAdminApproval)
}

// Every control endpoint refuses a body it cannot use with 400
// INVALID_ARGUMENT and changes nothing.
func TestAdminRefusesBadBodies(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	for _, tc := range []struct{ name, path, body string }{
		{"approval of chat.bot", "/emulator/approvals", `{"scope":"chat.bot","approved":true}`},
		{"approval of an unknown scope", "/emulator/approvals", `{"scope":"chat.app.nope","approved":true}`},
		{"approval without approved", "/emulator/approvals", `{"scope":"chat.app.spaces"}`},
		{"approval with an unknown field", "/emulator/approvals", `{"scope":"chat.app.spaces","approved":true,"extra":1}`},
		{"approval, truncated JSON", "/emulator/approvals", `{"scope":`},
		{"approval, no body", "/emulator/approvals", ``},
		{"delegation without enabled", "/emulator/delegation", `{"user":"alice"}`},
		{"delegation of a non-email", "/emulator/delegation", `{"user":"not an email","enabled":true}`},
		{"space name with a slash", "/emulator/spaces", `{"name":"spaces/a/b","appIsMember":true}`},
		{"fault status 400", "/emulator/faults", `{"method":"spaces.messages.create","status":400}`},
		{"fault for an unknown method", "/emulator/faults", `{"method":"spaces.nope","status":503}`},
		{"fault times negative", "/emulator/faults", `{"status":503,"times":-1}`},
		{"fault fraction above 1", "/emulator/faults", `{"status":503,"fraction":1.5}`},
		{"fault fraction negative", "/emulator/faults", `{"status":503,"fraction":-1}`},
		{"fault latency negative", "/emulator/faults", `{"status":503,"latencyMs":-1}`},
		{"fault status with reset", "/emulator/faults", `{"status":503,"reset":true}`},
		{"fault status 0 alone", "/emulator/faults", `{"status":0}`},
		{"fault, empty", "/emulator/faults", `{}`},
		{"fault space name with a slash", "/emulator/faults", `{"status":503,"spaces":["spaces/a/b"]}`},
		{"fault spaces not a list", "/emulator/faults", `{"status":503,"spaces":"AAAA"}`},
		{"fault with left, which is output only", "/emulator/faults", `{"status":503,"left":1}`},
		{"fault with an unknown field", "/emulator/faults", `{"status":503,"latency":1}`},
		{"token lifetime negative", "/emulator/token-lifetime", `{"seconds":-1}`},
		{"token error without status", "/emulator/token-error", `{}`},
		{"token error status 200", "/emulator/token-error", `{"status":200,"error":"x"}`},
		{"token error with an unknown field", "/emulator/token-error", `{"status":400,"code":"x"}`},
		{"seed without seed", "/emulator/seed", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := v.admin(t, "POST", tc.path, tc.body)
			e, _ := out["error"].(map[string]any)
			if status != 400 || e == nil || e["status"] != "INVALID_ARGUMENT" {
				t.Errorf("POST %s %s: %d %v, want 400 INVALID_ARGUMENT", tc.path, tc.body, status, out)
			}
		})
	}
	if n := len(v.emu.Faults()); n != 0 {
		t.Errorf("%d faults after refused requests, want none", n)
	}
}

func TestAdminDelegation(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	v.wantNoDWD(t, "alice@example.com")
	status, out := v.admin(t, "POST", "/emulator/delegation", `{"user":"alice@example.com","enabled":true}`)
	if status != 200 || out["allUsers"] != false || fmt.Sprint(out["users"]) != "[alice@example.com]" {
		t.Fatalf("delegate alice: %d %v", status, out)
	}
	if _, err := v.tokenSource(t, "alice@example.com", chatapi.ScopeMessagesReactionsCreate).Token(); err != nil {
		t.Errorf("alice: %v", err)
	}
	v.wantNoDWD(t, "bob@example.com")

	if status, out := v.admin(t, "POST", "/emulator/delegation", `{"enabled":true}`); status != 200 || out["allUsers"] != true {
		t.Fatalf("delegate everyone: %d %v", status, out)
	}
	if _, err := v.tokenSource(t, "bob@example.com", chatapi.ScopeMessagesReactionsCreate).Token(); err != nil {
		t.Errorf("bob with everyone delegated: %v", err)
	}
	if status, out := v.admin(t, "POST", "/emulator/delegation", `{"enabled":false}`); status != 200 || out["allUsers"] != false || fmt.Sprint(out["users"]) != "[]" {
		t.Fatalf("delegation off: %d %v", status, out)
	}
	v.wantNoDWD(t, "alice@example.com")
	if status, _ := v.admin(t, "GET", "/emulator/delegation", ""); status != 200 {
		t.Errorf("GET delegation: %d", status)
	}
}

func TestAdminSpacesAndFaults(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	bot := v.chat(t, chatapi.ScopeBot)
	post := func() error {
		_, err := bot.Spaces.Messages.Create("spaces/NEW", &chat.Message{Text: "x"}).Do()
		return err
	}
	wantAPIError(t, "unknown space", post(), 404, "Requested entity was not found.")
	if status, out := v.admin(t, "POST", "/emulator/spaces", `{"name":"spaces/NEW","appIsMember":false}`); status != 200 || out["name"] != "spaces/NEW" {
		t.Fatalf("add space: %d %v", status, out)
	}
	wantAPIError(t, "space without the app", post(), 403, chatapi.MsgNotPermitted)
	v.admin(t, "POST", "/emulator/spaces", `{"name":"NEW","appIsMember":true}`)
	if err := post(); err != nil {
		t.Errorf("after the app joined: %v", err)
	}
	if status, out := v.admin(t, "GET", "/emulator/spaces", ""); status != 200 || fmt.Sprint(out["spaces"]) != "[map[appIsMember:true name:spaces/NEW]]" {
		t.Errorf("GET spaces: %d %v", status, out)
	}

	// A fault for one method, used up after one request.
	status, out := v.admin(t, "POST", "/emulator/faults", `{"method":"spaces.messages.create","status":503,"retryAfterSeconds":0,"times":1}`)
	if status != 200 || len(out["faults"].([]any)) != 1 {
		t.Fatalf("inject fault: %d %v", status, out)
	}
	wantAPIError(t, "faulted create", post(), 503, "The service is currently unavailable.")
	if err := post(); err != nil {
		t.Errorf("after the fault was used up: %v", err)
	}
	// A fault for every method, until cleared.
	v.admin(t, "POST", "/emulator/faults", `{"status":429,"retryAfterSeconds":2}`)
	tok := v.token(t, "", chatapi.ScopeBot)
	if status, h, _ := v.do(t, "GET", "/v1/spaces/NEW", tok, "", ""); status != 429 || h.Get("Retry-After") != "2" {
		t.Errorf("every-method fault: %d Retry-After %q", status, h.Get("Retry-After"))
	}
	if status, out := v.admin(t, "DELETE", "/emulator/faults", ""); status != 200 || fmt.Sprint(out["faults"]) != "[]" {
		t.Errorf("clear faults: %d %v", status, out)
	}
	if status, _, _ := v.do(t, "GET", "/v1/spaces/NEW", tok, "", ""); status != 200 {
		t.Errorf("after clearing: %d", status)
	}
}

func TestAdminTokenEndpoint(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	if status, out := v.admin(t, "POST", "/emulator/token-endpoint", `{"down":true}`); status != 200 || out["down"] != true {
		t.Fatalf("down: %d %v", status, out)
	}
	if status, body := v.mintError(t, "", chatapi.ScopeBot); status != 503 || body["error"] != "temporarily_unavailable" {
		t.Errorf("mint while down: %d %v", status, body)
	}
	v.admin(t, "POST", "/emulator/token-endpoint", `{"down":false}`)

	if status, out := v.admin(t, "POST", "/emulator/token-lifetime", `{"seconds":600}`); status != 200 || out["seconds"] != float64(600) {
		t.Fatalf("lifetime: %d %v", status, out)
	}
	tok, err := v.tokenSource(t, "", chatapi.ScopeBot).Token()
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("token expires in %v, want about 10m", d)
	}
}

func TestAdminLogs(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)
	v.do(t, "POST", "/v1/spaces/AAAA/messages?requestId=r1", tok, "application/json", `{"text":"x"}`)
	// A token in the query is a credential too; it must not be echoed.
	v.do(t, "GET", "/v1/spaces/AAAA?access_token="+tok+"&prettyPrint=false", "", "", "")

	status, _, raw := v.do(t, "GET", "/emulator/requests", "", "", "")
	if status != 200 || strings.Contains(string(raw), tok) || strings.Contains(strings.ToLower(string(raw)), "authorization") {
		t.Fatalf("GET requests: %d %s (must not hold the token)", status, raw)
	}
	_, out := v.admin(t, "GET", "/emulator/requests", "")
	reqs := out["requests"].([]any)
	if len(reqs) != 2 {
		t.Fatalf("requests = %v, want 2", reqs)
	}
	first := reqs[0].(map[string]any)
	if first["methodId"] != "spaces.messages.create" || first["verb"] != "POST" || first["path"] != "/v1/spaces/AAAA/messages" ||
		first["query"] != "requestId=r1" || fmt.Sprint(first["scopes"]) != "[chat.bot]" || first["status"] != float64(200) {
		t.Errorf("first request = %v", first)
	}
	if _, err := time.Parse(time.RFC3339Nano, first["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
	if q := reqs[1].(map[string]any)["query"]; q != "access_token=REDACTED&prettyPrint=false" {
		t.Errorf("second request's query = %v", q)
	}
	if status, out := v.admin(t, "DELETE", "/emulator/requests", ""); status != 200 || fmt.Sprint(out["requests"]) != "[]" || len(v.emu.Requests()) != 0 {
		t.Errorf("DELETE requests: %d %v", status, out)
	}

	_, out = v.admin(t, "GET", "/emulator/mints", "")
	mints := out["mints"].([]any)
	if len(mints) != 1 || fmt.Sprint(mints[0].(map[string]any)["scopes"]) != "[chat.bot]" || mints[0].(map[string]any)["audience"] != v.tokenURL {
		t.Errorf("mints = %v", mints)
	}
}

func TestAdminRouting(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	status, h, body := v.do(t, "PUT", "/emulator/faults", "", "application/json", `{}`)
	if e, _ := chatapi.ParseError(body); status != 405 || h.Get("Allow") != "DELETE, GET, POST" || e == nil {
		t.Errorf("PUT faults: %d Allow %q %s", status, h.Get("Allow"), body)
	}
	status, _, body = v.do(t, "GET", "/emulator/nothing", "", "", "")
	if e, _ := chatapi.ParseError(body); status != 404 || e == nil || e.Status != "NOT_FOUND" {
		t.Errorf("unknown control path: %d %s", status, body)
	}
	// Control requests are not Chat requests.
	if n := len(v.emu.Requests()); n != 0 {
		t.Errorf("%d control requests in the Chat request log", n)
	}
}
