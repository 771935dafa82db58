package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/chat/v1"
	iamcredentials "google.golang.org/api/iamcredentials/v1"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// podToken gets a token of the pod's own identity from the metadata
// server, as Google's libraries do.
func (v *env) podToken(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest("GET", v.srv.URL+"/computeMetadata/v1/instance/service-accounts/default/token?scopes="+url.QueryEscape("https://www.googleapis.com/auth/cloud-platform"), nil)
	req.Header.Set("Metadata-Flavor", "Google")
	resp, err := v.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" || tok.ExpiresIn != 3600 || tok.TokenType != "Bearer" || resp.Header.Get("Metadata-Flavor") != "Google" {
		t.Fatalf("metadata token: %d %+v %v", resp.StatusCode, tok, err)
	}
	return tok.AccessToken
}

// iam is Google's IAM Credentials client, calling the emulator with
// token as the caller's own.
func (v *env) iam(t *testing.T, token string) *iamcredentials.ProjectsServiceAccountsService {
	t.Helper()
	svc, err := iamcredentials.NewService(context.Background(), option.WithEndpoint(v.srv.URL+"/"),
		option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"})))
	if err != nil {
		t.Fatal(err)
	}
	return svc.Projects.ServiceAccounts
}

func TestMetadataServer(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	tests := []struct {
		desc, path string
		flavor     bool
		wantStatus int
		wantBody   string
	}{
		{"email", "/computeMetadata/v1/instance/service-accounts/default/email", true, 200, v.emu.MetadataEmail()},
		{"project", "/computeMetadata/v1/project/project-id", true, 200, "chat-broker-emulator"},
		{"no Metadata-Flavor", "/computeMetadata/v1/instance/service-accounts/default/token", false, 403, `Missing required header "Metadata-Flavor": "Google"` + "\n"},
		{"unknown", "/computeMetadata/v1/instance/zone", true, 404, "Not Found\n"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			req, _ := http.NewRequest("GET", v.srv.URL+tc.path, nil)
			if tc.flavor {
				req.Header.Set("Metadata-Flavor", "Google")
			}
			status, _, body := v.roundTrip(t, req)
			if status != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	if v.emu.MetadataEmail() != "chat-broker@chat-broker-emulator.iam.gserviceaccount.com" {
		t.Errorf("MetadataEmail = %q", v.emu.MetadataEmail())
	}
}

// generateAccessToken and signJwt, through Google's own client: the
// caller's token must be the metadata server's, its token-creator grant
// in place and the API enabled; what they issue and sign, Chat and the
// token endpoint take.
func TestIAMCredentials(t *testing.T) {
	clock := newClock()
	v := newEnv(t, emulator.Config{Now: clock.Now, Spaces: []string{"spaces/AAAA"}, Delegation: true})
	v.emu.SetTokenLifetime(2 * time.Minute)
	pod := v.podToken(t)
	name := "projects/-/serviceAccounts/" + v.emu.ClientEmail()
	bot := []string{chatapi.ScopeBot.URL()}

	t.Run("generateAccessToken", func(t *testing.T) {
		resp, err := v.iam(t, pod).GenerateAccessToken(name, &iamcredentials.GenerateAccessTokenRequest{Scope: bot, Lifetime: "3600s"}).Do()
		if err != nil {
			t.Fatal(err)
		}
		if want := clock.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339); resp.ExpireTime != want {
			t.Errorf("expireTime = %s, want %s (the emulator's lifetime, shorter than asked)", resp.ExpireTime, want)
		}
		svc, err := chat.NewService(context.Background(), option.WithEndpoint(v.srv.URL+"/"),
			option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: resp.AccessToken})))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Spaces.Get("spaces/AAAA").Do(); err != nil {
			t.Errorf("Chat with the token: %v", err)
		}
		if m := v.emu.Mints(); len(m) != 1 || m[0].Via != "generateAccessToken" {
			t.Errorf("mints = %+v, want one via generateAccessToken", m)
		}
	})

	t.Run("signJwt then the token endpoint", func(t *testing.T) {
		now := clock.Now().Unix()
		claims := fmt.Sprintf(`{"iss":%q,"sub":"alice@example.com","scope":%q,"aud":%q,"iat":%d,"exp":%d}`,
			v.emu.ClientEmail(), "https://www.googleapis.com/auth/chat.messages.readonly", v.srv.URL+"/token", now, now+3600)
		resp, err := v.iam(t, pod).SignJwt(name, &iamcredentials.SignJwtRequest{Payload: claims}).Do()
		if err != nil {
			t.Fatal(err)
		}
		status, body := v.postToken(t, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {resp.SignedJwt}})
		if status != 200 || body["access_token"] == nil {
			t.Fatalf("token endpoint: %d %v", status, body)
		}
		m := v.emu.Mints()
		if last := m[len(m)-1]; last.Via != "signJwt" || last.Subject != "alice@example.com" {
			t.Errorf("mint = %+v, want via signJwt for alice", last)
		}
	})

	refusals := []struct {
		desc       string
		token      string
		set        func()
		wantStatus int
		wantReason string
	}{
		{"no caller token", "", nil, 401, "ACCESS_TOKEN_TYPE_UNSUPPORTED"},
		{"a Chat token is no caller token", v.token(t, "", chatapi.ScopeBot), nil, 401, "ACCESS_TOKEN_TYPE_UNSUPPORTED"},
		{"grant withdrawn", pod, func() { v.emu.SetTokenCreator(false) }, 403, "IAM_PERMISSION_DENIED"},
		{"API disabled", pod, func() { v.emu.SetTokenCreator(true); v.emu.SetIAMCredentialsAPI(false) }, 403, "SERVICE_DISABLED"},
	}
	for _, tc := range refusals {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.set != nil {
				tc.set()
			}
			for _, call := range []func() error{
				func() error {
					_, err := v.iam(t, tc.token).GenerateAccessToken(name, &iamcredentials.GenerateAccessTokenRequest{Scope: bot}).Do()
					return err
				},
				func() error {
					_, err := v.iam(t, tc.token).SignJwt(name, &iamcredentials.SignJwtRequest{Payload: "{}"}).Do()
					return err
				},
			} {
				g, e := apiError(t, call())
				if g.Code != tc.wantStatus || reason(e) != tc.wantReason {
					t.Errorf("got %d %q, want %d %s", g.Code, reason(e), tc.wantStatus, tc.wantReason)
				}
			}
		})
	}
}

