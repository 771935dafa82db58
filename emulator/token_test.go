package emulator_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

const (
	descSignature  = "Invalid JWT Signature."
	descTimeframe  = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	descEmptyScope = "Empty or missing scope not allowed."
	descBadScope   = "Invalid OAuth scope or ID token audience provided."
	descNoDWD      = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
)

func TestTokenFromJWTConfig(t *testing.T) {
	v := newEnv(t, emulator.Config{TokenLifetime: 30 * time.Minute})
	tok, err := v.tokenSource(t, "", chatapi.ScopeBot, chatapi.ScopeAppSpaces).Token()
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if !strings.HasPrefix(tok.AccessToken, "ya29.emu-") || tok.TokenType != "Bearer" {
		t.Errorf("token = %q %q, want ya29.emu-… Bearer", tok.AccessToken, tok.TokenType)
	}
	if d := time.Until(tok.Expiry); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("expiry in %v, want about 30m", d)
	}
	if got, want := tok.Extra("scope"), chatapi.ScopeBot.URL()+" "+chatapi.ScopeAppSpaces.URL(); got != want {
		t.Errorf("scope = %q, want %q", got, want)
	}
	mints := v.emu.Mints()
	if len(mints) != 1 {
		t.Fatalf("Mints() has %d entries, want 1", len(mints))
	}
	if m := mints[0]; m.Audience != v.tokenURL || m.Subject != "" || chatapi.ScopeKey(m.Scopes) != "chat.app.spaces chat.bot" {
		t.Errorf("mint = %+v", m)
	}
}

// Each case changes one thing in an assertion that is otherwise valid.
func TestTokenEndpointErrors(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	key, kid := v.keyParts(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	for _, tc := range []struct {
		desc       string
		header     map[string]any // merged into the default header; nil value deletes
		claims     map[string]any // merged into the default claims; nil value deletes
		key        *rsa.PrivateKey
		grantType  string
		wantStatus int
		wantError  string
		wantDesc   string
	}{
		{desc: "valid, aud is the token URL", wantStatus: 200},
		{desc: "valid, aud is Google's token URL", claims: map[string]any{"aud": emulator.GoogleTokenURL}, wantStatus: 200},
		{desc: "valid, no kid", header: map[string]any{"kid": nil}, wantStatus: 200},
		{desc: "valid, several scopes", claims: map[string]any{"scope": chatapi.ScopeBot.URL() + " " + chatapi.ScopeAppSpaces.URL()}, wantStatus: 200},
		{desc: "wrong grant_type", grantType: "client_credentials", wantStatus: 400, wantError: "unsupported_grant_type", wantDesc: "Invalid grant_type: client_credentials"},
		{desc: "signed with another key", key: otherKey, wantStatus: 400, wantError: "invalid_grant", wantDesc: descSignature},
		{desc: "wrong iss", claims: map[string]any{"iss": "someone@else.iam.gserviceaccount.com"}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descSignature},
		{desc: "wrong kid", header: map[string]any{"kid": "0123"}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descSignature},
		{desc: "alg HS256", header: map[string]any{"alg": "HS256"}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descSignature},
		{desc: "wrong aud", claims: map[string]any{"aud": "https://example.com/token"}, wantStatus: 400, wantError: "invalid_scope", wantDesc: descBadScope},
		{desc: "no aud", claims: map[string]any{"aud": nil}, wantStatus: 400, wantError: "invalid_scope", wantDesc: descBadScope},
		{desc: "exp − iat over an hour", claims: map[string]any{"iat": now - 10, "exp": now + 3600}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descTimeframe},
		{desc: "exp before iat", claims: map[string]any{"iat": now, "exp": now - 1}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descTimeframe},
		{desc: "expired", claims: map[string]any{"iat": now - 7200, "exp": now - 3600}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descTimeframe},
		{desc: "iat far in the future", claims: map[string]any{"iat": now + 3600, "exp": now + 7200}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descTimeframe},
		{desc: "no iat", claims: map[string]any{"iat": nil}, wantStatus: 400, wantError: "invalid_grant", wantDesc: descTimeframe},
		{desc: "empty scope", claims: map[string]any{"scope": ""}, wantStatus: 400, wantError: "invalid_scope", wantDesc: descEmptyScope},
		{desc: "no scope", claims: map[string]any{"scope": nil}, wantStatus: 400, wantError: "invalid_scope", wantDesc: descEmptyScope},
		{desc: "unknown scope", claims: map[string]any{"scope": chatapi.ScopePrefix + "chat.bott"}, wantStatus: 400, wantError: "invalid_scope", wantDesc: descBadScope},
		{desc: "short-form scope", claims: map[string]any{"scope": "chat.bot"}, wantStatus: 400, wantError: "invalid_scope", wantDesc: descBadScope},
		{desc: "sub without delegation", claims: map[string]any{"sub": "alice@example.com"}, wantStatus: 401, wantError: "unauthorized_client", wantDesc: descNoDWD},
		{desc: "legacy prn without delegation", claims: map[string]any{"prn": "alice@example.com"}, wantStatus: 401, wantError: "unauthorized_client", wantDesc: descNoDWD},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			header := map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}
			claims := map[string]any{
				"iss": v.emu.ClientEmail(), "aud": v.tokenURL, "scope": chatapi.ScopeBot.URL(),
				"iat": now - 10, "exp": now + 3590,
			}
			for _, p := range []struct{ dst, src map[string]any }{{header, tc.header}, {claims, tc.claims}} {
				for k, val := range p.src {
					if val == nil {
						delete(p.dst, k)
					} else {
						p.dst[k] = val
					}
				}
			}
			k := key
			if tc.key != nil {
				k = tc.key
			}
			grant := "urn:ietf:params:oauth:grant-type:jwt-bearer"
			if tc.grantType != "" {
				grant = tc.grantType
			}
			status, body := v.postToken(t, url.Values{"grant_type": {grant}, "assertion": {signJWT(t, k, header, claims)}})
			if status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", status, body, tc.wantStatus)
			}
			if tc.wantStatus == 200 {
				if tok, _ := body["access_token"].(string); !strings.HasPrefix(tok, "ya29.emu-") || body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) {
					t.Errorf("body = %v, want a Bearer token for 3600 s", body)
				}
				return
			}
			if body["error"] != tc.wantError || body["error_description"] != tc.wantDesc {
				t.Errorf("got %q %q, want %q %q", body["error"], body["error_description"], tc.wantError, tc.wantDesc)
			}
		})
	}
	// Only the successes are minted.
	if got := len(v.emu.Mints()); got != 4 {
		t.Errorf("Mints() has %d entries, want 4", got)
	}
}

