package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chat-broker/chat-broker/internal/fakeclock"
)

// testKeys are generated once: RSA key generation is the slow part of these
// tests, and under -race it is slower still.
var testKeys = sync.OnceValue(func() map[string]*rsa.PrivateKey {
	keys := map[string]*rsa.PrivateKey{}
	for _, kid := range []string{"key-a", "key-b", "key-c"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[kid] = k
	}
	return keys
})

// fakeIssuer is a Kubernetes API server as far as OIDC discovery goes: it
// serves /.well-known/openid-configuration and a JWKS over TLS, and counts
// key fetches.
type fakeIssuer struct {
	srv *httptest.Server

	mu sync.Mutex
	// kids are the keys published in the JWKS.
	kids []string
	// discoveryIssuer, when set, is reported instead of the server's URL.
	discoveryIssuer string
	// noJWKSURI drops jwks_uri from discovery.
	noJWKSURI bool
	// wantBearer, when set, is the Authorization the server demands, as
	// the API server demands a service account's token.
	wantBearer string
	// jwksStatus, when set, is the status key fetches are answered with.
	jwksStatus int

	jwksFetches atomic.Int32
}

func newFakeIssuer(t testing.TB, kids ...string) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{kids: kids}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	// Tests that dial with a client not trusting the server make it log
	// handshake errors.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) url() string { return f.srv.URL }

func (f *fakeIssuer) publish(kids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kids = kids
}