// The control API withdraws and restores the grant, and disables the API.
func TestAdminIAM(t *testing.T) {
	v := newEnv(t, emulator.Config{})
	status, out := v.admin(t, "GET", "/emulator/iam", "")
	if status != 200 || out["tokenCreator"] != true || out["apiEnabled"] != true || out["caller"] != v.emu.MetadataEmail() {
		t.Fatalf("GET /emulator/iam = %d %v", status, out)
	}
	status, out = v.admin(t, "POST", "/emulator/iam", `{"tokenCreator":false}`)
	if status != 200 || out["tokenCreator"] != false || out["apiEnabled"] != true {
		t.Fatalf("POST tokenCreator false = %d %v", status, out)
	}
	name := "projects/-/serviceAccounts/" + v.emu.ClientEmail()
	_, err := v.iam(t, v.podToken(t)).GenerateAccessToken(name, &iamcredentials.GenerateAccessTokenRequest{Scope: []string{chatapi.ScopeBot.URL()}}).Do()
	if g, _ := apiError(t, err); g.Code != 403 {
		t.Errorf("after withdrawing: %d, want 403", g.Code)
	}
	if status, _ = v.admin(t, "POST", "/emulator/iam", `{}`); status != 400 {
		t.Errorf("POST {} = %d, want 400", status)
	}
}
