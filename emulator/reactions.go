package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// reaction is an emoji reaction to a message, by a user.
type reaction struct {
	seq     int64
	id      string
	user    string // "users/SUBJECT"
	unicode string
	custom  json.RawMessage // customEmoji as given, when not unicode
	uid     string          // customEmoji.uid
	created time.Time
}

// emojiKey identifies the emoji, for summaries and duplicates.
func (r *reaction) emojiKey() string {
	if r.unicode != "" {
		return "u:" + r.unicode
	}
	return "c:" + r.uid
}

func (r *reaction) emoji() map[string]any {
	if r.unicode != "" {
		return map[string]any{"unicode": r.unicode}
	}
	return map[string]any{"customEmoji": r.custom}
}

func (r *reaction) wire(msg string) map[string]any {
	return map[string]any{
		"name":  msg + "/reactions/" + r.id,
		"user":  map[string]string{"name": r.user, "type": "HUMAN"},
		"emoji": r.emoji(),
	}
}

var reactionFields = fieldSet("emoji", "name", "user")

// createReaction adds the calling user's reaction to a message. The same
// user reacting twice with the same emoji is a conflict.
func (c *call) createReaction() (any, *chatapi.Error) {
	fields, err := c.readBody("reaction", reactionFields)
	if err != nil {
		return nil, err
	}
	raw, ok := fields["emoji"]
	if !ok {
		return nil, invalidArgument("Reaction.emoji is required: set emoji.unicode or emoji.custom_emoji.")
	}
	var emoji struct {
		Unicode     string          `json:"unicode"`
		CustomEmoji json.RawMessage `json:"customEmoji"`
	}
	if json.Unmarshal(raw, &emoji) != nil {
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'reaction.emoji' (type.googleapis.com/google.chat.v1.Emoji), %s", raw))
	}
	r := &reaction{user: c.identity(), unicode: emoji.Unicode}
	if len(emoji.CustomEmoji) > 0 && string(emoji.CustomEmoji) != "null" {
		var ce struct {
			UID  string `json:"uid"`
			Name string `json:"name"`
		}
		if json.Unmarshal(emoji.CustomEmoji, &ce) != nil || (ce.UID == "" && ce.Name == "") {
			return nil, invalidArgument("A custom emoji reaction needs emoji.custom_emoji.uid.")
		}
		r.custom, r.uid = emoji.CustomEmoji, ce.UID
		if r.uid == "" {
			r.uid = ce.Name
		}
	}
	if (r.unicode == "") == (r.custom == nil) {
		return nil, invalidArgument("Set exactly one of emoji.unicode and emoji.custom_emoji.")
	}

	return c.onMessage(func(sp *space, m *message) (any, *chatapi.Error) {
		for _, x := range m.reactions {
			if strings.EqualFold(x.user, r.user) && x.emojiKey() == r.emojiKey() {
				return nil, chatapi.NewError(http.StatusConflict, "The user has already reacted to this message with this emoji.")
			}
		}
		c.e.seq++
		r.seq, r.created = c.e.seq, c.e.now()
		r.id = randomID(12)
		for slices.ContainsFunc(m.reactions, func(x *reaction) bool { return x.id == r.id }) {
			r.id = randomID(12)
		}
		m.reactions = append(m.reactions, r)
		return c.recordLocked(sp, evReactionCreated, r.wire(m.name()))
	})
}

var reactionFilterFields = map[string]filterField{
	"emoji.unicode":          {"emoji.unicode", kindString},
	"emoji.custom_emoji.uid": {"emoji.custom_emoji.uid", kindString},
	"emoji.customEmoji.uid":  {"emoji.custom_emoji.uid", kindString},
	"user.name":              {"user.name", kindString},
}

// filterValue is a reaction's value of a reactions.list filter field.
func (r *reaction) filterValue(field string) (string, time.Time) {
	switch field {
	case "emoji.unicode":
		return r.unicode, time.Time{}
	case "emoji.custom_emoji.uid":
		return r.uid, time.Time{}
	}
	return r.user, time.Time{}
}

// listReactions lists a message's reactions, oldest first.
func (c *call) listReactions() (any, *chatapi.Error) {
	p, err := c.readList(reactionsList)
	if err != nil {
		return nil, err
	}
	return c.onMessage(func(_ *space, m *message) (any, *chatapi.Error) {
		return page(p, m.reactions, func(r *reaction) int64 { return r.seq }, func(r *reaction) bool {
			return p.filter.match(r.filterValue)
		}, func(r *reaction) any { return r.wire(m.name()) }), nil
	})
}

// deleteReaction deletes one of the calling user's reactions.
func (c *call) deleteReaction() (any, *chatapi.Error) {
	return c.onMessage(func(sp *space, m *message) (any, *chatapi.Error) {
		i := slices.IndexFunc(m.reactions, func(r *reaction) bool { return r.id == c.vars["reaction"] })
		if i < 0 {
			return nil, notFound()
		}
		r := m.reactions[i]
		if !strings.EqualFold(r.user, c.identity()) {
			return nil, chatapi.NewError(http.StatusForbidden, msgNoPermission)
		}
		m.reactions = slices.Delete(m.reactions, i, i+1)
		c.e.addEventLocked(sp, evReactionDeleted, r.wire(m.name()))
		return struct{}{}, nil
	})
}

// reactionSummaries are a message's emojiReactionSummaries: each emoji
// once, in the order first used, with its count.
func (m *message) reactionSummaries() []any {
	var out []any
	idx := map[string]int{}
	var counts []int
	for _, r := range m.reactions {
		k := r.emojiKey()
		if i, ok := idx[k]; ok {
			counts[i]++
			continue
		}
		idx[k] = len(out)
		counts = append(counts, 1)
		out = append(out, map[string]any{"emoji": r.emoji()})
	}
	for i, s := range out {
		s.(map[string]any)["reactionCount"] = counts[i]
	}
	return out
}
