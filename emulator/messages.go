package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// maxTextBytes is Chat's limit on a message's text.
const maxTextBytes = 32000

// message is a stored Chat message.
type message struct {
	seq       int64
	id        string // server-assigned, the last segment of the name
	space     string
	clientID  string // messageId, "client-…"
	requestID string
	reqKey    string // key in space.byRequest
	text      string
	thread    string // "spaces/ID/threads/TID"
	threadKey string
	reply     bool
	sender    string // appUser or "users/SUBJECT"
	created   time.Time
	updated   time.Time
	extras    map[string]json.RawMessage // body fields echoed back as given
	reactions []*reaction                // oldest first
}

func (m *message) name() string { return m.space + "/messages/" + m.id }

func (m *message) wire() map[string]any {
	out := echoed(m.extras)
	senderType := "BOT"
	if m.sender != appUser {
		senderType = "HUMAN"
	}
	thread := map[string]string{"name": m.thread}
	if m.threadKey != "" {
		thread["threadKey"] = m.threadKey
	}
	out["name"] = m.name()
	out["sender"] = map[string]string{"name": m.sender, "type": senderType}
	out["createTime"] = timestamp(m.created)
	out["thread"] = thread
	out["space"] = map[string]string{"name": m.space}
	if m.text != "" {
		out["text"] = m.text
		out["argumentText"] = m.text
	}
	if m.clientID != "" {
		out["clientAssignedMessageId"] = m.clientID
	}
	if !m.updated.IsZero() {
		out["lastUpdateTime"] = timestamp(m.updated)
	}
	if m.reply {
		out["threadReply"] = true
	}
	if len(m.reactions) > 0 {
		out["emojiReactionSummaries"] = m.reactionSummaries()
	}
	return out
}

// messageFields are the fields of a Message (google.golang.org/api/chat/v1).
var messageFields = fieldSet("accessoryWidgets", "actionResponse", "annotations", "argumentText",
	"attachedGifs", "attachment", "cards", "cardsV2", "clientAssignedMessageId", "createTime",
	"deleteTime", "deletionMetadata", "elements", "emojiReactionSummaries", "fallbackText",
	"formattedText", "lastUpdateTime", "markupSyntax", "matchedUrl", "name", "privateMessageViewer",
	"quotedMessageMetadata", "sender", "silent", "slashCommand", "space", "text", "thread", "threadReply")

// messageEcho are the input fields of a Message the emulator does not
// interpret but keeps and echoes back. Output-only fields in a request
// are ignored, as Chat ignores them.
var messageEcho = []string{"accessoryWidgets", "attachment", "cards", "cardsV2", "elements",
	"fallbackText", "privateMessageViewer", "quotedMessageMetadata"}

// updatable are the updateMask paths of messages.patch and .update.
var updatable = []string{"text", "attachment", "cards", "cardsV2", "accessoryWidgets"}

// messageInput is a Message request body.
type messageInput struct {
	fields     map[string]json.RawMessage
	text       string
	threadName string
	threadKey  string
}

func (c *call) readMessage() (*messageInput, *chatapi.Error) {
	fields, text, err := c.readBodyString("message", messageFields, "text")
	if err != nil {
		return nil, err
	}
	in := &messageInput{fields: fields, text: text}
	if n := len(in.text); n > maxTextBytes {
		return nil, invalidArgument(fmt.Sprintf("Message text is %d bytes long; the limit is %d bytes.", n, maxTextBytes))
	}
	if raw, ok := fields["thread"]; ok {
		var t struct {
			Name      string `json:"name"`
			ThreadKey string `json:"threadKey"`
		}
		if json.Unmarshal(raw, &t) != nil {
			return nil, invalidArgument(fmt.Sprintf("Invalid value at 'message.thread' (type.googleapis.com/google.chat.v1.Thread), %s", raw))
		}
		in.threadName, in.threadKey = t.Name, t.ThreadKey
	}
	return in, nil
}

func (in *messageInput) empty() bool {
	if in.text != "" {
		return false
	}
	for _, k := range []string{"cards", "cardsV2", "attachment", "accessoryWidgets"} {
		if _, ok := in.fields[k]; ok {
			return false
		}
	}
	return true
}

var clientIDRE = regexp.MustCompile(`^client-[a-z0-9-]+$`)

// validClientID reports whether id is a valid client-assigned message id.
func validClientID(id string) bool { return len(id) <= 63 && clientIDRE.MatchString(id) }

