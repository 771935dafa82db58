package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"google.golang.org/api/chat/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/testenv"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

const (
	keylessSecret = "keyless-secret-0123456789abcdefgh"
	keylessUser   = "alice@example.com"
)

// keylessPolicy lets one caller create and list messages in spaces/AAAA
// as the app (chat.bot, chat.app.messages.readonly) and list them as two
// users (domain-wide delegation).
var keylessPolicy = `version: 1
callers:
  - name: app
    identify: {secretSHA256: "` + policy.HashSecret(keylessSecret) + `"}
    allow:
      - methods: [spaces.messages.create, spaces.messages.list]
        spaces: [spaces/AAAA]
    scopes: [chat.bot, chat.app.messages.readonly, chat.messages.readonly]
    subjects: [alice@example.com, bob@example.com]
`

// keylessServe is an emulator on a real socket (token endpoint, Chat,
// IAM Credentials and the metadata server) and serve in front of it with
// --impersonate and no key, whose Application Default Credentials find
// the emulator's metadata server through GCE_METADATA_HOST.
type keylessServe struct {
	emu               *emulator.Emulator
	emuURL            string
	base, admin       string
	stdout, stderr    *lines
	stop              func() error
	chat, chatAsAlice *chat.Service
	chatAsBob         *chat.Service
	seen              strings.Builder // bodies and pages callers and operators see
}

func startKeyless(t *testing.T, before func(*emulator.Emulator)) *keylessServe {
	t.Helper()
	return startKeylessWith(t, keylessPolicy, before)
}

func startKeylessWith(t *testing.T, policyText string, before func(*emulator.Emulator)) *keylessServe {
	t.Helper()
	emu, err := emulator.New(emulator.Config{
		Spaces:         []string{"spaces/AAAA"},
		Approved:       []chatapi.Scope{chatapi.ScopeAppMessagesReadonly},
		DelegatedUsers: []string{keylessUser, "bob@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(emu)
	}
	emuURL := testenv.Serve(t, emu)
	testenv.MetadataOnly(t, emuURL)

	policyFile := writePolicy(t, t.TempDir(), policyText)
	stdout, stderr, stop := start(t, "serve", "--impersonate", emu.ClientEmail(), "--iam-endpoint", emuURL, "--token-endpoint", emuURL+"/token",
		"--policy", policyFile, "--upstream", emuURL, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	m := stderr.waitFor(t, regexp.MustCompile(`"msg":"serving","listen":"([^"]+)","admin":"([^"]+)"`))
	k := &keylessServe{emu: emu, emuURL: emuURL, base: "http://" + m[1], admin: "http://" + m[2], stdout: stdout, stderr: stderr, stop: stop}
	// The official Go client, pointed at the broker, with the caller's
	// secret as its token; a subject rides in the broker's header.
	client := func(subject string) *chat.Service {
		hc := oauth2.NewClient(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: keylessSecret}))
		if subject != "" {
			hc.Transport = subjectTransport{subject, hc.Transport}
		}
		svc, err := chat.NewService(context.Background(), option.WithEndpoint(k.base+"/"), option.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	k.chat, k.chatAsAlice, k.chatAsBob = client(""), client(keylessUser), client("bob@example.com")
	return k
}

type subjectTransport struct {
	subject string
	base    http.RoundTripper
}

func (s subjectTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(proxy.SubjectHeader, s.subject)
	return s.base.RoundTrip(r)
}

// get fetches an admin page and keeps what it showed.
func (k *keylessServe) get(t *testing.T, path string) (int, string) {
	t.Helper()
	code, body := fetch(t, k.admin+path)
	k.seen.WriteString(body)
	return code, body
}

// lastVia is how the emulator issued its latest token.
func (k *keylessServe) lastVia() string {
	m := k.emu.Mints()
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1].Via
}

// apiErr returns the status and body of a failed client call, and keeps
// the body.
func (k *keylessServe) apiErr(t *testing.T, err error) (int, string) {
	t.Helper()
	var g *googleapi.Error
	if !errors.As(err, &g) {
		t.Fatalf("got %v, want a Google API error", err)
	}
	k.seen.WriteString(g.Body)
	return g.Code, g.Body
}

// Keyless, through the official Go client and serve: chat.bot, a
// chat.app.* scope and delegation each come from the IAM path they must,
// /readyz turns ready with the first mint, and a token-creator grant
// withdrawn later shows as the clear error in the 503 body and the log.
func TestKeylessServe(t *testing.T) {
	k := startKeyless(t, nil)
	tests := []struct {
		desc    string
		call    func() error
		wantVia string
	}{
		{"chat.bot", func() error {
			_, err := k.chat.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "keyless hello"}).Do()
			return err
		}, "generateAccessToken"},
		{"chat.app.messages.readonly", func() error {
			_, err := k.chat.Spaces.Messages.List("spaces/AAAA").Do()
			return err
		}, "generateAccessToken"},
		{"delegation", func() error {
			_, err := k.chatAsAlice.Spaces.Messages.List("spaces/AAAA").Do()
			return err
		}, "signJwt"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatalf("call through the keyless broker: %v", err)
			}
			if got := k.lastVia(); got != tc.wantVia {
				t.Errorf("the token came via %q, want %q", got, tc.wantVia)
			}
			for _, r := range k.emu.Requests() {
				if strings.Contains(r.Authorization, keylessSecret) {
					t.Fatal("the caller's secret reached Chat")
				}
			}
		})
	}
	if code, body := k.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s after keyless mints, want 200", code, body)
	}

	// The grant withdrawn: cached tokens still serve; a token not yet
	// minted (bob's) is refused with the fix.
	k.emu.SetTokenCreator(false)
	if _, err := k.chat.Spaces.Messages.List("spaces/AAAA").Do(); err != nil {
		t.Errorf("a cached token after the grant was withdrawn: %v", err)
	}
	_, err := k.chatAsBob.Spaces.Messages.List("spaces/AAAA").Do()
	code, body := k.apiErr(t, err)
	for _, want := range []string{"TOKEN_UNAVAILABLE", "signJwt refused for domain-wide delegation", "lacks roles/iam.serviceAccountTokenCreator", "gcloud iam service-accounts add-iam-policy-binding"} {
		if code != http.StatusServiceUnavailable || !strings.Contains(body, want) {
			t.Errorf("bob's call: %d %s\nwant 503 with %q", code, body, want)
		}
	}
	k.stderr.waitFor(t, regexp.MustCompile(`signJwt refused for domain-wide delegation`))
	k.checkNoSecrets(t)
}