func TestTokenEndpointDown(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	v.emu.SetTokenEndpointDown(true)
	_, err := v.tokenSource(t, "", chatapi.ScopeBot).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != 503 || !strings.Contains(string(re.Body), "temporarily_unavailable") {
		t.Fatalf("got %v, want a 503 RetrieveError with temporarily_unavailable", err)
	}
	v.emu.SetTokenEndpointDown(false)
	if _, err := v.tokenSource(t, "", chatapi.ScopeBot).Token(); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	status, body := v.postToken(t, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}})
	if status != 400 || body["error"] != "invalid_request" {
		t.Errorf("no assertion: got %d %v, want 400 invalid_request", status, body)
	}
}

func TestDelegation(t *testing.T) {
	v := newEnv(t, emulator.Config{Delegation: true, Spaces: []string{"spaces/AAAA"}})
	tok := v.token(t, "alice@example.com", chatapi.ScopeMessagesCreate)
	if m := v.emu.Mints(); len(m) != 1 || m[0].Subject != "alice@example.com" {
		t.Fatalf("Mints() = %+v, want one for alice@example.com", m)
	}
	status, _, body := v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"hi"}`)
	if status != 200 || !strings.Contains(string(body), `"users/alice@example.com"`) {
		t.Errorf("delegated create: %d %s", status, body)
	}

	// Google issues chat.bot with a subject; Chat refuses it.
	bad := v.token(t, "alice@example.com", chatapi.ScopeBot)
	status, _, body = v.do(t, "GET", "/v1/spaces/AAAA", bad, "", "")
	e, _ := chatapi.ParseError(body)
	if status != 403 || e == nil || !strings.HasPrefix(e.Message, "The API is called without service account credentials.") {
		t.Errorf("chat.bot with sub: %d %s", status, body)
	}

	v.emu.SetDelegation(false)
	if _, err := v.tokenSource(t, "alice@example.com", chatapi.ScopeMessagesCreate).Token(); err == nil || !strings.Contains(err.Error(), "unauthorized_client") {
		t.Errorf("delegation off: got %v, want unauthorized_client", err)
	}
}

func TestWaitForMints(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	done := make(chan error)
	go func() { done <- v.emu.WaitForMints(context.Background(), 2) }()
	v.token(t, "", chatapi.ScopeBot)
	v.token(t, "", chatapi.ScopeBot)
	if err := <-done; err != nil {
		t.Fatalf("WaitForMints: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- v.emu.WaitForMints(ctx, 3) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitForMints after cancel = %v, want context.Canceled", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		desc string
		cfg  emulator.Config
	}{
		{"space without prefix", emulator.Config{Spaces: []string{"AAAA"}}},
		{"space with slash", emulator.Config{Spaces: []string{"spaces/AA/BB"}}},
		{"approved chat.bot", emulator.Config{Approved: []chatapi.Scope{chatapi.ScopeBot}}},
		{"approved unknown", emulator.Config{Approved: []chatapi.Scope{"chat.app.nope"}}},
		{"negative lifetime", emulator.Config{TokenLifetime: -time.Second}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := emulator.New(tc.cfg); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}
