package emulator_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

func TestReactions(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, DelegatedUsers: []string{"alice@example.com", "bob@example.com"}})
	msg, err := v.chat(t, chatapi.ScopeBot).Spaces.Messages.Create(space, &chat.Message{Text: "ship it?"}).Do()
	if err != nil {
		t.Fatal(err)
	}
	alice := v.chatAs(t, "alice@example.com", chatapi.ScopeMessagesReactions)
	bob := v.chatAs(t, "bob@example.com", chatapi.ScopeMessagesReactionsCreate)

	r, err := alice.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🙂"}}).Do()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(r.Name, msg.Name+"/reactions/") || r.User == nil || r.User.Name != "users/alice@example.com" ||
		r.Emoji == nil || r.Emoji.Unicode != "🙂" {
		t.Errorf("reaction = %+v", r)
	}
	_, err = alice.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🙂"}}).Do()
	if g, e := apiError(t, err); g.Code != 409 || e.Status != "ALREADY_EXISTS" {
		t.Errorf("same reaction twice: %d %s", g.Code, e.Status)
	}
	if _, err := bob.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🙂"}}).Do(); err != nil {
		t.Errorf("bob reacts: %v", err)
	}
	if _, err := bob.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "👍"}}).Do(); err != nil {
		t.Errorf("bob reacts again: %v", err)
	}
	_, err = bob.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{}).Do()
	if g, _ := apiError(t, err); g.Code != 400 {
		t.Errorf("no emoji: %d, want 400", g.Code)
	}
	_, err = bob.Spaces.Messages.Reactions.Create(space+"/messages/nope", &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🙂"}}).Do()
	if g, _ := apiError(t, err); g.Code != 404 {
		t.Errorf("unknown message: %d, want 404", g.Code)
	}

	list, err := alice.Spaces.Messages.Reactions.List(msg.Name).Do()
	if err != nil || len(list.Reactions) != 3 || list.Reactions[0].Name != r.Name {
		t.Fatalf("list = %+v, %v", list, err)
	}
	smiles, err := alice.Spaces.Messages.Reactions.List(msg.Name).Filter(`emoji.unicode = "🙂"`).Do()
	if err != nil || len(smiles.Reactions) != 2 {
		t.Errorf("filtered by emoji: %+v, %v", smiles, err)
	}
	bobs, err := alice.Spaces.Messages.Reactions.List(msg.Name).
		Filter(`(emoji.unicode = "🙂" OR emoji.unicode = "👍") AND user.name = "users/bob@example.com"`).PageSize(1).Do()
	if err != nil || len(bobs.Reactions) != 1 || bobs.NextPageToken == "" {
		t.Errorf("filtered by user, page 1: %+v, %v", bobs, err)
	}

	// The message shows the summary.
	got, err := v.chat(t, chatapi.ScopeBot).Spaces.Messages.Get(msg.Name).Do()
	if err != nil || len(got.EmojiReactionSummaries) != 2 || got.EmojiReactionSummaries[0].Emoji.Unicode != "🙂" ||
		got.EmojiReactionSummaries[0].ReactionCount != 2 {
		t.Errorf("summaries = %+v, %v", got.EmojiReactionSummaries, err)
	}

	// Only the user who reacted deletes a reaction.
	bobDeletes := v.chatAs(t, "bob@example.com", chatapi.ScopeMessagesReactions)
	_, err = bobDeletes.Spaces.Messages.Reactions.Delete(r.Name).Do()
	if g, _ := apiError(t, err); g.Code != 403 {
		t.Errorf("bob deletes alice's reaction: %d, want 403", g.Code)
	}
	if _, err := alice.Spaces.Messages.Reactions.Delete(r.Name).Do(); err != nil {
		t.Errorf("alice deletes hers: %v", err)
	}
	if list, _ := alice.Spaces.Messages.Reactions.List(msg.Name).Do(); len(list.Reactions) != 2 {
		t.Errorf("%d reactions after delete, want 2", len(list.Reactions))
	}
	_, err = alice.Spaces.Messages.Reactions.Delete(r.Name).Do()
	if g, _ := apiError(t, err); g.Code != 404 {
		t.Errorf("delete again: %d, want 404", g.Code)
	}

	// Reactions are space events too.
	events, err := alice.Spaces.SpaceEvents.List(space).Filter(`event_types:"` + evReactionCreate + `"`).Do()
	if err != nil || len(events.SpaceEvents) != 3 || events.SpaceEvents[0].ReactionCreatedEventData.Reaction.Name != r.Name {
		t.Errorf("reaction events = %+v, %v", events, err)
	}

	// The app reacts as itself with chat.bot, as Chat's discovery
	// document allows, and lists what it may see.
	appSvc := v.chat(t, chatapi.ScopeBot)
	mine, err := appSvc.Spaces.Messages.Reactions.Create(msg.Name, &chat.Reaction{Emoji: &chat.Emoji{Unicode: "🙂"}}).Do()
	if err != nil || mine.User == nil || mine.User.Name != "users/app" {
		t.Fatalf("reactions.create with chat.bot: %+v, %v; want a reaction by users/app", mine, err)
	}
	listed, err := appSvc.Spaces.Messages.Reactions.List(msg.Name).Do()
	if err != nil || !slices.ContainsFunc(listed.Reactions, func(r *chat.Reaction) bool { return r.Name == mine.Name }) {
		t.Errorf("reactions.list with chat.bot: %v; want the app's reaction among %d", err, len(listed.Reactions))
	}
	if _, err := appSvc.Spaces.Messages.Reactions.Delete(mine.Name).Do(); err != nil {
		t.Errorf("reactions.delete of its own with chat.bot: %v", err)
	}
	// The narrow create scope does not list.
	_, err = bob.Spaces.Messages.Reactions.List(msg.Name).Do()
	wantAPIError(t, "reactions.list with reactions.create", err, 403, chatapi.MsgInsufficientScopes)
}
