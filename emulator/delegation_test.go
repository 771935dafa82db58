package emulator_test

import (
	"testing"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// wantNoDWD checks that minting for subject gets exactly Google's refusal
// of a subject the service account may not impersonate.
func (v *env) wantNoDWD(t *testing.T, subject string) {
	t.Helper()
	status, body := v.mintError(t, subject, chatapi.ScopeMessagesReactionsCreate)
	if status != 401 || body["error"] != "unauthorized_client" || body["error_description"] != descNoDWD || len(body) != 2 {
		t.Errorf("mint for %s: %d %v, want 401 unauthorized_client %q", subject, status, body, descNoDWD)
	}
}

func TestDelegationPerUser(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, DelegatedUsers: []string{"Alice@Example.com"}})

	// alice (any case) may be a subject and calls a user-only method.
	msg, err := v.chatAs(t, "alice@example.com", chatapi.ScopeMessagesCreate).Spaces.Messages.Create(space, &chat.Message{Text: "hi"}).Do()
	if err != nil {
		t.Fatalf("alice creates a message: %v", err)
	}
	alice := v.chatAs(t, "ALICE@example.com", chatapi.ScopeMessagesReactionsCreate)
	r, err := alice.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🙂"}}).Do()
	if err != nil {
		t.Fatalf("alice reacts: %v", err)
	}
	if r.User == nil || r.User.Name != "users/ALICE@example.com" {
		t.Errorf("reaction user = %+v, want users/ALICE@example.com", r.User)
	}

	// bob is not delegated to.
	v.wantNoDWD(t, "bob@example.com")
	if n := len(v.emu.Mints()); n != 2 {
		t.Errorf("%d mints, want 2: a refused subject is not minted", n)
	}

	// Per-user changes take effect for the next assertion.
	v.emu.SetUserDelegation("bob@example.com", true)
	if _, err := v.tokenSource(t, "bob@example.com", chatapi.ScopeMessagesCreate).Token(); err != nil {
		t.Errorf("bob after SetUserDelegation(bob, true): %v", err)
	}
	v.emu.SetUserDelegation("alice@example.com", false)
	v.wantNoDWD(t, "alice@example.com")
	// alice's token issued before keeps working, as at Google.
	if _, err := alice.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🎉"}}).Do(); err != nil {
		t.Errorf("alice's earlier token after her delegation ended: %v", err)
	}

	// Without a subject nothing changes.
	if _, err := v.tokenSource(t, "", chatapi.ScopeBot).Token(); err != nil {
		t.Errorf("app token: %v", err)
	}
}

func TestDelegationAllThenPerUser(t *testing.T) {
	v := newEnv(t, emulator.Config{Delegation: true})
	for _, u := range []string{"carol@example.com", "dave@example.org"} {
		t.Run(u+" with Delegation on", func(t *testing.T) {
			if _, err := v.tokenSource(t, u, chatapi.ScopeSpacesReadonly).Token(); err != nil {
				t.Error(err)
			}
		})
	}
	// The first SetUserDelegation narrows "everyone" to the users named.
	v.emu.SetUserDelegation("carol@example.com", true)
	if _, err := v.tokenSource(t, "carol@example.com", chatapi.ScopeSpacesReadonly).Token(); err != nil {
		t.Errorf("carol: %v", err)
	}
	v.wantNoDWD(t, "dave@example.org")
	// SetDelegation is all or nothing again.
	v.emu.SetDelegation(true)
	if _, err := v.tokenSource(t, "dave@example.org", chatapi.ScopeSpacesReadonly).Token(); err != nil {
		t.Errorf("dave after SetDelegation(true): %v", err)
	}
	v.emu.SetDelegation(false)
	v.wantNoDWD(t, "carol@example.com")

	// chat.bot with a subject is minted, and refused by Chat.
	v.emu.SetUserDelegation("carol@example.com", true)
	tok := v.token(t, "carol@example.com", chatapi.ScopeBot)
	v.emu.AddSpace(space, true)
	status, _, body := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", "")
	e, _ := chatapi.ParseError(body)
	if status != 403 || e == nil || e.Message != "The API is called without service account credentials. Instructions on how to set this up can be found at https://developers.google.com/hangouts/chat/how-tos/service-accounts" {
		t.Errorf("chat.bot with sub: %d %s", status, body)
	}
}

func TestNewRejectsBadDelegatedUser(t *testing.T) {
	for _, tc := range []struct{ name, user string }{
		{"empty", ""},
		{"no domain", "alice"},
		{"no local part", "@example.com"},
		{"empty domain", "alice@"},
		{"a space", "a b@example.com"},
		{"a user name", "users/alice@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := emulator.New(emulator.Config{DelegatedUsers: []string{tc.user}}); err == nil {
				t.Errorf("DelegatedUsers %q: New succeeded, want an error", tc.user)
			}
		})
	}
}