func (f *fakeIssuer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	kids, iss, noJWKS, bearer, jwksStatus := f.kids, f.discoveryIssuer, f.noJWKSURI, f.wantBearer, f.jwksStatus
	f.mu.Unlock()
	if bearer != "" && r.Header.Get("Authorization") != bearer {
		http.Error(w, `{"kind":"Status","message":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		if iss == "" {
			iss = f.srv.URL
		}
		doc := map[string]any{
			"issuer":                                iss,
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		}
		if !noJWKS {
			doc["jwks_uri"] = f.srv.URL + "/openid/v1/jwks"
		}
		json.NewEncoder(w).Encode(doc)
	case "/openid/v1/jwks":
		f.jwksFetches.Add(1)
		if jwksStatus != 0 {
			http.Error(w, "keys unavailable", jwksStatus)
			return
		}
		var set jose.JSONWebKeySet
		for _, kid := range kids {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &testKeys()[kid].PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

var testEpoch = time.Unix(1_800_000_000, 0)

// saClaims are the claims kube-apiserver puts in a projected token for
// prod/notifier, issued at now for an hour.
func saClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss,
		"aud": []string{"chat-broker"},
		"sub": "system:serviceaccount:prod:notifier",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      "prod",
			"serviceaccount": map[string]any{"name": "notifier", "uid": "5c1c1d5e-0000-4000-8000-000000000001"},
			"pod":            map[string]any{"name": "notifier-7d9f", "uid": "5c1c1d5e-0000-4000-8000-000000000002"},
		},
	}
}

// sign signs claims as a compact JWS with the test key kid (its "kid"
// header set to headerKid).
func sign(t testing.TB, kid, headerKid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: testKeys()[kid], KeyID: headerKid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return signWith(t, signer, claims)
}

func signWith(t testing.TB, signer jose.Signer, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds header.payload.sig by hand, for tokens go-jose will not
// make.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "." + sig
}

func newTestVerifier(t *testing.T, iss *fakeIssuer, clock *fakeclock.Clock) *ServiceAccountVerifier {
	t.Helper()
	v, err := NewServiceAccountVerifier(context.Background(), ServiceAccountConfig{
		Issuer:     iss.url(),
		HTTPClient: iss.srv.Client(),
		Now:        clock.Now,
	})
	if err != nil {
		t.Fatalf("NewServiceAccountVerifier: %v", err)
	}
	return v
}

// newKeyAVerifier returns a verifier of a fake issuer that publishes
// key-a, on a clock of its own that starts at testEpoch.
func newKeyAVerifier(t *testing.T) (*fakeIssuer, *fakeclock.Clock, *ServiceAccountVerifier) {
	t.Helper()
	iss := newFakeIssuer(t, "key-a")
	clock := fakeclock.NewAt(testEpoch)
	return iss, clock, newTestVerifier(t, iss, clock)
}

// checkNoLeak fails if err quotes the token or any of its parts.
func checkNoLeak(t *testing.T, err error, token string) {
	t.Helper()
	if err == nil || token == "" {
		return
	}
	msg := err.Error()
	if strings.Contains(msg, token) {
		t.Errorf("error quotes the token: %s", msg)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Errorf("error quotes part of the token (%d bytes): %s", len(part), msg)
		}
	}
}

func TestServiceAccountVerify(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	now := clock.Now()

	with := func(mod func(c map[string]any)) map[string]any {
		c := saClaims(iss.url(), now)
		mod(c)
		return c
	}
	// signed is a token signed by the published key with claims changed by mod.
	signed := func(mod func(c map[string]any)) string { return sign(t, "key-a", "key-a", with(mod)) }
	valid := sign(t, "key-a", "key-a", saClaims(iss.url(), now))
	hmacSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The classic confusion attack: HMAC keyed with the issuer's public key.
	pubDER, err := x509.MarshalPKIXPublicKey(&testKeys()["key-a"].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	confused, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})}, (&jose.SignerOptions{}).WithHeader("kid", "key-a"))
	if err != nil {
		t.Fatal(err)
	}
	validParts := strings.Split(valid, ".")

	tests := []struct {
		desc    string
		token   string
		want    string // account; "" means refused
		wantErr string // substring of the error
	}{
		{desc: "valid", token: valid, want: "prod/notifier"},
		{desc: "audience among several", token: signed(func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc", "chat-broker"} }), want: "prod/notifier"},
		{desc: "iat slightly in the future (clock skew)", token: signed(func(c map[string]any) { c["iat"] = now.Add(30 * time.Second).Unix(); c["nbf"] = c["iat"] }), want: "prod/notifier"},
		{desc: "wrong audience", token: signed(func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc"} }), wantErr: `project the token with audience "chat-broker"`},
		{desc: "wrong issuer", token: signed(func(c map[string]any) { c["iss"] = "https://other.example" }), wantErr: "different provider"},
		{desc: "legacy issuer", token: signed(func(c map[string]any) { c["iss"] = "kubernetes/serviceaccount" }), wantErr: "different provider"},
		{desc: "expired", token: signed(func(c map[string]any) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["nbf"] = c["iat"]
			c["exp"] = now.Add(-time.Hour).Unix()
		}), wantErr: "expired at"},
		{desc: "expires this very second", token: signed(func(c map[string]any) { c["iat"] = now.Add(-time.Hour).Unix(); c["exp"] = now.Unix() }), wantErr: "expired at"},
		{desc: "not yet valid", token: signed(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }), wantErr: "not valid before"},
		{desc: "issued in the future", token: signed(func(c map[string]any) {
			c["iat"] = now.Add(10 * time.Minute).Unix()
			c["exp"] = now.Add(time.Hour).Unix()
		}), wantErr: "issued in the future"},
		{desc: "no exp (legacy Secret-based token)", token: signed(func(c map[string]any) { delete(c, "exp") }), wantErr: "no exp"},
		{desc: "no iat", token: signed(func(c map[string]any) { delete(c, "iat") }), wantErr: "no iat"},
		{desc: "exp before iat", token: signed(func(c map[string]any) { c["iat"] = now.Unix(); c["exp"] = now.Add(-time.Second).Unix() }), wantErr: "not after iat"},
		{desc: "lifetime over 24h", token: signed(func(c map[string]any) { c["exp"] = now.Add(25 * time.Hour).Unix() }), wantErr: "longer than the 24h0m0s allowed"},
		{desc: "lifetime over 24h with iat backdated", token: signed(func(c map[string]any) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(23 * time.Hour).Unix()
		}), wantErr: "longer than the 24h0m0s allowed"},
		{desc: "lifetime exactly 24h", token: signed(func(c map[string]any) { c["exp"] = now.Add(24 * time.Hour).Unix() }), want: "prod/notifier"},
		{desc: "signed by an unknown key", token: sign(t, "key-c", "key-c", saClaims(iss.url(), now)), wantErr: "signature"},
		{desc: "signed by an unknown key under a known kid", token: sign(t, "key-c", "key-a", saClaims(iss.url(), now)), wantErr: "signature"},
		{desc: "no kid, unknown key", token: sign(t, "key-c", "", saClaims(iss.url(), now)), wantErr: "signature"},
		{desc: "payload swapped under a valid signature", token: validParts[0] + "." + strings.Split(signed(func(c map[string]any) { c["sub"] = "system:serviceaccount:kube-system:admin" }), ".")[1] + "." + validParts[2], wantErr: "signature"},
		{desc: "alg none", token: unsigned(map[string]any{"alg": "none", "typ": "JWT"}, saClaims(iss.url(), now), ""), wantErr: "not a JWT"},
		{desc: "alg none with a signature part", token: unsigned(map[string]any{"alg": "none", "typ": "JWT"}, saClaims(iss.url(), now), "AAAA"), wantErr: `unexpected signature algorithm "none"`},
		{desc: "HS256", token: signWith(t, hmacSigner, saClaims(iss.url(), now)), wantErr: "HS256"},
		{desc: "HS256 keyed with the public key", token: signWith(t, confused, saClaims(iss.url(), now)), wantErr: "HS256"},
		{desc: "sub disagrees with kubernetes.io", token: signed(func(c map[string]any) { c["sub"] = "system:serviceaccount:prod:admin" }), wantErr: "disagrees"},
		{desc: "sub missing", token: signed(func(c map[string]any) { delete(c, "sub") }), wantErr: "no sub"},
		{desc: "kubernetes.io missing", token: signed(func(c map[string]any) { delete(c, "kubernetes.io") }), wantErr: "no kubernetes.io claim"},
		{desc: "namespace missing", token: signed(func(c map[string]any) { delete(c["kubernetes.io"].(map[string]any), "namespace") }), wantErr: "lacks namespace"},
		{desc: "serviceaccount missing", token: signed(func(c map[string]any) { delete(c["kubernetes.io"].(map[string]any), "serviceaccount") }), wantErr: "serviceaccount.name"},
		{desc: "serviceaccount name empty", token: signed(func(c map[string]any) {
			c["kubernetes.io"].(map[string]any)["serviceaccount"] = map[string]any{"name": ""}
		}), wantErr: "serviceaccount.name"},
		{desc: "names with separators", token: signed(func(c map[string]any) {
			c["kubernetes.io"].(map[string]any)["namespace"] = "prod/x"
			c["sub"] = "system:serviceaccount:prod/x:notifier"
		}), wantErr: "not Kubernetes names"},
		{desc: "empty", token: "", wantErr: "empty"},
		{desc: "garbage", token: "not a token at all", wantErr: "not a JWT"},
		{desc: "garbage with dots", token: "a.b.c", wantErr: "not a JWT"},
		{desc: "garbage JWT-shaped", token: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", wantErr: "signature"},
		{desc: "oversize", token: "eyJ" + strings.Repeat("A", 20<<10) + ".e30.AAAA", wantErr: "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tc.token)
			checkNoLeak(t, err, tc.token)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Verify = %q, %v; want %q, nil", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = %q, nil; want an error containing %q", got, tc.wantErr)
			}
			if got != "" {
				t.Errorf("Verify returned account %q with an error", got)
			}
			if !strings.HasPrefix(err.Error(), "proxy: service account token: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestServiceAccountVerifyNoLeak: go-jose quotes an unexpected alg header,
// which the sender chooses; a sender who puts part of the token there must
// not get it into an error (and so a log line).
func TestServiceAccountVerifyNoLeak(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)

	payload, _ := json.Marshal(saClaims(iss.url(), clock.Now()))
	p := base64.RawURLEncoding.EncodeToString(payload)
	sig := "c2lnbmF0dXJlc2lnbmF0dXJl"
	tokens := map[string]string{
		"alg quotes the payload":   unsigned(map[string]any{"alg": p, "kid": p}, saClaims(iss.url(), clock.Now()), sig),
		"alg quotes the signature": unsigned(map[string]any{"alg": sig}, saClaims(iss.url(), clock.Now()), sig),
		"kid quotes the signature": unsigned(map[string]any{"alg": "RS256", "kid": sig}, saClaims(iss.url(), clock.Now()), sig),
	}
	for desc, tok := range tokens {
		t.Run(desc, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tok)
			if err == nil {
				t.Fatal("Verify accepted a forged token")
			}
			checkNoLeak(t, err, tok)
		})
	}
}

// TestServiceAccountCacheAndRotation: a token seen before is answered from
// the cache with no signature work; the issuer rotating keys is picked up
// on the first token with the new kid; a cached entry stops working at exp.
func TestServiceAccountCacheAndRotation(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	ctx := context.Background()

	verify := func(step, token, want string) {
		t.Helper()
		got, err := v.Verify(ctx, token)
		if err != nil || got != want {
			t.Fatalf("%s: Verify = %q, %v; want %q, nil", step, got, err, want)
		}
	}
	fetches := func(step string, want int32) {
		t.Helper()
		if got := iss.jwksFetches.Load(); got != want {
			t.Fatalf("%s: JWKS fetches = %d, want %d", step, got, want)
		}
	}

	fetches("after discovery", 0)
	tokA := sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))
	verify("first token", tokA, "prod/notifier")
	fetches("first token", 1)

	// Rotation: the issuer now publishes only key-b. A token with kid key-b
	// makes the verifier fetch the keys again, which also drops key-a from its
	// key set.
	iss.publish("key-b")
	clock.Advance(jwksMinRefetch)
	bClaims := saClaims(iss.url(), clock.Now())
	bClaims["kubernetes.io"].(map[string]any)["namespace"] = "staging"
	bClaims["sub"] = "system:serviceaccount:staging:notifier"
	tokB := sign(t, "key-b", "key-b", bClaims)
	verify("token signed by the new key", tokB, "staging/notifier")
	fetches("token signed by the new key", 2)

	// tokA's key is gone from the key set: only the cache can still answer
	// for it, and it does so without fetching keys.
	verify("cached token after its key was rotated out", tokA, "prod/notifier")
	fetches("cached token", 2)

	// A new token signed by the old key is refused, at once: the keys the
	// verifier holds are the ones just fetched, with no key-a.
	clock.Advance(time.Second)
	if _, err := v.Verify(ctx, sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))); err == nil {
		t.Fatal("a new token signed by a rotated-out key verified")
	}
	fetches("rotated-out key within the refetch interval", 2)
	// Past the refetch interval it fetches once more, and still refuses.
	clock.Advance(jwksMinRefetch)
	_, err := v.Verify(ctx, sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now())))
	if err == nil || !strings.Contains(err.Error(), "a key the issuer does not publish") {
		t.Fatalf("rotated-out key: got %v, want a refusal naming the unknown key", err)
	}
	fetches("rotated-out key past the refetch interval", 3)

	// Past exp the cached entry is dropped and the token verified again,
	// which refuses it.
	clock.Advance(time.Hour)
	_, err = v.Verify(ctx, tokB)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("cached token past exp: got %v, want an expired error", err)
	}
	checkNoLeak(t, err, tokB)
}

// TestServiceAccountUnknownKeyRefetchIsLimited: tokens naming key ids the
// issuer never published (forged, or from another cluster) cost at most one
// key fetch per jwksMinRefetch, however many arrive, concurrently or not;
// a real new key is picked up once the interval has passed.
func TestServiceAccountUnknownKeyRefetchIsLimited(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			// key-b's key under made-up key ids.
			tok := sign(t, "key-b", fmt.Sprintf("forged-%d", i), saClaims(iss.url(), clock.Now()))
			_, err := v.Verify(ctx, tok)
			if err == nil || !strings.Contains(err.Error(), "a key the issuer does not publish") {
				t.Errorf("forged kid %d: got %v, want a refusal naming the unknown key", i, err)
			}
		})
	}
	wg.Wait()
	if got := iss.jwksFetches.Load(); got != 1 {
		t.Errorf("JWKS fetches after 50 unknown key ids within %s of the first fetch = %d, want 1", jwksMinRefetch, got)
	}

	// The issuer rotates. Within the interval the new key is not fetched;
	// after it, it is, once.
	iss.publish("key-a", "key-b")
	clock.Advance(jwksMinRefetch - time.Second)
	tokB := sign(t, "key-b", "key-b", saClaims(iss.url(), clock.Now()))
	if _, err := v.Verify(ctx, tokB); err == nil {
		t.Fatal("key-b verified without its key being fetched")
	}
	clock.Advance(time.Second)
	for i := range 3 {
		if got, err := v.Verify(ctx, tokB); err != nil || got != "prod/notifier" {
			t.Fatalf("try %d after the interval: Verify = %q, %v; want prod/notifier", i, got, err)
		}
	}
	if got := iss.jwksFetches.Load(); got != 2 {
		t.Errorf("JWKS fetches after the rotation = %d, want 2", got)
	}
}

// TestServiceAccountForgedWithKnownKid: a token naming a published key id
// but signed by another key is a forgery, not a rotation: refused without
// fetching the keys again, even past the refetch interval.
func TestServiceAccountForgedWithKnownKid(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))); err != nil {
		t.Fatal(err)
	}
	clock.Advance(jwksMinRefetch)
	_, err := v.Verify(ctx, sign(t, "key-b", "key-a", saClaims(iss.url(), clock.Now())))
	if err == nil || !strings.Contains(err.Error(), "signature does not match the issuer's key") {
		t.Fatalf("key-b's signature under kid key-a: got %v, want a signature mismatch", err)
	}
	if got := iss.jwksFetches.Load(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1 (a forgery fetches nothing)", got)
	}
}

// TestServiceAccountKeyFetchFails: an issuer answering the key fetch with
// an error refuses the token with what the issuer said, and keeps the keys
// it had.
func TestServiceAccountKeyFetchFails(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	ctx := context.Background()
	tokA := sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))
	if _, err := v.Verify(ctx, tokA); err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	iss.jwksStatus = http.StatusServiceUnavailable
	iss.mu.Unlock()
	clock.Advance(jwksMinRefetch)
	_, err := v.Verify(ctx, sign(t, "key-b", "key-b", saClaims(iss.url(), clock.Now())))
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Fatalf("key fetch failing: got %v, want an error quoting the issuer's 503", err)
	}
	// A new token signed by the key already held still verifies.
	clock.Advance(time.Second)
	if _, err := v.Verify(ctx, sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))); err != nil {
		t.Fatalf("known key after a failed fetch: %v", err)
	}
}

// TestServiceAccountCacheIsKeyedByHash: the cache holds hashes, never the
// token.
func TestServiceAccountCacheIsKeyedByHash(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	tok := sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	for _, k := range v.cache.Keys() {
		if strings.Contains(string(k[:]), tok[:16]) {
			t.Fatal("cache key holds the token")
		}
	}
	for _, e := range v.cache.Values() {
		if strings.Contains(fmt.Sprintf("%+v", e), tok[:16]) {
			t.Fatal("cache value holds the token")
		}
	}
	if got, want := v.cache.Len(), 1; got != want {
		t.Fatalf("cache holds %d entries, want %d", got, want)
	}
}

// TestServiceAccountVerifyConcurrent runs Verify from many goroutines at
// once, for -race; the first verifications race the one key fetch.
func TestServiceAccountVerifyConcurrent(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	tokens := make([]string, 4)
	for i := range tokens {
		c := saClaims(iss.url(), clock.Now())
		c["exp"] = clock.Now().Add(time.Duration(i+1) * time.Hour).Unix()
		tokens[i] = sign(t, "key-a", "key-a", c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			for j := range 4 {
				if _, err := v.Verify(context.Background(), tokens[(i+j)%len(tokens)]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := iss.jwksFetches.Load(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1 (concurrent fetches are collapsed)", got)
	}
}

func TestServiceAccountVerifyCancelled(t *testing.T) {
	iss, clock, v := newKeyAVerifier(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An unknown kid forces a key fetch, which a cancelled context abandons.
	tok := sign(t, "key-c", "key-c", saClaims(iss.url(), clock.Now()))
	_, err := v.Verify(ctx, tok)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestNewServiceAccountVerifierErrors(t *testing.T) {
	mismatch := newFakeIssuer(t, "key-a")
	mismatch.discoveryIssuer = "https://kubernetes.default.svc.cluster.local"
	noJWKS := newFakeIssuer(t, "key-a")
	noJWKS.noJWKSURI = true
	needsToken := newFakeIssuer(t, "key-a")
	needsToken.wantBearer = "Bearer pod-token"
	closed := newFakeIssuer(t, "key-a")
	closedURL, closedClient := closed.url(), closed.srv.Client()
	closed.srv.Close()
	untrusted := newFakeIssuer(t, "key-a")

	tests := []struct {
		desc    string
		cfg     ServiceAccountConfig
		wantErr []string
	}{
		{"no issuer", ServiceAccountConfig{}, []string{"no issuer", "--service-account-issuer"}},
		{"issuer not a URL", ServiceAccountConfig{Issuer: "kubernetes/serviceaccount"}, []string{"not an absolute https URL"}},
		{"plain http to a remote host", ServiceAccountConfig{Issuer: "http://kubernetes.default.svc"}, []string{"plain http"}},
		{"negative cache size", ServiceAccountConfig{Issuer: mismatch.url(), CacheSize: -1}, []string{"cache size -1"}},
		{"discovery reports another issuer", ServiceAccountConfig{Issuer: mismatch.url(), HTTPClient: mismatch.srv.Client()},
			[]string{`says the issuer is "https://kubernetes.default.svc.cluster.local"`, mismatch.url(), "--service-account-issuer exactly"}},
		{"trailing slash", ServiceAccountConfig{Issuer: noJWKS.url() + "/", HTTPClient: noJWKS.srv.Client()}, []string{"trailing slash"}},
		{"no jwks_uri", ServiceAccountConfig{Issuer: noJWKS.url(), HTTPClient: noJWKS.srv.Client()}, []string{"no jwks_uri"}},
		{"unreachable", ServiceAccountConfig{Issuer: closedURL, HTTPClient: closedClient}, []string{"cannot reach discovery", "/.well-known/openid-configuration"}},
		{"untrusted certificate", ServiceAccountConfig{Issuer: untrusted.url()}, []string{"cannot reach discovery", "certificate"}},
		{"unauthenticated", ServiceAccountConfig{Issuer: needsToken.url(), HTTPClient: needsToken.srv.Client()}, []string{"401", "system:service-account-issuer-discovery"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			v, err := NewServiceAccountVerifier(context.Background(), tc.cfg)
			if err == nil {
				t.Fatalf("NewServiceAccountVerifier = %v, nil; want an error", v)
			}
			if !strings.HasPrefix(err.Error(), "proxy: service account token: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got error %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestNewServiceAccountVerifierDefaults(t *testing.T) {
	iss := newFakeIssuer(t, "key-a")
	v, err := NewServiceAccountVerifier(context.Background(), ServiceAccountConfig{Issuer: iss.url(), HTTPClient: iss.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.audience, "chat-broker"; got != want {
		t.Errorf("audience = %q, want %q", got, want)
	}
	// The real clock: a token issued now verifies.
	tok := sign(t, "key-a", "key-a", saClaims(iss.url(), time.Now()))
	if got, err := v.Verify(context.Background(), tok); err != nil || got != "prod/notifier" {
		t.Errorf("Verify = %q, %v; want prod/notifier", got, err)
	}

	// A custom audience replaces the default.
	v, err = NewServiceAccountVerifier(context.Background(), ServiceAccountConfig{Issuer: iss.url(), HTTPClient: iss.srv.Client(), Audience: "broker.example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), `audience "broker.example"`) {
		t.Errorf("token for chat-broker against audience broker.example: got %v, want an audience error", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	iss := newFakeIssuer(t, "key-a")
	real := sign(t, "key-a", "key-a", saClaims(iss.url(), testEpoch))
	tests := []struct {
		desc string
		in   string
		want bool
	}{
		{"signed token", real, true},
		{"minimal", "eyJ9.e30.AAAA", true},
		{"header with a space", base64.RawURLEncoding.EncodeToString([]byte(` {"alg":"RS256"}`)) + ".e30.AAAA", true},
		{"empty", "", false},
		{"caller secret", "s3cr3t-Caller_Secret-0123456789", false},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.e30", false},
		{"four parts", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA.AAAA", false},
		{"empty signature", "eyJhbGciOiJSUzI1NiJ9.e30.", false},
		{"empty payload", "eyJhbGciOiJSUzI1NiJ9..AAAA", false},
		{"empty header", ".e30.AAAA", false},
		{"padding", "eyJhbGciOiJSUzI1NiJ9.e30=.AAAA", false},
		{"standard base64 alphabet", "eyJhbGciOiJSUzI1NiJ9.e3+/.AAAA", false},
		{"dotted secret", "a.b.c", false},
		{"header not JSON", "bm90IGpzb24.e30.AAAA", false},
		{"space inside", "eyJ hbGc.e30.AAAA", false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := LooksLikeJWT(tc.in); got != tc.want {
				t.Errorf("LooksLikeJWT(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// inClusterFiles writes srv's certificate as a CA file and token as a
// token file, as kubelet lays out /var/run/secrets/kubernetes.io/serviceaccount.
func inClusterFiles(t *testing.T, srv *httptest.Server, token string) (caFile, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	caFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tokenFile
}

// selfSigned returns a fresh self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "not the cluster"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// replaceFile swaps in new content the way kubelet does: write a new file,
// rename it over the old one.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestNewInClusterHTTPClient(t *testing.T) {
	seen := make(chan string, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization")
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}
	}))
	defer srv.Close()
	caFile, tokenFile := inClusterFiles(t, srv, "token-one\n")
	c, err := NewInClusterHTTPClient(caFile, tokenFile)
	if err != nil {
		t.Fatal(err)
	}

	get := func(step, path, want string) {
		t.Helper()
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		resp.Body.Close()
		if got := <-seen; got != want {
			t.Fatalf("%s: server saw Authorization %q, want %q", step, got, want)
		}
	}
	get("first request", "/", "Bearer token-one")
	get("unchanged file", "/", "Bearer token-one")
	replaceFile(t, tokenFile, "token-two")
	get("after kubelet rotates the token", "/", "Bearer token-two")
	if err := os.WriteFile(tokenFile, []byte("token-three-longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	get("after an in-place rewrite", "/", "Bearer token-three-longer")

	// A redirect is not followed: it would carry the token elsewhere.
	_, err = c.Get(srv.URL + "/redirect")
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("redirect: got %v, want a refusal", err)
	}
	<-seen

	// Plain http: the token is not sent at all.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("plain http server got a request with Authorization %q", r.Header.Get("Authorization"))
	}))
	defer plain.Close()
	if _, err := c.Get(plain.URL); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Errorf("plain http: got %v, want a refusal", err)
	}

	// A server whose certificate the cluster CA did not sign is not trusted.
	// (Every httptest TLS server shares one certificate, so this one gets
	// its own.)
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("untrusted server got a request with Authorization %q", r.Header.Get("Authorization"))
	}))
	other.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	other.Config.ErrorLog = log.New(io.Discard, "", 0)
	other.StartTLS()
	defer other.Close()
	if _, err := c.Get(other.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("server outside the cluster CA: got %v, want a certificate error", err)
	}

	// The token file vanishing mid-life fails the request, naming the file.
	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(srv.URL); err == nil || !strings.Contains(err.Error(), tokenFile) {
		t.Errorf("token file gone: got %v, want an error naming %s", err, tokenFile)
	}
}

func TestNewInClusterHTTPClientErrors(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	caFile, tokenFile := inClusterFiles(t, srv, "token")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notPEM := write("not-pem.crt", "hello")
	empty := write("empty-token", " \n")
	twoTokens := write("two-tokens", "one two")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		desc, ca, token, wantErr string
	}{
		{"CA file missing", missing, tokenFile, missing},
		{"CA file not PEM", notPEM, tokenFile, notPEM},
		{"token file missing", caFile, missing, missing},
		{"token file empty", caFile, empty, empty},
		{"token file with two tokens", caFile, twoTokens, twoTokens},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := NewInClusterHTTPClient(tc.ca, tc.token)
			if err == nil {
				t.Fatal("NewInClusterHTTPClient succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "proxy: service account token: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %q, want the package prefix and %q", err, tc.wantErr)
			}
		})
	}
}

// TestServiceAccountVerifierInCluster wires the two together as the broker
// does in a pod: the issuer demands the pod's own token, as the API server
// does for discovery and keys.
func TestServiceAccountVerifierInCluster(t *testing.T) {
	iss := newFakeIssuer(t, "key-a")
	iss.wantBearer = "Bearer pod-token"
	caFile, tokenFile := inClusterFiles(t, iss.srv, "pod-token\n")
	client, err := NewInClusterHTTPClient(caFile, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.NewAt(testEpoch)
	v, err := NewServiceAccountVerifier(context.Background(), ServiceAccountConfig{Issuer: iss.url(), HTTPClient: client, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, "key-a", "key-a", saClaims(iss.url(), clock.Now()))
	if got, err := v.Verify(context.Background(), tok); err != nil || got != "prod/notifier" {
		t.Fatalf("Verify = %q, %v; want prod/notifier", got, err)
	}
	if got := iss.jwksFetches.Load(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1", got)
	}
}

// TestServiceAccountOversizeKeySet: a key set is read whole, so the
// verifier caps issuer responses.
func TestServiceAccountOversizeKeySet(t *testing.T) {
	var srvURL string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": srvURL, "jwks_uri": srvURL + "/jwks"})
		case "/jwks":
			fmt.Fprintf(w, `{"keys":[],"pad":"%s"}`, strings.Repeat("x", 2<<20))
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	clock := fakeclock.NewAt(testEpoch)
	v, err := NewServiceAccountVerifier(context.Background(), ServiceAccountConfig{Issuer: srv.URL, HTTPClient: srv.Client(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, "key-a", "key-a", saClaims(srv.URL, clock.Now()))
	_, err = v.Verify(context.Background(), tok)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v, want a size error", err)
	}
}

func BenchmarkServiceAccountVerifyCached(b *testing.B) {
	iss := newFakeIssuer(b, "key-a")
	clock := fakeclock.NewAt(testEpoch)
	v, err := NewServiceAccountVerifier(context.Background(), ServiceAccountConfig{Issuer: iss.url(), HTTPClient: iss.srv.Client(), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	tok := sign(b, "key-a", "key-a", saClaims(iss.url(), clock.Now()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
