package emulator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Event types the emulator records. Each has a payload field named after
// it: google.workspace.chat.message.v1.created carries
// messageCreatedEventData: {message: …}.
const (
	evMessageCreated    = "google.workspace.chat.message.v1.created"
	evMessageUpdated    = "google.workspace.chat.message.v1.updated"
	evMessageDeleted    = "google.workspace.chat.message.v1.deleted"
	evMembershipCreated = "google.workspace.chat.membership.v1.created"
	evMembershipUpdated = "google.workspace.chat.membership.v1.updated"
	evMembershipDeleted = "google.workspace.chat.membership.v1.deleted"
	evReactionCreated   = "google.workspace.chat.reaction.v1.created"
	evReactionDeleted   = "google.workspace.chat.reaction.v1.deleted"
)

// eventTypes are the event types a filter may name: the recorded ones,
// their batch forms and the space updates, which the emulator never
// records.
var eventTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, kind := range []string{"message", "membership"} {
		for _, a := range []string{"created", "updated", "deleted", "batchCreated", "batchUpdated", "batchDeleted"} {
			m["google.workspace.chat."+kind+".v1."+a] = true
		}
	}
	for _, a := range []string{"created", "deleted", "batchCreated", "batchDeleted"} {
		m["google.workspace.chat.reaction.v1."+a] = true
	}
	m["google.workspace.chat.space.v1.updated"] = true
	m["google.workspace.chat.space.v1.batchUpdated"] = true
	return m
}()

// eventScopes are the scopes that let a caller read each kind of event
// (the word after "google.workspace.chat." in its type), as Chat's
// SpaceEvent reference lists them. The emulator keeps its own table, so
// that the broker's, in chatapi, is checked against it.
var eventScopes = map[string][]chatapi.Scope{
	"message": {chatapi.ScopeAppMessagesReadonly, chatapi.ScopeAppAllMessagesReadonly,
		chatapi.ScopeMessagesReadonly, chatapi.ScopeMessages},
	"reaction": {chatapi.ScopeAppMessagesReadonly, chatapi.ScopeAppAllMessagesReadonly,
		chatapi.ScopeMessagesReactionsReadonly, chatapi.ScopeMessagesReactions, chatapi.ScopeMessagesReadonly, chatapi.ScopeMessages},
	"membership": {chatapi.ScopeAppMembershipsReadonly, chatapi.ScopeAppMemberships, chatapi.ScopeAppAllMembershipsReadonly,
		chatapi.ScopeMembershipsReadonly, chatapi.ScopeMemberships},
	"space": {chatapi.ScopeAppSpacesReadonly, chatapi.ScopeAppSpaces, chatapi.ScopeAppAllSpacesReadonly,
		chatapi.ScopeSpacesReadonly, chatapi.ScopeSpaces},
}

// mayRead answers 403, as Chat does, when the token has no scope that
// reads events of type typ (a chat.app.* one must be approved).
func (c *call) mayRead(typ string) *chatapi.Error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.mayReadLocked(typ)
}

func (c *call) mayReadLocked(typ string) *chatapi.Error {
	kind, _, _ := strings.Cut(strings.TrimPrefix(typ, "google.workspace.chat."), ".")
	for _, s := range eventScopes[kind] {
		if slices.Contains(c.tok.scopes, s) && (!s.IsApp() || c.e.approved[s]) {
			return nil
		}
	}
	return c.insufficient(c.meta)
}

// event is one SpaceEvent.
type event struct {
	seq     int64
	id      string
	typ     string
	at      time.Time
	payload map[string]any // the resource as it was, in wire form
}

func (ev *event) wire(space string) map[string]any {
	// "google.workspace.chat.message.v1.created" → "message", "Created".
	rest := strings.TrimPrefix(ev.typ, "google.workspace.chat.")
	kind, action, _ := strings.Cut(rest, ".v1.")
	field := kind + strings.ToUpper(action[:1]) + action[1:] + "EventData"
	return map[string]any{
		"name":      space + "/spaceEvents/" + ev.id,
		"eventTime": timestamp(ev.at),
		"eventType": ev.typ,
		field:       map[string]any{kind: ev.payload},
	}
}

// addEventLocked records an event in a space. payload is the resource in
// wire form; it is kept as is, so callers pass a map they no longer
// change. Callers hold e.mu.
func (e *Emulator) addEventLocked(sp *space, typ string, payload map[string]any) {
	e.seq++
	ev := &event{seq: e.seq, typ: typ, at: e.now(), payload: payload}
	// Ids need only be unique within the space; the sequence number
	// guarantees it, the random part keeps them opaque like Chat's.
	ev.id = fmt.Sprintf("%s%d", randomID(12), ev.seq)
	sp.events = appendCapped(sp.events, ev)
}

func (c *call) getSpaceEvent() (any, *chatapi.Error) {
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		i := slices.IndexFunc(sp.events, func(ev *event) bool { return ev.id == c.vars["spaceEvent"] })
		if i < 0 {
			return nil, notFound()
		}
		if err := c.mayReadLocked(sp.events[i].typ); err != nil { // inSpace holds e.mu
			return nil, err
		}
		return sp.events[i].wire(sp.name), nil
	})
}

// listSpaceEvents lists a space's events, oldest first.
func (c *call) listSpaceEvents() (any, *chatapi.Error) {
	f, err := parseEventFilter(c.q.Get("filter"))
	if err != nil {
		return nil, err
	}
	for typ := range f.types {
		if err := c.mayRead(typ); err != nil {
			return nil, err
		}
	}
	p, err := c.readList(eventsList)
	if err != nil {
		return nil, err
	}
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		return page(p, sp.events, func(ev *event) int64 { return ev.seq }, f.match, func(ev *event) any { return ev.wire(sp.name) }), nil
	})
}
