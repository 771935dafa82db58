package emulator_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/chat/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
)

// newClock is a clock a test moves by hand, from the real time (the
// client libraries stamp what they sign with it).
func newClock() *fakeclock.Clock { return fakeclock.NewAt(time.Now()) }

// env is an emulator served on a real socket, with its key file.
type env struct {
	emu      *emulator.Emulator
	srv      *httptest.Server
	key      []byte
	tokenURL string
}

func newEnv(t *testing.T, cfg emulator.Config) *env {
	t.Helper()
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	tokenURL := srv.URL + "/token"
	return &env{emu: emu, srv: srv, key: emu.ServiceAccountJSON(tokenURL), tokenURL: tokenURL}
}

func scopeURLs(scopes []chatapi.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = s.URL()
	}
	return out
}

// tokenSource mints through x/oauth2, as the broker and Go users do.
func (v *env) tokenSource(t *testing.T, subject string, scopes ...chatapi.Scope) oauth2.TokenSource {
	t.Helper()
	cfg, err := google.JWTConfigFromJSON(v.key, scopeURLs(scopes)...)
	if err != nil {
		t.Fatalf("JWTConfigFromJSON: %v", err)
	}
	cfg.Subject = subject
	return cfg.TokenSource(context.Background())
}

// token mints one access token.
func (v *env) token(t *testing.T, subject string, scopes ...chatapi.Scope) string {
	t.Helper()
	tok, err := v.tokenSource(t, subject, scopes...).Token()
	if err != nil {
		t.Fatalf("mint %v: %v", scopes, err)
	}
	return tok.AccessToken
}

// chat returns the official Go client, authenticated with the given scopes.
func (v *env) chat(t *testing.T, scopes ...chatapi.Scope) *chat.Service {
	t.Helper()
	return v.chatAs(t, "", scopes...)
}

func (v *env) chatAs(t *testing.T, subject string, scopes ...chatapi.Scope) *chat.Service {
	t.Helper()
	svc, err := chat.NewService(context.Background(),
		option.WithEndpoint(v.srv.URL+"/"), option.WithTokenSource(v.tokenSource(t, subject, scopes...)))
	if err != nil {
		t.Fatalf("chat.NewService: %v", err)
	}
	return svc
}

// do sends a raw request; token "" sends no Authorization.
func (v *env) do(t *testing.T, verb, path, token, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(verb, v.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return v.roundTrip(t, req)
}

// roundTrip sends req to the emulator and reads the whole answer.
func (v *env) roundTrip(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	status, h, b, err := v.exchange(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return status, h, b
}

// exchange sends req to the emulator and reads the whole answer, or
// returns the error of a connection that gave none.
func (v *env) exchange(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := v.srv.Client().Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// keyParts reads the private key and key id back from the key file.
func (v *env) keyParts(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	var f struct {
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
	}
	if err := json.Unmarshal(v.key, &f); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(f.PrivateKey))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		t.Fatalf("private_key is not a PKCS#8 PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey), f.PrivateKeyID
}

// signJWT builds an RS256 JWT from header and claims.
func signJWT(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// postToken posts a form to /token and returns the status and JSON body.
func (v *env) postToken(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := v.srv.Client().PostForm(v.tokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

// apiError unwraps the Google error a client call returned.
func apiError(t *testing.T, err error) (*googleapi.Error, *chatapi.Error) {
	t.Helper()
	var g *googleapi.Error
	if !errors.As(err, &g) {
		t.Fatalf("got error %v, want a *googleapi.Error", err)
	}
	e, ok := chatapi.ParseError([]byte(g.Body))
	if !ok {
		t.Fatalf("error body is not Google's shape: %s", g.Body)
	}
	return g, e
}

func reason(e *chatapi.Error) string {
	d, _ := e.Info()
	return d.Reason
}

// admin calls the control API and decodes its JSON answer.
func (v *env) admin(t *testing.T, verb, path, body string) (int, map[string]any) {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	status, _, b := v.do(t, verb, path, "", ct, body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %s", verb, path, b)
	}
	return status, out
}

// wantAPIError checks that err is a Google error with this code and message.
func wantAPIError(t *testing.T, what string, err error, code int, msg string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %d %q", what, code, msg)
		return
	}
	g, e := apiError(t, err)
	if g.Code != code || e.Message != msg {
		t.Errorf("%s: got %d %q, want %d %q", what, g.Code, e.Message, code, msg)
	}
}

// mintError mints for subject and returns the token endpoint's refusal.
func (v *env) mintError(t *testing.T, subject string, scopes ...chatapi.Scope) (int, map[string]any) {
	t.Helper()
	_, err := v.tokenSource(t, subject, scopes...).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("mint for %q: got %v, want a RetrieveError", subject, err)
	}
	var body map[string]any
	if err := json.Unmarshal(re.Body, &body); err != nil {
		t.Fatalf("token error body is not JSON: %s", re.Body)
	}
	return re.Response.StatusCode, body
}

// postMessages posts n messages, "m0", "m1", …, to space through svc and
// returns their names; each, if not nil, runs after every message.
func postMessages(t *testing.T, svc *chat.Service, n int, each func(i int)) []string {
	t.Helper()
	var names []string
	for i := range n {
		m, err := svc.Spaces.Messages.Create(space, &chat.Message{Text: fmt.Sprint("m", i)}).Do()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
		if each != nil {
			each(i)
		}
	}
	return names
}