// With the grant missing from the start, the first call is a 503 whose
// body names the role and the gcloud command, /readyz is not ready with
// the same line, and nothing mints until the grant is back.
func TestKeylessServeGrantMissing(t *testing.T) {
	k := startKeyless(t, func(emu *emulator.Emulator) { emu.SetTokenCreator(false) })
	_, err := k.chat.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "x"}).Do()
	code, body := k.apiErr(t, err)
	const fix = "lacks roles/iam.serviceAccountTokenCreator on chat-app@chat-broker-emulator.iam.gserviceaccount.com: gcloud iam service-accounts add-iam-policy-binding chat-app@chat-broker-emulator.iam.gserviceaccount.com --role=roles/iam.serviceAccountTokenCreator --member=serviceAccount:chat-broker@chat-broker-emulator.iam.gserviceaccount.com"
	if code != http.StatusServiceUnavailable || !strings.Contains(body, fix) {
		t.Errorf("create: %d %s\nwant 503 with %q", code, body, fix)
	}
	if code, body := k.get(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, fix) || strings.Count(strings.TrimSpace(body), "\n") != 0 {
		t.Errorf("/readyz = %d %q, want 503, one line, with %q", code, body, fix)
	}
	k.stderr.waitFor(t, regexp.MustCompile(`lacks roles/iam.serviceAccountTokenCreator`))
	if n := len(k.emu.Mints()); n != 0 {
		t.Errorf("%d tokens minted without the grant", n)
	}
	k.checkNoSecrets(t)
}

