package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/testlog"
)

const alice = "alice@example.com"

// keylessEnv is an emulator on a real socket, serving the metadata server
// the broker's Application Default Credentials find (GCE_METADATA_HOST),
// IAM Credentials and the token endpoint, on one fake clock with the
// broker.
type keylessEnv struct {
	emu   *emulator.Emulator
	srv   *httptest.Server
	clock *fakeclock.Clock
	logs  *testlog.Buffer
}

// newKeylessEnv starts the emulator and points Application Default
// Credentials at its metadata server: no key file, no gcloud file. The
// emulator and the brokers made by env.broker share a fake clock.
func newKeylessEnv(t testing.TB) *keylessEnv {
	return newKeylessEnvOn(t, fakeclock.NewAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
}

// newKeylessEnvOn is newKeylessEnv on clock; nil means real time.
func newKeylessEnvOn(t testing.TB, clock *fakeclock.Clock) *keylessEnv {
	t.Helper()
	cfg := emulator.Config{DelegatedUsers: []string{alice}, Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}}
	if clock != nil {
		cfg.Now = clock.Now
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir()) // no gcloud credentials file
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))
	return &keylessEnv{emu: emu, srv: srv, clock: clock, logs: &testlog.Buffer{}}
}

// broker returns a keyless broker against the emulator; edit may change
// its configuration first.
func (env *keylessEnv) broker(t testing.TB, edit func(*Config)) (*Broker, chan error) {
	t.Helper()
	cfg := Config{
		Impersonate: &Impersonation{
			ServiceAccount: env.emu.ClientEmail(),
			IAMEndpoint:    env.srv.URL,
			TokenEndpoint:  env.srv.URL + "/token",
		},
		Logger: env.logs.Logger(),
	}
	if env.clock != nil {
		cfg.Now, cfg.After = env.clock.Now, env.clock.After
	}
	return startTestBroker(t, cfg, edit)
}

// chatCall makes a Chat call with tok at the emulator and returns its
// status: the token is one Chat takes.
func (env *keylessEnv) chatCall(t *testing.T, tok Token, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+path, nil)
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Keyless, each kind of token comes from the IAM path it must: app
// authentication from generateAccessToken, delegation from an assertion
// signJwt signed, exchanged at the token endpoint; and each is a token
// the emulator's Chat API takes.
func TestKeylessMints(t *testing.T) {
	env := newKeylessEnv(t)
	env.emu.AddSpace("spaces/AAAA", true)
	b, _ := env.broker(t, nil)
	tests := []struct {
		desc    string
		subject string
		scopes  []chatapi.Scope
		path    string
		wantVia string
	}{
		{"chat.bot", "", bot, "/v1/spaces/AAAA", "generateAccessToken"},
		{"a chat.app scope", "", []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}, "/v1/spaces/AAAA/messages", "generateAccessToken"},
		{"delegation", alice, []chatapi.Scope{"chat.messages.readonly"}, "/v1/spaces/AAAA/messages", "signJwt"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			before := len(env.emu.Mints())
			tok, err := b.Token(context.Background(), tc.subject, tc.scopes)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			mints := env.emu.Mints()
			if len(mints) != before+1 {
				t.Fatalf("%d mints at the emulator, want 1", len(mints)-before)
			}
			m := mints[len(mints)-1]
			if m.Via != tc.wantVia || m.Subject != tc.subject || chatapi.ScopeKey(m.Scopes) != chatapi.ScopeKey(tc.scopes) {
				t.Errorf("mint = %+v, want via %s for %q with %v", m, tc.wantVia, tc.subject, tc.scopes)
			}
			if got, want := tok.Expiry, env.clock.Now().Add(time.Hour); !got.Equal(want) {
				t.Errorf("Expiry = %v, want %v", got, want)
			}
			if st := env.chatCall(t, tok, tc.path); st != http.StatusOK {
				t.Errorf("Chat answered %d to the token, want 200", st)
			}
			// A second call is a cache hit.
			if again, err := b.Token(context.Background(), tc.subject, tc.scopes); err != nil || header(again) != header(tok) {
				t.Errorf("second Token: %v, or another token; want the cached one", err)
			}
		})
	}
	if !b.Ready() || b.Health().Failing {
		t.Errorf("Ready = %v, Health = %+v; want ready and not failing", b.Ready(), b.Health())
	}
}

