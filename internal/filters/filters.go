package filters

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/inbound"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

// MethodSearch is the method whose filter, in its body, names the spaces
// it reads.
const MethodSearch = "spaces.messages.search"

const reasonUnreadable = "FILTER_NOT_READABLE"

// Asks is what a call asks for beyond its method, space and subject.
type Asks struct {
	// AdminAccess: useAdminAccess=true.
	AdminAccess bool
	// Needs and AnyNeed are policy.Request's: for spaces.spaceEvents.list
	// one need per kind of event its filter asks for; for
	// spaces.spaceEvents.get every kind, any of them.
	Needs   []chatapi.ScopeNeed
	AnyNeed bool
}

// Query reads a call to m in space from its checked query.
func Query(m *chatapi.Method, space, query string) (Asks, error) {
	var a Asks
	// The query is inbound.CheckQuery's canonical encoding: a parameter
	// name appears in it as written here, so most calls, which ask for
	// neither, skip parsing it a second time.
	var q url.Values
	if m.ID == "spaces.spaceEvents.list" || strings.Contains(query, "useAdminAccess") {
		q, _ = url.ParseQuery(query)
	}
	if v, ok := q["useAdminAccess"]; ok {
		switch {
		case len(m.AdminScopes) == 0:
			return a, refusal.New(http.StatusBadRequest, "PARAMETER_NOT_ALLOWED", "useAdminAccess is not a parameter of "+m.ID+": remove it")
		case v[0] == "true":
			a.AdminAccess = true
		case v[0] != "false":
			return a, refusal.New(http.StatusBadRequest, "PARAMETER_NOT_ALLOWED", fmt.Sprintf("useAdminAccess=%q: write true or false", v[0]))
		}
	}
	switch m.ID {
	case MethodSearch:
		if space != "spaces/-" {
			return a, refusal.New(http.StatusBadRequest, "SEARCH_PARENT_INVALID",
				`spaces.messages.search takes the parent spaces/- (POST /v1/spaces/-/messages:search); to search some spaces, put space.name = "spaces/ID" in the filter`)
		}
	case "spaces.spaceEvents.list":
		needs, err := chatapi.SpaceEventNeeds(q.Get("filter"))
		if err != nil {
			return a, refusal.New(http.StatusBadRequest, reasonUnreadable, fmt.Sprintf(
				"the filter of %s cannot be read for certain (%s); the broker mints scopes for the event types it names: write event types as event_types:\"google.workspace.chat.message.v1.created\", joined with OR",
				m.ID, strings.TrimPrefix(err.Error(), chatapi.ErrFilter.Error()+": ")))
		}
		a.Needs = needs
	case "spaces.spaceEvents.get":
		a.Needs, a.AnyNeed = chatapi.SpaceEventKinds(), true
	}
	return a, nil
}

// SearchSpaces returns the spaces the filter in a search's body names;
// none when it names none. The body is read as Google will read it,
// gunzipped (contentEncoding) under m's JSON cap.
func SearchSpaces(m *chatapi.Method, body []byte, contentEncoding string) ([]string, error) {
	plain, err := inbound.Decoded(body, contentEncoding, m.MaxBody)
	if err != nil {
		return nil, err
	}
	filter := ""
	if len(plain) > 0 {
		if filter, _, err = inbound.JSONString(plain, "filter"); err != nil {
			return nil, err
		}
	}
	spaces, err := chatapi.SearchSpaces(filter)
	if err != nil {
		return nil, refusal.New(http.StatusBadRequest, reasonUnreadable, fmt.Sprintf(
			`the search filter cannot be read for certain (%s); limit the search with space.name = "spaces/ID" terms joined by OR and ANDed with the rest`,
			strings.TrimPrefix(err.Error(), chatapi.ErrFilter.Error()+": ")))
	}
	return spaces, nil
}