const (
	replyUnspecified = "MESSAGE_REPLY_OPTION_UNSPECIFIED"
	replyFallback    = "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
	replyOrFail      = "REPLY_MESSAGE_OR_FAIL"
)

// createMessage posts a message. A repeated requestId returns the message
// first created with it; a client-assigned messageId must be new in the
// space. With a REPLY_* messageReplyOption the message goes into the
// thread named by thread.name or thread.threadKey (or the deprecated
// threadKey parameter); otherwise it starts a thread. REPLY_MESSAGE_OR_FAIL
// fails with 404 for a thread name that does not exist, and starts a
// thread for a threadKey not yet used.
func (c *call) createMessage() (any, *chatapi.Error) {
	in, err := c.readMessage()
	if err != nil {
		return nil, err
	}
	if in.empty() {
		return nil, invalidArgument("Message cannot be empty. Discarding empty message.")
	}
	clientID, requestID := c.q.Get("messageId"), c.q.Get("requestId")
	if clientID != "" && !validClientID(clientID) {
		return nil, invalidArgument(fmt.Sprintf(`Invalid message ID %q: a client-assigned message ID starts with "client-", has at most 63 characters and contains only lowercase letters, numbers and hyphens.`, clientID))
	}
	option := c.q.Get("messageReplyOption")
	switch option {
	case "", replyUnspecified, replyFallback, replyOrFail:
	default:
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'message_reply_option' (type.googleapis.com/google.chat.v1.CreateMessageRequest.MessageReplyOption), %q", option))
	}
	if in.threadKey == "" {
		in.threadKey = c.q.Get("threadKey")
	}

	reqKey := c.requestKey(requestID)
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		if m := sp.byRequest[reqKey]; reqKey != "" && m != nil {
			return m.wire(), nil
		}
		if clientID != "" && sp.byClient[clientID] != nil {
			return nil, chatapi.NewError(http.StatusConflict, fmt.Sprintf("A message with the client-assigned ID %q already exists in %s.", clientID, sp.name))
		}
		thread := ""
		if option == replyFallback || option == replyOrFail {
			switch {
			case in.threadName != "" && sp.threads[in.threadName]:
				thread = in.threadName
			case in.threadKey != "" && sp.threadKeys[in.threadKey] != "":
				thread = sp.threadKeys[in.threadKey]
			case option == replyOrFail && (in.threadName != "" || in.threadKey == ""):
				// A thread named that does not exist fails; a new
				// threadKey starts the thread it names, as Chat does.
				return nil, notFound()
			}
		}
		m := c.addMessageLocked(sp, in, thread, clientID)
		m.requestID, m.reqKey = requestID, reqKey
		if reqKey != "" {
			sp.byRequest[reqKey] = m
		}
		return c.recordLocked(sp, evMessageCreated, m.wire())
	})
}

// addMessageLocked stores a new message from the caller, in thread or, if
// thread is "", in a new thread, with the client-assigned id clientID if
// not "".
func (c *call) addMessageLocked(sp *space, in *messageInput, thread, clientID string) *message {
	e := c.e
	m := &message{space: sp.name, clientID: clientID, text: in.text, sender: c.identity(), created: e.now(), extras: pick(in.fields, messageEcho)}
	tid := ""
	if thread == "" {
		for thread == "" || sp.threads[thread] {
			tid = randomID(11)
			thread = sp.name + "/threads/" + tid
		}
		sp.threads[thread] = true
		if in.threadKey != "" && sp.threadKeys[in.threadKey] == "" {
			sp.threadKeys[in.threadKey] = thread
		}
		m.id = tid + "." + tid // Chat names a thread's first message after the thread
	} else {
		tid = strings.TrimPrefix(thread, sp.name+"/threads/")
		m.reply = true
	}
	for m.id == "" || sp.byID[m.id] != nil {
		m.id = tid + "." + randomID(11)
	}
	for k, t := range sp.threadKeys {
		if t == thread {
			m.threadKey = k
			break
		}
	}
	e.seq++
	m.seq = e.seq
	m.thread = thread
	sp.msgs = append(sp.msgs, m)
	sp.byID[m.id] = m
	if clientID != "" {
		sp.byClient[clientID] = m
	}
	return m
}

// findMessageLocked looks a message up by server-assigned or client-assigned id.
func (sp *space) findMessageLocked(id string) *message {
	if m := sp.byID[id]; m != nil {
		return m
	}
	if strings.HasPrefix(id, "client-") {
		return sp.byClient[id]
	}
	return nil
}

