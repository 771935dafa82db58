package chatapi

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSearchSpaces(t *testing.T) {
	for _, tc := range []struct {
		name, filter string
		want         []string
		wantErr      string
	}{
		{"no space term", `"pending reports" AND create_time >= "2023-01-01T00:00:00Z"`, nil, ""},
		{"one space", `tasks AND space.name = "spaces/AAAA" AND has_link()`, []string{"spaces/AAAA"}, ""},
		{"bare value", `space.name = spaces/AAAA is_unread()`, []string{"spaces/AAAA"}, ""},
		{"two spaces in a group", `(space.name = "spaces/A" OR space.name = "spaces/B") AND urgent`, []string{"spaces/A", "spaces/B"}, ""},
		{"two spaces ungrouped", `space.name = "spaces/A" OR space.name = "spaces/B"`, []string{"spaces/A", "spaces/B"}, ""},
		{"a phrase that looks like a term", `"space.name = spaces/A"`, nil, ""},
		{"display name only", `space.display_name:Project tasks`, nil, ""},
		{"OR with a keyword", `space.name = "spaces/A" OR tasks`, nil, "OR joins a space.name term"},
		{"keyword OR space", `tasks OR space.name = "spaces/A"`, nil, "OR joins a space.name term"},
		{"OR inside a group", `(space.name = "spaces/A" OR sender.name = "users/1")`, nil, "OR joins a space.name term"},
		{"OR of groups", `(space.name = "spaces/A") OR (space.name = "spaces/B")`, nil, "OR joins a space.name term"},
		{"OR with a group holding a space", `tasks OR (space.name = "spaces/B")`, nil, "OR joins a space.name term"},
		{"NOT", `NOT space.name = "spaces/A"`, nil, "negated"},
		{"minus", `-space.name = "spaces/A"`, nil, "negated"},
		{"minus apart", `- space.name = "spaces/A"`, nil, "negated"},
		{"NOT group", `NOT (space.name = "spaces/A" OR space.name = "spaces/B")`, nil, "negated group"},
		{"minus group", `-(space.name = "spaces/A")`, nil, "negated group"},
		{"other operator", `space.name != "spaces/A"`, nil, "followed by ="},
		{"has operator", `space.name:spaces/A`, nil, "followed by ="},
		{"wildcard space", `space.name = "spaces/-"`, nil, "must be a space name"},
		{"not a space", `space.name = "users/1"`, nil, "must be a space name"},
		{"other spelling", `Space.Name = "spaces/A"`, nil, "write the field as space.name"},
		{"single quotes", `space.name = 'spaces/A'`, nil, "double quotes"},
		{"unterminated", `space.name = "spaces/A`, nil, "unterminated string"},
		{"unbalanced", `(space.name = "spaces/A"`, nil, "unbalanced"},
		{"too long", strings.Repeat("a ", maxFilter), nil, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SearchSpaces(tc.filter)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("SearchSpaces(%q) = %v, %v; want an error containing %q", tc.filter, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("SearchSpaces(%q) = %v, %v; want %v", tc.filter, got, err, tc.want)
			}
		})
	}
}

func TestSpaceEventNeeds(t *testing.T) {
	for _, tc := range []struct {
		name, filter string
		want         []string // What of each need
		wantErr      string
	}{
		{"messages", `event_types:"google.workspace.chat.message.v1.created"`, []string{"message events"}, ""},
		{"mixed with times", `start_time="2023-08-23T19:20:33+00:00" AND (event_types:"google.workspace.chat.space.v1.updated" OR event_types:"google.workspace.chat.message.v1.created")`,
			[]string{"message events", "space events"}, ""},
		{"same kind twice", `event_types:"google.workspace.chat.membership.v1.created" OR event_types:"google.workspace.chat.membership.v1.deleted"`, []string{"membership events"}, ""},
		{"reactions, bare value", `event_types:google.workspace.chat.reaction.v1.created`, []string{"reaction events"}, ""},
		{"no event type", `start_time="2023-08-23T19:20:33+00:00"`, nil, "names no event type"},
		{"unknown kind", `event_types:"google.workspace.chat.thread.v1.created"`, nil, "not a Chat event type"},
		{"not Chat's", `event_types:"google.workspace.drive.file.v1.created"`, nil, "not a Chat event type"},
		{"other spelling", `EVENT_TYPES:"google.workspace.chat.message.v1.created"`, nil, "write the field as event_types"},
		{"wrong operator", `event_types="google.workspace.chat.message.v1.created"`, nil, "followed by :"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needs, err := SpaceEventNeeds(tc.filter)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("SpaceEventNeeds(%q) = %v; want an error containing %q", tc.filter, err, tc.wantErr)
				}
				return
			}
			var got []string
			for _, n := range needs {
				got = append(got, n.What)
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("SpaceEventNeeds(%q) = %v, %v; want %v", tc.filter, got, err, tc.want)
			}
		})
	}
	// Every scope a need names is one the document lets spaceEvents.list
	// accept, of the right kind.
	m, _ := Lookup("spaces.spaceEvents.list")
	for _, n := range SpaceEventKinds() {
		for _, s := range n.App {
			if !slices.Contains(m.AppScopes, s) {
				t.Errorf("%s: app scope %s is not accepted by spaces.spaceEvents.list", n.What, s)
			}
		}
		for _, s := range n.User {
			if !slices.Contains(m.UserScopes, s) {
				t.Errorf("%s: user scope %s is not accepted by spaces.spaceEvents.list", n.What, s)
			}
		}
	}
}
