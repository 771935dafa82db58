package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/testenv"
)

// The main flows run with a known key, caller secret and Google tokens,
// and every log line, audit record, response body and header, admin page
// and error string is scanned for them: zero occurrences.
func TestSecretsNeverLeak(t *testing.T) {
	emu, emuURL := testenv.Emulator(t, emulator.Config{Spaces: []string{"spaces/AAAA"}})
	dir := t.TempDir()
	keyFile := testenv.KeyFile(t, emu, emuURL, dir)
	keyJSON := emu.ServiceAccountJSON(emuURL + "/token")

	const secret = "leak-test-secret-0123456789abcdef"
	policyFile := writePolicy(t, dir, secretPolicy("app", secret, "spaces.messages.create, spaces.messages.list", "spaces/AAAA", "chat.bot, chat.app.messages.readonly"))
	stdout, stderr, stop := start(t, "serve", "--key", keyFile, "--policy", policyFile, "--upstream", emuURL, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	m := stderr.waitFor(t, regexp.MustCompile(`"msg":"serving","listen":"([^"]+)","admin":"([^"]+)"`))
	base, admin := "http://"+m[1], "http://"+m[2]

	var seen strings.Builder // everything a caller or an operator can see
	record := func(resp *http.Response, err error) {
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Header.Write(&seen)
		seen.Write(b)
	}
	call := func(verb, path, auth, body string) {
		req, _ := http.NewRequest(verb, base+path, strings.NewReader(body))
		if body == "" {
			req.Body = http.NoBody
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		record(http.DefaultClient.Do(req))
	}
	get := func(url string) { record(http.Get(url)) }

	call("POST", "/v1/spaces/AAAA/messages", "Bearer "+secret, `{"text":"hello"}`)     // allowed
	call("GET", "/v1/spaces/AAAA/messages", "Bearer "+secret, "")                      // Chat's approval 403, with a hint
	call("POST", "/v1/spaces/BBBB/messages", "Bearer "+secret, `{"text":"x"}`)         // policy deny
	call("GET", "/v1/spaces/AAAA/messages?access_token="+secret, "Bearer "+secret, "") // hygiene refusal
	call("GET", "/v1/spaces/AAAA/messages", "Bearer "+secret+"x", "")                  // unknown caller
	call("GET", "/v1/spaces/AAAA/messages", "Basic "+secret, "")                       // malformed credential
	emu.SetTokenEndpointDown(true)
	call("POST", "/v1/spaces/AAAA/messages", "Bearer "+secret, `{"text":"hello"}`) // cached token: fine
	emu.SetTokenEndpointDown(false)
	get(admin + "/metrics")
	get(admin + "/approvals")
	get(admin + "/readyz")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Startup errors name the key file but never its contents.
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, strings.Replace(string(keyJSON), `"service_account"`, `"authorized_user"`, 1))
	startErr := run(t.Context(), []string{"serve", "--key", bad, "--policy", policyFile}, nil, io.Discard, io.Discard)
	if startErr == nil {
		t.Fatal("serve accepted a key of the wrong type")
	}
	seen.WriteString(startErr.Error())

	var tokens []string
	for _, r := range emu.Requests() {
		tokens = append(tokens, strings.TrimPrefix(r.Authorization, "Bearer "))
	}
	if len(tokens) < 2 {
		t.Fatalf("only %d calls reached the emulator; the test exercised too little", len(tokens))
	}
	var key struct {
		PrivateKey string `json:"private_key"`
	}
	json.Unmarshal(keyJSON, &key)
	pemBody := strings.Join(strings.Split(key.PrivateKey, "\n")[1:4], "") // a stretch of the key itself

	everything := seen.String() + drain(stdout) + drain(stderr)
	if !strings.Contains(everything, `"caller":"app"`) || !strings.Contains(everything, chatapi.MsgAdminApproval) {
		t.Fatalf("the scan saw too little to mean anything: %.500s", everything)
	}
	for what, s := range map[string]string{"caller secret": secret, "private key": pemBody, "PEM header": "PRIVATE KEY"} {
		if strings.Contains(everything, s) {
			t.Errorf("the %s appears in output", what)
		}
	}
	for _, tok := range tokens {
		if strings.Contains(everything, tok) {
			t.Errorf("a Google access token appears in output")
		}
	}
}

// drain returns everything a command wrote so far.
func drain(l *lines) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}
