package emulator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// TestListsPageThrough walks every paged list to its end with the Go
// client's Pages, at page sizes from 1 to past the end: each item comes
// exactly once, in the order of one unpaged call; every page but the last
// is full; only the last has no next token.
func TestListsPageThrough(t *testing.T) {
	v := newEnv(t, emulator.Config{
		Spaces:         []string{space},
		DelegatedUsers: []string{"alice@example.com"},
		Approved:       []chatapi.Scope{chatapi.ScopeAppMemberships, chatapi.ScopeAppMessagesReadonly},
	})
	ctx := context.Background()
	bot := v.chat(t, chatapi.ScopeBot)
	alice := v.chatAs(t, "alice@example.com", chatapi.ScopeMessagesReactions)
	members := v.chat(t, chatapi.ScopeAppMemberships)
	reader := v.chat(t, chatapi.ScopeAppMessagesReadonly)

	first := postMessages(t, bot, 5, func(i int) { v.emu.AddSpace(fmt.Sprintf("spaces/PAGE%d", i), true) })[0]
	for _, emoji := range []string{"🙂", "👍", "🎉", "🚀"} {
		if _, err := alice.Spaces.Messages.Reactions.Create(first, &chat.Reaction{Emoji: &chat.Emoji{Unicode: emoji}}).Do(); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []string{"carol", "dave"} {
		if _, err := members.Spaces.Members.Create(space, human("users/"+user+"@example.com")).Do(); err != nil {
			t.Fatal(err)
		}
	}

	// Each list: one page of up to size items, as names and the next token.
	lists := map[string]pager{
		"spaces.messages.list": pagerOf(func(size int64, token string) (*chat.ListMessagesResponse, error) {
			return reader.Spaces.Messages.List(space).PageSize(size).PageToken(token).Do()
		}, messageNames),
		"spaces.messages.list, newest first": pagerOf(func(size int64, token string) (*chat.ListMessagesResponse, error) {
			return reader.Spaces.Messages.List(space).OrderBy("createTime desc").PageSize(size).PageToken(token).Do()
		}, messageNames),
		"spaces.list": pagerOf(func(size int64, token string) (*chat.ListSpacesResponse, error) {
			return bot.Spaces.List().PageSize(size).PageToken(token).Do()
		}, func(r *chat.ListSpacesResponse) ([]string, string) {
			return names(r.Spaces, func(s *chat.Space) string { return s.Name }), r.NextPageToken
		}),
		"spaces.members.list": pagerOf(func(size int64, token string) (*chat.ListMembershipsResponse, error) {
			return members.Spaces.Members.List(space).PageSize(size).PageToken(token).Do()
		}, func(r *chat.ListMembershipsResponse) ([]string, string) {
			return names(r.Memberships, func(m *chat.Membership) string { return m.Name }), r.NextPageToken
		}),
		"spaces.messages.reactions.list": pagerOf(func(size int64, token string) (*chat.ListReactionsResponse, error) {
			return alice.Spaces.Messages.Reactions.List(first).PageSize(size).PageToken(token).Do()
		}, func(r *chat.ListReactionsResponse) ([]string, string) {
			return names(r.Reactions, func(x *chat.Reaction) string { return x.Name }), r.NextPageToken
		}),
	}
	for name, list := range lists {
		t.Run(name, func(t *testing.T) {
			all, next, err := list(1000, "")
			if err != nil || next != "" || len(all) < 4 {
				t.Fatalf("unpaged: %d items, next %q, %v; want at least 4 and no next token", len(all), next, err)
			}
			if name == "spaces.messages.list, newest first" && all[len(all)-1] != first {
				t.Fatalf("newest first ends with %s, want the first message %s", all[len(all)-1], first)
			}
			for size := int64(1); size <= int64(len(all))+1; size++ {
				var got []string
				token := ""
				for pages := 1; ; pages++ {
					page, next, err := list(size, token)
					if err != nil {
						t.Fatalf("size %d, page %d: %v", size, pages, err)
					}
					got = append(got, page...)
					if next == "" {
						if len(page) == 0 && pages > 1 {
							t.Errorf("size %d: page %d is empty; the page before it should have had no token", size, pages)
						}
						break
					}
					if int64(len(page)) != size {
						t.Errorf("size %d: page %d has %d items and a next token", size, pages, len(page))
					}
					if pages > len(all)+1 {
						t.Fatalf("size %d: more pages than items", size)
					}
					token = next
				}
				if !slices.Equal(got, all) {
					t.Errorf("size %d: paged %v, want %v", size, got, all)
				}
			}
		})
	}

	// The Go client's own page walker gets the same.
	var walked []string
	err := reader.Spaces.Messages.List(space).PageSize(2).Pages(ctx, func(r *chat.ListMessagesResponse) error {
		page, _ := messageNames(r)
		walked = append(walked, page...)
		return nil
	})
	if err != nil || len(walked) != 5 || walked[0] != first {
		t.Errorf("Pages: %v, %v; want the 5 messages, oldest first", walked, err)
	}
	// A token from one list is refused by another.
	_, token, err := lists["spaces.list"](1, "")
	if err != nil || token == "" {
		t.Fatalf("spaces.list page 1: %v, token %q", err, token)
	}
	_, err = reader.Spaces.Messages.List(space).PageToken(token).Do()
	if g, _ := apiError(t, err); g.Code != 400 {
		t.Errorf("a spaces.list token in messages.list: %d, want 400", g.Code)
	}
}

func names[T any](items []T, name func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = name(it)
	}
	return out
}

// pager lists one page of up to size items, as names, and the next token.
type pager func(size int64, token string) ([]string, string, error)

// pagerOf makes a pager of a list call and what reads its answer.
func pagerOf[R any](list func(size int64, token string) (R, error), read func(R) ([]string, string)) pager {
	return func(size int64, token string) ([]string, string, error) {
		r, err := list(size, token)
		if err != nil {
			return nil, "", err
		}
		page, next := read(r)
		return page, next, nil
	}
}

func messageNames(r *chat.ListMessagesResponse) ([]string, string) {
	return names(r.Messages, func(m *chat.Message) string { return m.Name }), r.NextPageToken
}
