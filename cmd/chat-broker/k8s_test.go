package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuer is a minimal Kubernetes service-account issuer: OIDC discovery,
// a JWKS, and projected tokens signed with its key.
type issuer struct {
	srv    *httptest.Server
	signer jose.Signer
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}
	iss := &issuer{}
	iss.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{
				"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/openid/v1/jwks",
				"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
				"id_token_signing_alg_values_supported": []string{"RS256"},
			})
		case "/openid/v1/jwks":
			json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(iss.srv.Close)
	iss.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// token returns a projected service-account token for namespace/name.
func (iss *issuer) token(t *testing.T, audience, namespace, name string) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": iss.srv.URL, "aud": []string{audience}, "sub": "system:serviceaccount:" + namespace + ":" + name,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{"namespace": namespace, "serviceaccount": map[string]any{"name": name, "uid": "u1"}},
	}
	tok, err := jwt.Signed(iss.signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A pod's projected service-account token identifies its caller; a token
// for another audience, or another account, does not.
func TestServiceAccountCallers(t *testing.T) {
	iss := newIssuer(t)
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policy.yaml")
	writeFile(t, policyFile, `version: 1
callers:
  - name: notifier
    identify: {serviceAccount: prod/notifier}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/AAAA]}]
    scopes: [chat.bot]
`)
	listen, _, logs, _ := startServe(t, dir, policyFile, "--k8s-issuer", iss.srv.URL)
	logs.waitFor(t, regexp.MustCompile(`"msg":"verifying Kubernetes service-account tokens"`))

	for _, tc := range []struct {
		desc  string
		token string
		want  int
	}{
		{"the caller's own token", iss.token(t, "chat-broker", "prod", "notifier"), 200},
		{"a token for another audience", iss.token(t, "https://kubernetes.default.svc", "prod", "notifier"), 401},
		{"another namespace's account", iss.token(t, "chat-broker", "dev", "notifier"), 401},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := postMessage(listen, "spaces/AAAA", "Bearer "+tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%d, want %d", got, tc.want)
			}
		})
	}
}