// The errors users meet keyless are each one line that names the fix,
// and say whether a retry can help.
func TestKeylessErrors(t *testing.T) {
	tests := []struct {
		desc      string
		setup     func(t *testing.T, env *keylessEnv, cfg *Config) // t is the subtest's
		subject   string
		scopes    []chatapi.Scope
		want      []string
		temporary bool
		failing   bool // Health().Failing: /readyz says so at once
	}{
		{
			desc:    "token creator withdrawn",
			setup:   func(t *testing.T, env *keylessEnv, _ *Config) { env.emu.SetTokenCreator(false) },
			scopes:  bot,
			want:    []string{"IAM Credentials generateAccessToken answered 403 IAM_PERMISSION_DENIED", "chat-broker@chat-broker-emulator.iam.gserviceaccount.com lacks roles/iam.serviceAccountTokenCreator on chat-app@", "gcloud iam service-accounts add-iam-policy-binding chat-app@chat-broker-emulator.iam.gserviceaccount.com --role=roles/iam.serviceAccountTokenCreator --member=serviceAccount:chat-broker@chat-broker-emulator.iam.gserviceaccount.com"},
			failing: true,
		},
		{
			desc:    "IAM Credentials API disabled",
			setup:   func(t *testing.T, env *keylessEnv, _ *Config) { env.emu.SetIAMCredentialsAPI(false) },
			scopes:  bot,
			want:    []string{"answered 403 SERVICE_DISABLED: the IAM Service Account Credentials API is not enabled in project ", "gcloud services enable iamcredentials.googleapis.com --project="},
			failing: true,
		},
		{
			desc:    "signJwt refused for delegation",
			setup:   func(t *testing.T, env *keylessEnv, _ *Config) { env.emu.SetTokenCreator(false) },
			subject: alice,
			scopes:  []chatapi.Scope{"chat.messages.readonly"},
			want:    []string{"as alice@example.com: IAM Credentials signJwt answered 403 IAM_PERMISSION_DENIED: signJwt refused for domain-wide delegation:", "lacks roles/iam.serviceAccountTokenCreator (iam.serviceAccounts.signJwt)"},
		},
		{
			desc: "no application default credentials",
			setup: func(t *testing.T, _ *keylessEnv, cfg *Config) {
				cfg.Impersonate.Credentials = func(context.Context) (*google.Credentials, error) {
					// x/oauth2/google's words when it finds nothing.
					return nil, errors.New("google: could not find default credentials. See https://cloud.google.com/docs/authentication/external/set-up-adc for more information")
				}
			},
			scopes:  bot,
			want:    []string{"broker: mint token for [chat.bot]: no application default credentials: on GKE turn on Workload Identity", "set GOOGLE_APPLICATION_CREDENTIALS", "gcloud auth application-default login"},
			failing: true,
		},
		{
			desc: "metadata server unreachable",
			setup: func(t *testing.T, env *keylessEnv, _ *Config) {
				t.Setenv("GCE_METADATA_HOST", closedAddr(t))
			},
			scopes:    bot,
			want:      []string{"broker: mint token for [chat.bot]: metadata server unreachable at 127.0.0.1:", "connection refused", "on GKE turn on Workload Identity for the cluster and the node pool"},
			temporary: true,
		},
		{
			desc:    "delegation not granted for the user",
			subject: "bob@example.com",
			scopes:  []chatapi.Scope{"chat.messages.readonly"},
			want:    []string{"token endpoint answered 401 unauthorized_client"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			env := newKeylessEnv(t)
			b, _ := env.broker(t, func(cfg *Config) {
				if tc.setup != nil {
					tc.setup(t, env, cfg)
				}
			})
			_, err := b.Token(context.Background(), tc.subject, tc.scopes)
			if err == nil {
				t.Fatal("Token succeeded, want an error")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("err = %s\nwant it to contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("err spans lines: %q", msg)
			}
			var me *MintError
			if !errors.As(err, &me) || me.Temporary() != tc.temporary {
				t.Errorf("err = %#v: want a MintError with Temporary() = %v", err, tc.temporary)
			}
			if _, ok := RetryAfter(err); ok != tc.temporary {
				t.Errorf("RetryAfter ok = %v, want %v", ok, tc.temporary)
			}
			if h := b.Health(); h.Failing != tc.failing || h.Ready {
				t.Errorf("Health: Failing = %v, Ready = %v; want Failing %v, not ready", h.Failing, h.Ready, tc.failing)
			}
			assertNoSecrets(t, env, msg, env.logs.String())
		})
	}
}

// A grant withdrawn after the first mint: the cached token is served to
// its end (an IAM change does not break callers at once), the refresh
// fails with the fix in the log, and once the grant is back the next
// refresh succeeds.
func TestKeylessGrantWithdrawnAndRestored(t *testing.T) {
	env := newKeylessEnv(t)
	b, done := env.broker(t, nil)
	ctx := context.Background()
	first, err := b.Token(ctx, "", bot)
	if err != nil {
		t.Fatal(err)
	}
	waitMint(t, b, done)
	env.emu.SetTokenCreator(false)

	env.clock.Move(40 * time.Minute) // past the refresh point (27–33 min)
	if tok, err := b.Token(ctx, "", bot); err != nil || header(tok) != header(first) {
		t.Fatalf("with the grant withdrawn: %v, or another token; want the cached one", err)
	}
	if err := waitMint(t, b, done); err == nil || !strings.Contains(err.Error(), "lacks roles/iam.serviceAccountTokenCreator") {
		t.Fatalf("background refresh: %v, want the missing grant", err)
	}
	if !strings.Contains(env.logs.String(), "lacks roles/iam.serviceAccountTokenCreator") {
		t.Error("the log does not say what is missing")
	}

	env.emu.SetTokenCreator(true)
	env.clock.Move(18 * time.Minute) // 2 min left: the last retry is due by now (cut to the time left)
	if _, err := b.Token(ctx, "", bot); err != nil {
		t.Fatal(err)
	}
	if err := waitMint(t, b, done); err != nil {
		t.Fatalf("refresh with the grant back: %v", err)
	}
	tok, _ := b.Token(ctx, "", bot)
	if header(tok) == header(first) || tok.Expiry.Sub(env.clock.Now()) != time.Hour {
		t.Errorf("after the grant is back: the old token, or expiry in %v; want a fresh hour", tok.Expiry.Sub(env.clock.Now()))
	}
	assertNoSecrets(t, env, env.logs.String())
}

// assertNoSecrets fails if any text carries a token (the emulator's all
// start ya29.), an assertion or a signed JWT (eyJ), or key material.
func assertNoSecrets(t *testing.T, env *keylessEnv, texts ...string) {
	t.Helper()
	var key struct {
		PrivateKey string `json:"private_key"`
	}
	json.Unmarshal(env.emu.ServiceAccountJSON(""), &key)
	body := strings.Split(key.PrivateKey, "\n")[1] // a line of the key's base64
	for _, s := range texts {
		for _, secret := range []string{"ya29.", "eyJ", "PRIVATE KEY", body} {
			if strings.Contains(s, secret) {
				t.Errorf("%q found in %q", secret, s)
			}
		}
	}
}

// closedAddr returns a loopback host:port nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestImpersonationConfig(t *testing.T) {
	tests := []struct {
		desc string
		cfg  Config
		want string
	}{
		{"key and impersonate", Config{Key: testKey(t, "https://oauth2.googleapis.com/token"), Impersonate: &Impersonation{ServiceAccount: "a@b"}},
			"broker: Config.Key and Config.Impersonate are exclusive: mint with a key, or keyless, not both"},
		{"no account", Config{Impersonate: &Impersonation{}},
			`broker: Impersonation.ServiceAccount "": want the Chat app's service-account email, like chat-app@PROJECT.iam.gserviceaccount.com`},
		{"bad endpoint", Config{Impersonate: &Impersonation{ServiceAccount: "a@b", IAMEndpoint: "iam.local"}},
			`broker: Impersonation.IAMEndpoint "iam.local": want an absolute http(s) URL`},
		{"lifetime too short", Config{Impersonate: &Impersonation{ServiceAccount: "a@b", Lifetime: 30 * time.Second}},
			"broker: Impersonation.Lifetime 30s: want between 1m and 12h (0 for 1h)"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
	b, err := New(Config{Impersonate: &Impersonation{ServiceAccount: "a@b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.SetKey(testKey(t, "https://oauth2.googleapis.com/token")); err == nil {
		t.Error("SetKey on a keyless broker succeeded")
	}
}

// The IAM errors the emulator does not produce: their text still names
// the fix, from the ErrorInfo Google sends.
func TestKeylessForeignIAMErrors(t *testing.T) {
	tests := []struct {
		desc   string
		status int
		body   string
		want   string
		temp   bool
	}{
		{"not found", 404, `{"error":{"code":404,"message":"Not found; Gaia id not found for email x@y","status":"NOT_FOUND"}}`,
			"IAM Credentials generateAccessToken answered 404 Not Found: no service account chat-app@p.iam.gserviceaccount.com: check --impersonate", false},
		{"unavailable", 503, `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}`,
			"IAM Credentials generateAccessToken answered 503 Service Unavailable", true},
		{"not JSON", 502, `<html>bad gateway</html>`, "IAM Credentials generateAccessToken answered 502 Bad Gateway", true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			iam := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer iam.Close()
			b, err := New(Config{Impersonate: &Impersonation{
				ServiceAccount: "chat-app@p.iam.gserviceaccount.com",
				IAMEndpoint:    iam.URL,
				Credentials: func(context.Context) (*google.Credentials, error) {
					return &google.Credentials{TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.own", TokenType: "Bearer"})}, nil
				},
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, err = b.Token(context.Background(), "", bot)
			var me *MintError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &me) || me.Temporary() != tc.temp {
				t.Errorf("err = %v\nwant it to contain %q, temporary %v", err, tc.want, tc.temp)
			}
			if err != nil && strings.Contains(err.Error(), "ya29.") {
				t.Errorf("err carries the broker's own token: %v", err)
			}
		})
	}
}
