package emulator_test

import (
	"strings"
	"testing"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

func human(name string) *chat.Membership {
	return &chat.Membership{Member: &chat.User{Name: name, Type: "HUMAN"}}
}

func TestMembersWithAppAuth(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	svc := v.chat(t, chatapi.ScopeAppMemberships)

	// Not approved: Chat's own 403, for writes and reads alike.
	_, err := svc.Spaces.Members.Create(space, human("users/carol@example.com")).Do()
	wantAPIError(t, "create unapproved", err, 403, chatapi.MsgAdminApproval)
	_, err = svc.Spaces.Members.Delete(space + "/members/100000000000000000002").Do()
	wantAPIError(t, "delete unapproved", err, 403, chatapi.MsgAdminApproval)
	if n := len(listMembers(t, v)); n != 3 {
		t.Fatalf("%d members after refused calls, want the 3 seeded", n)
	}

	v.emu.Approve(chatapi.ScopeAppMemberships, true)
	m, err := svc.Spaces.Members.Create(space, human("users/carol@example.com")).Do()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if m.Name != space+"/members/carol@example.com" || m.Member.Name != "users/carol@example.com" || m.Member.Type != "HUMAN" ||
		m.Role != "ROLE_MEMBER" || m.State != "JOINED" || m.CreateTime == "" {
		t.Errorf("created = %+v %+v", m, m.Member)
	}
	_, err = svc.Spaces.Members.Create(space, human("users/carol@example.com")).Do()
	if g, e := apiError(t, err); g.Code != 409 || e.Status != "ALREADY_EXISTS" {
		t.Errorf("second create: %d %s", g.Code, e.Status)
	}
	for _, tc := range []struct {
		desc string
		in   *chat.Membership
	}{
		{"the app itself", &chat.Membership{Member: &chat.User{Name: "users/app", Type: "BOT"}}},
		{"another app", &chat.Membership{Member: &chat.User{Name: "users/other-app", Type: "BOT"}}},
		{"a group", &chat.Membership{GroupMember: &chat.Group{Name: "groups/eng"}}},
	} {
		t.Run("create "+tc.desc, func(t *testing.T) {
			_, err := svc.Spaces.Members.Create(space, tc.in).Do()
			if g, e := apiError(t, err); g.Code != 400 || e.Status != "INVALID_ARGUMENT" || !strings.Contains(e.Message, "app") {
				t.Errorf("%d %q, want 400 about apps", g.Code, e.Message)
			}
		})
	}
	_, err = svc.Spaces.Members.Create(space, &chat.Membership{Member: &chat.User{Name: "carol", Type: "HUMAN"}}).Do()
	if g, _ := apiError(t, err); g.Code != 400 {
		t.Errorf("member name without users/: %d, want 400", g.Code)
	}

	// Patch the role; the mask is required.
	p, err := svc.Spaces.Members.Patch(m.Name, &chat.Membership{Role: "ROLE_MANAGER"}).UpdateMask("role").Do()
	if err != nil || p.Role != "ROLE_MANAGER" {
		t.Errorf("patch = %+v, %v", p, err)
	}
	_, err = svc.Spaces.Members.Patch(m.Name, &chat.Membership{Role: "ROLE_MEMBER"}).Do()
	if g, _ := apiError(t, err); g.Code != 400 {
		t.Errorf("patch without updateMask: %d, want 400", g.Code)
	}

	// Delete answers the deleted membership; the email alias works.
	d, err := svc.Spaces.Members.Delete(space + "/members/Carol@Example.com").Do()
	if err != nil || d.Name != m.Name || d.Role != "ROLE_MANAGER" {
		t.Errorf("delete = %+v, %v", d, err)
	}
	_, err = svc.Spaces.Members.Delete(m.Name).Do()
	if g, _ := apiError(t, err); g.Code != 404 {
		t.Errorf("delete again: %d, want 404", g.Code)
	}
	_, err = svc.Spaces.Members.Delete(space + "/members/app").Do()
	if g, e := apiError(t, err); g.Code != 400 || !strings.Contains(e.Message, "app authentication") {
		t.Errorf("app removes itself with app auth: %d %q", g.Code, e.Message)
	}
	if n := len(listMembers(t, v)); n != 3 {
		t.Errorf("%d members at the end, want 3", n)
	}
}

func listMembers(t *testing.T, v *env) []*chat.Membership {
	t.Helper()
	list, err := v.chat(t, chatapi.ScopeBot).Spaces.Members.List(space).Do()
	if err != nil {
		t.Fatalf("members.list: %v", err)
	}
	return list.Memberships
}

func TestMembersWithUserAuth(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, DelegatedUsers: []string{"alice@example.com"}})
	v.emu.AddSpace("spaces/NOAPP", false)
	bot := v.chat(t, chatapi.ScopeBot)
	post := func() error {
		_, err := bot.Spaces.Messages.Create("spaces/NOAPP", &chat.Message{Text: "x"}).Do()
		return err
	}
	wantAPIError(t, "before the app is added", post(), 403, chatapi.MsgNotPermitted)

	// chat.memberships.app: alice adds the app, and only the app.
	appOnly := v.chatAs(t, "alice@example.com", chatapi.ScopeMembershipsApp)
	m, err := appOnly.Spaces.Members.Create("spaces/NOAPP", &chat.Membership{Member: &chat.User{Name: "users/app", Type: "BOT"}}).Do()
	if err != nil || m.Name != "spaces/NOAPP/members/app" || m.Member.Type != "BOT" {
		t.Fatalf("add the app = %+v, %v", m, err)
	}
	if err := post(); err != nil {
		t.Errorf("after the app was added: %v", err)
	}
	_, err = appOnly.Spaces.Members.Create("spaces/NOAPP", human("users/bob@example.com")).Do()
	wantAPIError(t, "a human with chat.memberships.app", err, 403, chatapi.MsgInsufficientScopes)

	// chat.memberships: humans, and the app too.
	full := v.chatAs(t, "alice@example.com", chatapi.ScopeMemberships)
	if _, err := full.Spaces.Members.Create("spaces/NOAPP", human("users/bob@example.com")).Do(); err != nil {
		t.Errorf("add bob: %v", err)
	}
	// chat.import: humans only.
	importer := v.chatAs(t, "alice@example.com", chatapi.ScopeImport)
	_, err = importer.Spaces.Members.Delete("spaces/NOAPP/members/app").Do()
	wantAPIError(t, "remove the app with chat.import", err, 403, chatapi.MsgInsufficientScopes)
	if _, err := importer.Spaces.Members.Delete("spaces/NOAPP/members/bob@example.com").Do(); err != nil {
		t.Errorf("remove bob with chat.import: %v", err)
	}

	// The app leaves again, and comes back.
	if d, err := appOnly.Spaces.Members.Delete("spaces/NOAPP/members/app").Do(); err != nil || d.Name != "spaces/NOAPP/members/app" {
		t.Errorf("remove the app = %+v, %v", d, err)
	}
	wantAPIError(t, "after the app was removed", post(), 403, chatapi.MsgNotPermitted)
	if _, err := full.Spaces.Members.Create("spaces/NOAPP", &chat.Membership{Member: &chat.User{Name: "users/app", Type: "BOT"}}).Do(); err != nil {
		t.Errorf("add the app with chat.memberships: %v", err)
	}
	if err := post(); err != nil {
		t.Errorf("after the app was added again: %v", err)
	}

	// Admin access: useAdminAccess with chat.admin.memberships.
	admin := v.chatAs(t, "alice@example.com", chatapi.ScopeAdminMemberships)
	if _, err := admin.Spaces.Members.Create(space, human("users/erin@example.com")).UseAdminAccess(true).Do(); err != nil {
		t.Errorf("admin adds erin: %v", err)
	}
	_, err = admin.Spaces.Members.Create(space, human("users/frank@example.com")).Do()
	wantAPIError(t, "admin scope without useAdminAccess", err, 403, chatapi.MsgInsufficientScopes)
}
