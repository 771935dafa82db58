package emulator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

const (
	evCreated        = "google.workspace.chat.message.v1.created"
	evUpdated        = "google.workspace.chat.message.v1.updated"
	evDeleted        = "google.workspace.chat.message.v1.deleted"
	evMemberCreated  = "google.workspace.chat.membership.v1.created"
	evMemberDeleted  = "google.workspace.chat.membership.v1.deleted"
	evReactionCreate = "google.workspace.chat.reaction.v1.created"
)

func types(events []*chat.SpaceEvent) string {
	var out []string
	for _, ev := range events {
		out = append(out, ev.EventType)
	}
	return fmt.Sprint(out)
}

func TestSpaceEvents(t *testing.T) {
	clock := newClock()
	v := newEnv(t, emulator.Config{Now: clock.Now, Spaces: []string{space},
		Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly, chatapi.ScopeAppMemberships}})
	bot := v.chat(t, chatapi.ScopeBot)
	msg, err := bot.Spaces.Messages.Create(space, &chat.Message{Text: "first"}).Do()
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := bot.Spaces.Messages.Patch(msg.Name, &chat.Message{Text: "edited"}).UpdateMask("text").Do(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := bot.Spaces.Messages.Delete(msg.Name).Do(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	members := v.chat(t, chatapi.ScopeAppMemberships)
	if _, err := members.Spaces.Members.Create(space, human("users/carol@example.com")).Do(); err != nil {
		t.Fatal(err)
	}
	if _, err := members.Spaces.Members.Delete(space + "/members/carol@example.com").Do(); err != nil {
		t.Fatal(err)
	}

	reader := v.chat(t, chatapi.ScopeAppMessagesReadonly)
	list, err := reader.Spaces.SpaceEvents.List(space).Filter(`event_types:"` + evCreated + `"`).Do()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.SpaceEvents) != 1 {
		t.Fatalf("created events = %s, want one", types(list.SpaceEvents))
	}
	ev := list.SpaceEvents[0]
	if ev.MessageCreatedEventData == nil || ev.MessageCreatedEventData.Message.Name != msg.Name ||
		ev.MessageCreatedEventData.Message.Text != "first" || ev.EventTime != msg.CreateTime {
		t.Errorf("event = %+v", ev)
	}
	got, err := reader.Spaces.SpaceEvents.Get(ev.Name).Do()
	if err != nil || got.Name != ev.Name || got.MessageCreatedEventData.Message.Name != msg.Name {
		t.Errorf("get = %+v, %v", got, err)
	}
	_, err = reader.Spaces.SpaceEvents.Get(space + "/spaceEvents/nope").Do()
	if g, _ := apiError(t, err); g.Code != 404 {
		t.Errorf("get unknown: %d, want 404", g.Code)
	}

	mixed := fmt.Sprintf(`event_types:"%s" OR event_types:"%s" OR event_types:"%s" OR event_types:"%s" OR event_types:"%s"`,
		evCreated, evUpdated, evDeleted, evMemberCreated, evMemberDeleted)
	// Message and membership events need a scope for each.
	_, err = reader.Spaces.SpaceEvents.List(space).Filter(mixed).Do()
	wantAPIError(t, "membership events with chat.app.messages.readonly alone", err, 403, chatapi.MsgInsufficientScopes)
	both := v.chat(t, chatapi.ScopeAppMessagesReadonly, chatapi.ScopeAppMemberships)
	all, err := both.Spaces.SpaceEvents.List(space).Filter(mixed).Do()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint([]string{evCreated, evUpdated, evDeleted, evMemberCreated, evMemberDeleted}); types(all.SpaceEvents) != want {
		t.Fatalf("all events:\n got %s\nwant %s", types(all.SpaceEvents), want)
	}
	if d := all.SpaceEvents[1].MessageUpdatedEventData; d == nil || d.Message.Text != "edited" {
		t.Errorf("updated payload = %+v", d)
	}
	if d := all.SpaceEvents[2].MessageDeletedEventData; d == nil || d.Message.Name != msg.Name || d.Message.DeletionMetadata == nil || d.Message.DeletionMetadata.DeletionType != "CREATOR" || d.Message.Text != "" {
		t.Errorf("deleted payload = %+v", d)
	}
	if d := all.SpaceEvents[3].MembershipCreatedEventData; d == nil || d.Membership.Member.Name != "users/carol@example.com" {
		t.Errorf("membership payload = %+v", d)
	}
	if d := all.SpaceEvents[4].MembershipDeletedEventData; d == nil || d.Membership.Name != space+"/members/carol@example.com" || d.Membership.State != "NOT_A_MEMBER" {
		t.Errorf("membership deleted payload = %+v", d)
	}

	// start_time is exclusive: after the create, the rest.
	since, err := reader.Spaces.SpaceEvents.List(space).Filter(fmt.Sprintf(
		`start_time="%s" AND (event_types:"%s" OR event_types:"%s")`, msg.CreateTime, evCreated, evUpdated)).Do()
	if err != nil || types(since.SpaceEvents) != fmt.Sprint([]string{evUpdated}) {
		t.Errorf("since = %v, %v", since, err)
	}

	// Chat requires a filter with at least one event type.
	for _, tc := range []struct{ name, filter string }{
		{"no filter", ""},
		{"a time alone", `start_time="` + msg.CreateTime + `"`},
		{"event types joined with AND", `event_types:"` + evCreated + `" AND event_types:"` + evUpdated + `"`},
		{"unknown event type", `event_types:"google.workspace.chat.nothing.v1.created"`},
		{"= instead of :", `event_types = "` + evCreated + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reader.Spaces.SpaceEvents.List(space).Filter(tc.filter).Do()
			if g, e := apiError(t, err); g.Code != 400 || e.Status != "INVALID_ARGUMENT" {
				t.Errorf("filter %q: %d %s, want 400 INVALID_ARGUMENT", tc.filter, g.Code, e.Status)
			}
		})
	}
}