// onMessage runs fn, under e.mu, with the message the request names and
// its space; a message that does not exist is 404.
func (c *call) onMessage(fn func(sp *space, m *message) (any, *chatapi.Error)) (any, *chatapi.Error) {
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		m := sp.findMessageLocked(c.vars["message"])
		if m == nil {
			return nil, notFound()
		}
		return fn(sp, m)
	})
}

func (c *call) getMessage() (any, *chatapi.Error) {
	return c.onMessage(func(_ *space, m *message) (any, *chatapi.Error) { return m.wire(), nil })
}

var messageFilterFields = map[string]filterField{
	"create_time": {"create_time", kindTime},
	"createTime":  {"create_time", kindTime},
	"thread.name": {"thread.name", kindString},
}

// filterValue is a message's value of a messages.list filter field.
func (m *message) filterValue(field string) (string, time.Time) {
	if field == "thread.name" {
		return m.thread, time.Time{}
	}
	return "", m.created
}

// listMessages lists a space's messages, oldest first unless orderBy says
// "createTime desc". The page token is a position in creation order, so
// paging is stable while messages are added or deleted.
func (c *call) listMessages() (any, *chatapi.Error) {
	p, err := c.readList(messagesList)
	if err != nil {
		return nil, err
	}
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		return page(p, sp.msgs, func(m *message) int64 { return m.seq }, func(m *message) bool {
			return p.filter.match(m.filterValue)
		}, func(m *message) any { return m.wire() }), nil
	})
}

// updateMessage serves messages.patch and messages.update. Only the paths
// in updateMask change. With allowMissing, a message that does not exist
// is created, if its id is client-assigned.
func (c *call) updateMessage() (any, *chatapi.Error) {
	mask := c.q.Get("updateMask")
	if strings.TrimSpace(mask) == "" {
		return nil, invalidArgument("The update mask is required: set updateMask, for example updateMask=text.")
	}
	var paths []string
	for _, p := range strings.Split(mask, ",") {
		p = camelCase(strings.TrimSpace(p))
		switch {
		case p == "*":
			paths = append(paths, updatable...)
		case slices.Contains(updatable, p):
			paths = append(paths, p)
		default:
			return nil, invalidArgument(fmt.Sprintf("Invalid update mask path %q: a message's updatable fields are text, attachment, cards, cards_v2 and accessory_widgets.", p))
		}
	}
	allowMissing := false
	if s := c.q.Get("allowMissing"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, invalidArgument(fmt.Sprintf("Invalid value at 'allow_missing' (TYPE_BOOL), %q", s))
		}
		allowMissing = b
	}
	in, err := c.readMessage()
	if err != nil {
		return nil, err
	}

	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		id := c.vars["message"]
		m := sp.findMessageLocked(id)
		if m == nil {
			if !allowMissing || !validClientID(id) {
				return nil, notFound()
			}
			return c.recordLocked(sp, evMessageCreated, c.addMessageLocked(sp, in, "", id).wire())
		}
		if m.sender != c.identity() {
			return nil, chatapi.NewError(http.StatusForbidden, msgNoPermission)
		}
		for _, p := range paths {
			if p == "text" {
				m.text = in.text
				continue
			}
			if v, ok := in.fields[p]; ok {
				m.extras[p] = v
			} else {
				delete(m.extras, p)
			}
		}
		m.updated = c.e.now()
		return c.recordLocked(sp, evMessageUpdated, m.wire())
	})
}

// deleteMessage deletes a message the caller created and answers {}.
func (c *call) deleteMessage() (any, *chatapi.Error) {
	return c.onMessage(func(sp *space, m *message) (any, *chatapi.Error) {
		if m.sender != c.identity() {
			return nil, chatapi.NewError(http.StatusForbidden, msgNoPermission)
		}
		sp.msgs = slices.DeleteFunc(sp.msgs, func(x *message) bool { return x == m })
		delete(sp.byID, m.id)
		if m.clientID != "" {
			delete(sp.byClient, m.clientID)
		}
		if m.reqKey != "" {
			delete(sp.byRequest, m.reqKey)
		}
		// Chat fills only these fields of a deleted message's event. A user
		// deleting through an app (domain-wide delegation) is CREATOR_VIA_APP.
		deletion := "CREATOR"
		if c.tok.subject != "" {
			deletion = "CREATOR_VIA_APP"
		}
		c.e.addEventLocked(sp, evMessageDeleted, map[string]any{
			"name":             m.name(),
			"createTime":       timestamp(m.created),
			"deletionMetadata": map[string]string{"deletionType": deletion},
		})
		return struct{}{}, nil
	})
}