// checkNoSecrets stops serve and scans everything it wrote and served:
// no token the emulator issued (Chat's or the broker's own, all ya29.),
// no signed JWT, no key material, no caller secret.
func (k *keylessServe) checkNoSecrets(t *testing.T) {
	t.Helper()
	k.get(t, "/metrics")
	k.get(t, "/readyz")
	if err := k.stop(); err != nil {
		t.Fatal(err)
	}
	var key struct {
		PrivateKey string `json:"private_key"`
	}
	json.Unmarshal(k.emu.ServiceAccountJSON(""), &key)
	everything := k.seen.String() + drain(k.stdout) + drain(k.stderr)
	if !strings.Contains(everything, "chat_broker_token_mints_total") {
		t.Fatalf("the scan saw too little to mean anything: %.300s", everything)
	}
	for what, s := range map[string]string{
		"a Google token": "ya29.", "a JWT": "eyJ", "PEM": "PRIVATE KEY",
		"the app's key": strings.Split(key.PrivateKey, "\n")[1], "the caller secret": keylessSecret,
	} {
		if strings.Contains(everything, s) {
			t.Errorf("%s appears in what serve wrote or served", what)
		}
	}
	var tokens []string
	for _, r := range k.emu.Requests() {
		tokens = append(tokens, strings.TrimPrefix(r.Authorization, "Bearer "))
	}
	for _, tok := range tokens {
		if tok != "" && strings.Contains(everything, tok) {
			t.Error("a Google access token appears in what serve wrote or served")
		}
	}
}

// The keyless demo: no key, its own identity from the emulated metadata
// server; the printed curl call goes through.
func TestDemoKeyless(t *testing.T) {
	t.Setenv("GCE_METADATA_HOST", "") // restored after; the demo sets its own
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	out, _, stop := start(t, "demo", "--keyless", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	out.waitFor(t, regexp.MustCompile(`it mints with no key: its own identity from the emulated metadata server`))
	base := out.waitFor(t, exportURL)[1]
	secret := out.waitFor(t, exportToken)[1]
	req, _ := http.NewRequest("POST", base+"/v1/spaces/DEMO/messages", strings.NewReader(`{"text":"Hello, keyless!"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Hello, keyless!") {
		t.Fatalf("keyless demo create: %d %s", resp.StatusCode, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("demo exited with %v, want nil", err)
	}
}

// With a policy of delegated users only, keyless /readyz still waits for
// a first keyless mint (of a chat.bot token it then drops), and says why
// it is not ready when that fails.
func TestKeylessReadyzDelegationOnly(t *testing.T) {
	delegationOnly := `version: 1
callers:
  - name: app
    identify: {secretSHA256: "` + policy.HashSecret(keylessSecret) + `"}
    allow:
      - methods: [spaces.messages.list]
        spaces: [spaces/AAAA]
    scopes: [chat.messages.readonly]
    subjects: [alice@example.com]
`
	// Granted: ready once the self-test's keyless mint succeeds.
	ok := startKeylessWith(t, delegationOnly, nil)
	if err := run(t.Context(), []string{"wait", "--admin", strings.TrimPrefix(ok.admin, "http://"), "--timeout", "20s"}, strings.NewReader(""), io.Discard, io.Discard); err != nil {
		t.Fatalf("chat-broker wait: %v", err)
	}
	if m := ok.emu.Mints(); len(m) != 1 || m[0].Via != "generateAccessToken" {
		t.Errorf("mints = %+v, want the self-test's one, via generateAccessToken", m)
	}
	ok.checkNoSecrets(t)

	// Not granted: not ready, and /readyz says why.
	k := startKeylessWith(t, delegationOnly, func(emu *emulator.Emulator) { emu.SetTokenCreator(false) })
	k.stderr.waitFor(t, regexp.MustCompile(`"msg":"startup token mint failed; retrying"`))
	if code, body := k.get(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "lacks roles/iam.serviceAccountTokenCreator") {
		t.Errorf("/readyz = %d %q, want 503 with the missing grant", code, body)
	}
	k.checkNoSecrets(t)
}

// Brokers share limits by their app's project: the key's, or keyless,
// the one in the service account's email, never one bucket for every
// keyless app.
func TestAppProject(t *testing.T) {
	for _, tc := range []struct {
		key         *broker.Key
		impersonate string
		want        string
	}{
		{&broker.Key{ProjectID: "from-key"}, "", "from-key"},
		{nil, "chat-app@my-project.iam.gserviceaccount.com", "my-project"},
		{nil, "my-project@appspot.gserviceaccount.com", "my-project@appspot.gserviceaccount.com"},
		{nil, "odd@.iam.gserviceaccount.com", "odd@.iam.gserviceaccount.com"},
	} {
		if got := appProject(tc.key, tc.impersonate); got != tc.want {
			t.Errorf("appProject(%v, %q) = %q, want %q", tc.key, tc.impersonate, got, tc.want)
		}
	}
}
