package emulator

import (
	"fmt"
	"regexp"
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
	if len(sp.events) >= maxLog {
		sp.events = append(sp.events[:0:0], sp.events[len(sp.events)/2:]...)
	}
	sp.events = append(sp.events, ev)
}

func (c *call) getSpaceEvent() (any, *chatapi.Error) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	sp, err := c.spaceLocked()
	if err != nil {
		return nil, err
	}
	id := c.vars["spaceEvent"]
	for _, ev := range sp.events {
		if ev.id == id {
			return ev.wire(sp.name), nil
		}
	}
	return nil, notFound()
}

// eventFilter is a parsed spaceEvents.list filter.
type eventFilter struct {
	types      map[string]bool
	start, end time.Time // zero: unbounded; start is exclusive, end inclusive
}

var (
	eventTypeRE = regexp.MustCompile(`^event_types\s*:\s*"([^"]*)"$`)
	eventTimeRE = regexp.MustCompile(`^(start_time|end_time)\s*=\s*"([^"]*)"$`)
)

// parseEventFilter reads spaceEvents.list's filter, which Chat requires:
// one or more event_types:"…" joined by OR, optionally ANDed with
// start_time="…" and end_time="…".
func parseEventFilter(s string) (*eventFilter, *chatapi.Error) {
	s = strings.TrimSpace(s)
	bad := func(why string) *chatapi.Error {
		return invalidArgument(fmt.Sprintf("Invalid filter %q: %s", s, why))
	}
	if s == "" {
		return nil, invalidArgument(`The filter is required and must name at least one event type, for example event_types:"google.workspace.chat.message.v1.created".`)
	}
	groups, err := splitFilter(s)
	if err != nil {
		return nil, bad(err.Error())
	}
	f := &eventFilter{types: map[string]bool{}}
	typeGroups := 0
	for _, group := range groups {
		if m := eventTimeRE.FindStringSubmatch(group[0]); m != nil && len(group) == 1 {
			t, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil {
				return nil, bad(fmt.Sprintf("%s needs an RFC 3339 time, got %q", m[1], m[2]))
			}
			if m[1] == "start_time" {
				f.start = t
			} else {
				f.end = t
			}
			continue
		}
		typeGroups++
		for _, atom := range group {
			m := eventTypeRE.FindStringSubmatch(atom)
			if m == nil {
				return nil, bad(fmt.Sprintf(`cannot read %q; join event_types:"…" with OR, and start_time="…" or end_time="…" with AND`, atom))
			}
			if !eventTypes[m[1]] {
				return nil, bad(fmt.Sprintf("%q is not a supported event type", m[1]))
			}
			f.types[m[1]] = true
		}
	}
	switch {
	case typeGroups == 0:
		return nil, bad("at least one event type (event_types:\"…\") is required")
	case typeGroups > 1:
		return nil, bad("event types can be joined only with OR")
	}
	return f, nil
}

func (f *eventFilter) match(ev *event) bool {
	return f.types[ev.typ] &&
		(f.start.IsZero() || ev.at.After(f.start)) &&
		(f.end.IsZero() || !ev.at.After(f.end))
}

// listSpaceEvents lists a space's events, oldest first.
func (c *call) listSpaceEvents() (any, *chatapi.Error) {
	f, err := parseEventFilter(c.q.Get("filter"))
	if err != nil {
		return nil, err
	}
	size, err := c.pageSize(100, 1000)
	if err != nil {
		return nil, err
	}
	after, err := c.readPageToken("spaceEvents")
	if err != nil {
		return nil, err
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	sp, err := c.spaceLocked()
	if err != nil {
		return nil, err
	}
	page, next := paginate(sp.events, size, "spaceEvents", func(ev *event) int64 { return ev.seq }, func(ev *event) bool {
		return ev.seq > after && f.match(ev)
	})
	return struct {
		SpaceEvents   []any  `json:"spaceEvents,omitempty"`
		NextPageToken string `json:"nextPageToken,omitempty"`
	}{wireAll(page, func(ev *event) any { return ev.wire(sp.name) }), next}, nil
}
