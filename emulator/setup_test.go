package emulator_test

import (
	"slices"
	"testing"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

func TestSpacesSetup(t *testing.T) {
	v := newEnv(t, emulator.Config{DelegatedUsers: []string{"alice@example.com"}})
	alice := v.chatAs(t, "alice@example.com", chatapi.ScopeSpacesCreate)
	req := &chat.SetUpSpaceRequest{
		Space:       &chat.Space{SpaceType: "SPACE", DisplayName: "Launch"},
		RequestId:   "setup-1",
		Memberships: []*chat.Membership{human("users/bob@example.com")},
	}
	sp, err := alice.Spaces.Setup(req).Do()
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if sp.SpaceType != "SPACE" || sp.DisplayName != "Launch" || !slices.Contains(v.emu.Spaces(), sp.Name) {
		t.Errorf("space = %+v", sp)
	}
	again, err := alice.Spaces.Setup(req).Do()
	if err != nil || again.Name != sp.Name {
		t.Errorf("same requestId: %+v, %v; want %s", again, err, sp.Name)
	}
	req.RequestId = "setup-2"
	_, err = alice.Spaces.Setup(req).Do()
	if g, _ := apiError(t, err); g.Code != 409 {
		t.Errorf("same display name, new requestId: %d, want 409", g.Code)
	}

	// The caller is a manager, the invited users members; no seeded people.
	list, err := v.chatAs(t, "alice@example.com", chatapi.ScopeMembershipsReadonly).Spaces.Members.List(sp.Name).Do()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range list.Memberships {
		got = append(got, m.Member.Name+" "+m.Role)
	}
	if want := []string{"users/alice@example.com ROLE_MANAGER", "users/bob@example.com ROLE_MEMBER"}; !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}

	// A direct message with bob exists once.
	dm := &chat.SetUpSpaceRequest{Space: &chat.Space{SpaceType: "DIRECT_MESSAGE"}, Memberships: []*chat.Membership{human("users/bob@example.com")}}
	first, err := alice.Spaces.Setup(dm).Do()
	if err != nil || first.SpaceType != "DIRECT_MESSAGE" {
		t.Fatalf("dm = %+v, %v", first, err)
	}
	if second, err := alice.Spaces.Setup(dm).Do(); err != nil || second.Name != first.Name {
		t.Errorf("dm again = %+v, %v; want %s", second, err, first.Name)
	}

	// A direct message with the app makes the app a member.
	botDM, err := alice.Spaces.Setup(&chat.SetUpSpaceRequest{Space: &chat.Space{SpaceType: "DIRECT_MESSAGE", SingleUserBotDm: true}}).Do()
	if err != nil {
		t.Fatalf("bot dm: %v", err)
	}
	if _, err := v.chat(t, chatapi.ScopeBot).Spaces.Messages.Create(botDM.Name, &chat.Message{Text: "hello"}).Do(); err != nil {
		t.Errorf("the app posts in its DM: %v", err)
	}

	for _, tc := range []struct {
		desc string
		req  *chat.SetUpSpaceRequest
	}{
		{"no space type", &chat.SetUpSpaceRequest{Space: &chat.Space{DisplayName: "x"}}},
		{"space without name", &chat.SetUpSpaceRequest{Space: &chat.Space{SpaceType: "SPACE"}}},
		{"group chat of one", &chat.SetUpSpaceRequest{Space: &chat.Space{SpaceType: "GROUP_CHAT"}, Memberships: []*chat.Membership{human("users/bob@example.com")}}},
		{"app as member", &chat.SetUpSpaceRequest{Space: &chat.Space{SpaceType: "SPACE", DisplayName: "y"},
			Memberships: []*chat.Membership{{Member: &chat.User{Name: "users/app", Type: "BOT"}}}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := alice.Spaces.Setup(tc.req).Do()
			if g, e := apiError(t, err); g.Code != 400 || e.Status != "INVALID_ARGUMENT" {
				t.Errorf("%d %s, want 400", g.Code, e.Status)
			}
		})
	}

	_, err = v.chat(t, chatapi.ScopeBot).Spaces.Setup(req).Do()
	wantAPIError(t, "setup with an app token", err, 403, chatapi.MsgUserAuthOnly)
}