func TestSpaceEventsPagingAndAccess(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Delegation: true})
	bot := v.chat(t, chatapi.ScopeBot)
	names := postMessages(t, bot, 5, nil)
	filter := `event_types:"` + evCreated + `"`

	// A chat.app.* scope that reads message events, unapproved, then
	// approved.
	messages := v.chat(t, chatapi.ScopeAppMessagesReadonly)
	_, err := messages.Spaces.SpaceEvents.List(space).Filter(filter).Do()
	wantAPIError(t, "unapproved chat.app.messages.readonly", err, 403, chatapi.MsgAdminApproval)
	v.emu.Approve(chatapi.ScopeAppMessagesReadonly, true)

	// A scope the method accepts, approved, but for other kinds of event:
	// Chat wants one that reads the kind the filter asks for.
	v.emu.Approve(chatapi.ScopeAppSpacesReadonly, true)
	spacesOnly := v.chat(t, chatapi.ScopeAppSpacesReadonly)
	_, err = spacesOnly.Spaces.SpaceEvents.List(space).Filter(filter).Do()
	wantAPIError(t, "message events with chat.app.spaces.readonly", err, 403, chatapi.MsgInsufficientScopes)

	// chat.bot is not among them.
	_, err = bot.Spaces.SpaceEvents.List(space).Filter(filter).Do()
	wantAPIError(t, "chat.bot", err, 403, chatapi.MsgInsufficientScopes)

	for _, tc := range []struct {
		name string
		svc  *chat.Service
	}{
		{"approved chat.app.messages.readonly", messages},
		{"a user with chat.messages.readonly", v.chatAs(t, "alice@example.com", chatapi.ScopeMessagesReadonly)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pages []int
			var seen []string
			err := tc.svc.Spaces.SpaceEvents.List(space).Filter(filter).PageSize(2).Pages(context.Background(), func(r *chat.ListSpaceEventsResponse) error {
				pages = append(pages, len(r.SpaceEvents))
				for _, ev := range r.SpaceEvents {
					seen = append(seen, ev.MessageCreatedEventData.Message.Name)
				}
				return nil
			})
			if err != nil || fmt.Sprint(pages) != "[2 2 1]" || fmt.Sprint(seen) != fmt.Sprint(names) {
				t.Errorf("pages %v %v (%v), want [2 2 1] in creation order", pages, seen, err)
			}
		})
	}
}
