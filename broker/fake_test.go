package broker

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/internal/fakeclock"
)

// Test key material, generated once per package run: 2048-bit RSA takes a
// noticeable moment under -race.
var (
	keyOnce   sync.Once
	testRSA   *rsa.PrivateKey
	testPKCS8 string // PEM
	testPKCS1 string // PEM
)

const testEmail = "chat-app@example-project.iam.gserviceaccount.com"
const testKeyID = "0123456789abcdef0123456789abcdef01234567"

func testPrivateKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		testRSA = k
		testPKCS8 = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		testPKCS1 = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	})
	return testRSA
}

// keyJSON returns a service-account key file for the test key, with
// fields overridden (a nil value deletes the field).
func keyJSON(t testing.TB, override map[string]any) []byte {
	t.Helper()
	testPrivateKey(t)
	m := map[string]any{
		"type":           "service_account",
		"project_id":     "example-project",
		"private_key_id": testKeyID,
		"private_key":    testPKCS8,
		"client_email":   testEmail,
		"client_id":      "123456789012345678901",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      "https://oauth2.googleapis.com/token",
	}
	for k, v := range override {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKey(t testing.TB, tokenURI string) *Key {
	t.Helper()
	k, err := ParseKey(keyJSON(t, map[string]any{"token_uri": tokenURI}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// minted is what the fake endpoint saw in one token request.
type minted struct {
	Header    map[string]string
	Claims    claims
	Assertion string
	Token     string // the access token handed out; "" if it answered an error
}

type claims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Sub   string `json:"sub"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// fakeEndpoint is a hand-written Google token endpoint. It checks the form
// and the assertion (signature included, against the test key's public
// half), reports every request on mints, and answers with a token or a
// configured error. hold makes requests wait until released.
type fakeEndpoint struct {
	t   *testing.T
	srv *httptest.Server

	count atomic.Int64
	mints chan minted // one per request, sent before answering

	mu        sync.Mutex
	expiresIn any    // the expires_in to answer; nil omits it
	status    int    // 0 or 200: success; else answer this status with body
	body      string // error body; "{{assertion}}" is replaced by the assertion
	gate      chan struct{}
	handler   http.HandlerFunc // if set, answers instead of the fake
}

// override makes h answer every request from now on.
func (ep *fakeEndpoint) override(h http.HandlerFunc) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.handler = h
}

func newFakeEndpoint(t *testing.T) *fakeEndpoint {
	t.Helper()
	testPrivateKey(t)
	ep := &fakeEndpoint{t: t, mints: make(chan minted, 1000), expiresIn: 3600}
	ep.srv = httptest.NewServer(http.HandlerFunc(ep.serve))
	t.Cleanup(func() {
		ep.release()
		ep.srv.Close()
	})
	return ep
}

func (ep *fakeEndpoint) URL() string { return ep.srv.URL + "/token" }

// answer sets the error status and body to answer; status 0 restores
// success.
func (ep *fakeEndpoint) answer(status int, body string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.status, ep.body = status, body
}

func (ep *fakeEndpoint) setExpiresIn(v any) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.expiresIn = v
}

// hold makes every request from now on wait until release.
func (ep *fakeEndpoint) hold() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.gate == nil {
		ep.gate = make(chan struct{})
	}
}

func (ep *fakeEndpoint) release() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.gate != nil {
		close(ep.gate)
		ep.gate = nil
	}
}

// next waits for the next request the endpoint saw.
func (ep *fakeEndpoint) next() minted {
	ep.t.Helper()
	select {
	case m := <-ep.mints:
		return m
	case <-time.After(10 * time.Second): // a deadline for a hung test, not a wait
		ep.t.Fatal("no mint reached the token endpoint")
		return minted{}
	}
}

func (ep *fakeEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	n := ep.count.Add(1)
	ep.mu.Lock()
	h := ep.handler
	ep.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	refuse := func(format string, args ...any) {
		ep.t.Errorf("token endpoint: "+format, args...)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_request","error_description":"fake endpoint refused the request"}`)
		ep.mints <- minted{}
	}
	if r.Method != http.MethodPost {
		refuse("method %s, want POST", r.Method)
		return
	}
	if err := r.ParseForm(); err != nil {
		refuse("form: %v", err)
		return
	}
	if got, want := r.PostForm.Get("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer"; got != want {
		refuse("grant_type %q, want %q", got, want)
		return
	}
	assertion := r.PostForm.Get("assertion")
	m, err := ep.check(assertion)
	if err != nil {
		refuse("assertion: %v", err)
		return
	}

	ep.mu.Lock()
	status, body, expiresIn, gate := ep.status, ep.body, ep.expiresIn, ep.gate
	ep.mu.Unlock()
	if status == 0 || status == http.StatusOK {
		m.Token = fmt.Sprintf("ya29.fake-%d-%x", n, randomBytes(8))
	}
	ep.mints <- m
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if status != 0 && status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprint(w, strings.ReplaceAll(body, "{{assertion}}", assertion))
		return
	}
	res := map[string]any{"access_token": m.Token, "token_type": "Bearer"}
	if expiresIn != nil {
		res["expires_in"] = expiresIn
	}
	json.NewEncoder(w).Encode(res)
}

// check decodes the assertion and verifies what Google verifies.
func (ep *fakeEndpoint) check(assertion string) (minted, error) {
	m := minted{Assertion: assertion}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return m, fmt.Errorf("%d parts, want 3", len(parts))
	}
	if err := decodeSegment(parts[0], &m.Header); err != nil {
		return m, fmt.Errorf("header: %v", err)
	}
	if err := decodeSegment(parts[1], &m.Claims); err != nil {
		return m, fmt.Errorf("claims: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return m, fmt.Errorf("signature: %v", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testRSA.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return m, fmt.Errorf("signature does not verify: %v", err)
	}
	c := m.Claims
	switch {
	case m.Header["alg"] != "RS256" || m.Header["typ"] != "JWT":
		return m, fmt.Errorf("header %v, want alg RS256, typ JWT", m.Header)
	case m.Header["kid"] != testKeyID:
		return m, fmt.Errorf("kid %q, want %q", m.Header["kid"], testKeyID)
	case c.Iss != testEmail:
		return m, fmt.Errorf("iss %q, want %q", c.Iss, testEmail)
	case c.Aud != ep.URL():
		return m, fmt.Errorf("aud %q, want %q", c.Aud, ep.URL())
	case c.Scope == "":
		return m, fmt.Errorf("no scope")
	case c.Exp-c.Iat > 3600 || c.Exp <= c.Iat:
		return m, fmt.Errorf("iat %d, exp %d: want 0 < exp-iat <= 3600", c.Iat, c.Exp)
	}
	return m, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// newTestBroker returns a broker minting at ep on a fake clock. Its
// afterMint hook reports each finished mint on the returned channel.
func newTestBroker(t *testing.T, ep *fakeEndpoint, edit func(*Config)) (*Broker, *fakeclock.Clock, chan error) {
	t.Helper()
	clock := fakeclock.NewAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	cfg := Config{Key: testKey(t, ep.URL()), Now: clock.Now, After: clock.After}
	b, done := startTestBroker(t, cfg, edit)
	return b, clock, done
}

// startTestBroker starts a broker for cfg as edit changes it. Its
// afterMint hook reports each finished mint on the returned channel.
func startTestBroker(t testing.TB, cfg Config, edit func(*Config)) (*Broker, chan error) {
	t.Helper()
	if edit != nil {
		edit(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1000)
	b.afterMint = func(_ string, err error) { done <- err }
	t.Cleanup(b.Close) // runs before the endpoint's cleanup: cancels held mints
	return b, done
}

// waitMint waits for the broker to finish a mint and returns its error.
// By then the refresher has acted on the mint's outcome (it may have
// started a refresh that is due), so the test can move the clock on.
func waitMint(t *testing.T, b *Broker, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		if b != nil { // nil: the broker is closed
			settle(t, b)
		}
		return err
	case <-time.After(10 * time.Second): // a deadline for a hung test, not a wait
		t.Fatal("no mint finished")
		return nil
	}
}

// settle waits until the refresher has acted on every wake-up and timer
// so far: whatever it was going to start, it has started.
func settle(t *testing.T, b *Broker) {
	t.Helper()
	r := make(chan struct{})
	deadline := time.After(10 * time.Second) // a deadline for a hung test, not a wait
	select {
	case b.probe <- r:
	case <-deadline:
		t.Fatal("the refresher does not answer")
	}
	select {
	case <-r:
	case <-deadline:
		t.Fatal("the refresher does not answer")
	}
}

// quiesce waits until the broker is idle: no mint or refresh in flight,
// and the refresher asleep with nothing left to act on.
func quiesce(t *testing.T, b *Broker) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // for a hung test
	for {
		// Nothing in flight means every mint has told the refresher; once
		// it has answered the probe it has acted on that, and if it
		// started nothing, the broker is idle.
		if b.inflight.Load() == 0 {
			settle(t, b)
			if b.inflight.Load() == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("the broker does not settle: %d in flight\n%s", b.inflight.Load(), buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

// header returns the Authorization header tok sets: the only way to see
// its value, and a way to compare two tokens.
func header(tok Token) string {
	r, _ := http.NewRequest("GET", "http://example.com/", nil)
	tok.SetAuthHeader(r)
	return r.Header.Get("Authorization")
}
