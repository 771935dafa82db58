package chatapi

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Chat takes some restrictions in a filter string rather than in the
// path: spaces.messages.search limits its spaces with space.name in the
// request body's filter, and spaces.spaceEvents.list needs a scope for
// each kind of event its filter asks for. The functions here read just
// those parts, and refuse anything they cannot read for certain: a
// filter the broker misread could let a call through that the policy
// would refuse.

// ErrFilter wraps every error from reading a filter.
var ErrFilter = errors.New("chatapi: filter")

func filterErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFilter, fmt.Sprintf(format, args...))
}

// A filter token: a quoted string (its value unquoted), a parenthesis,
// a comparison operator, or a word (a field, a keyword, AND, OR, NOT, a
// bare value, a function name).
type filterToken struct {
	kind  byte // 's' string, '(' or ')', 'o' operator, 'w' word
	value string
}

// maxFilter bounds what is tokenized; Chat's own limit is 1,000
// characters for search and a few hundred for events.
const maxFilter = 4096

func tokenize(f string) ([]filterToken, error) {
	if len(f) > maxFilter {
		return nil, filterErr("longer than %d bytes", maxFilter)
	}
	var out []filterToken
	for i := 0; i < len(f); {
		ch := f[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(f) && f[j] != '"'; j++ {
				if f[j] == '\\' {
					if j+1 >= len(f) {
						return nil, filterErr("unterminated escape at byte %d", j)
					}
					j++
				}
				b.WriteByte(f[j])
			}
			if j >= len(f) {
				return nil, filterErr("unterminated string at byte %d", i)
			}
			out = append(out, filterToken{'s', b.String()})
			i = j + 1
		case ch == '(' || ch == ')':
			out = append(out, filterToken{ch, string(ch)})
			i++
		case strings.IndexByte("=<>!:", ch) >= 0:
			j := i + 1
			for j < len(f) && strings.IndexByte("=<>!:", f[j]) >= 0 {
				j++
			}
			out = append(out, filterToken{'o', f[i:j]})
			i = j
		case ch == '\'' || ch == '`':
			// Chat quotes with double quotes only; another quote is a
			// string the broker might read differently from Chat.
			return nil, filterErr("%q at byte %d: quote values with double quotes", ch, i)
		default:
			j := i
			for j < len(f) && strings.IndexByte(" \t\n\r\"()=<>!:'`", f[j]) < 0 {
				j++
			}
			out = append(out, filterToken{'w', f[i:j]})
			i = j
		}
	}
	return out, nil
}

// SearchSpaces returns the spaces a spaces.messages.search filter limits
// the search to: the values of its space.name = "spaces/ID" terms. It
// returns none for a filter without such a term (the search then covers
// every space the user can see), and an error for any term it cannot
// be sure restricts the search: space.name with another operator or a
// value that is not a space name, a negation before it, or an OR that
// joins a space.name term with anything but another one.
func SearchSpaces(filter string) ([]string, error) {
	toks, err := tokenize(filter)
	if err != nil {
		return nil, err
	}
	isSpaceName := func(i int) bool {
		return i >= 0 && i < len(toks) && toks[i].kind == 'w' && strings.EqualFold(toks[i].value, "space.name")
	}
	// A term is "space.name = value"; term(i) reports whether one starts
	// at i and returns its end.
	term := func(i int) (int, bool) {
		if !isSpaceName(i) {
			return 0, false
		}
		return i + 3, true
	}
	var spaces []string
	depth := 0
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == '(':
			depth++
		case t.kind == ')':
			depth--
			if depth < 0 {
				return nil, filterErr("unbalanced parentheses")
			}
		case isSpaceName(i):
			if toks[i].value != "space.name" {
				return nil, filterErr("%q: write the field as space.name", toks[i].value)
			}
			if i+2 >= len(toks) || toks[i+1].kind != 'o' || toks[i+1].value != "=" || (toks[i+2].kind != 's' && toks[i+2].kind != 'w') {
				return nil, filterErr(`space.name must be followed by = and a space name, as in space.name = "spaces/AAAA"`)
			}
			v := toks[i+2].value
			if !validSpaceName(v) {
				return nil, filterErr("space.name = %q: the value must be a space name such as \"spaces/AAAA\"", v)
			}
			if i > 0 && toks[i-1].kind == 'w' && (strings.EqualFold(toks[i-1].value, "NOT") || toks[i-1].value == "-") {
				return nil, filterErr("a negated space.name term does not limit the search to spaces")
			}
			spaces = append(spaces, v)
			i += 2
		case t.kind == 'w' && strings.HasPrefix(t.value, "-") && strings.EqualFold(strings.TrimPrefix(t.value, "-"), "space.name"):
			return nil, filterErr("a negated space.name term does not limit the search to spaces")
		case t.kind == 'w' && (strings.EqualFold(t.value, "NOT") || t.value == "-") && i+1 < len(toks) && toks[i+1].kind == '(':
			// NOT ( … space.name … ) would invert the restriction.
			if end := closing(toks, i+1); end > 0 && slices.ContainsFunc(toks[i+1:end], func(t filterToken) bool {
				return t.kind == 'w' && strings.EqualFold(t.value, "space.name")
			}) {
				return nil, filterErr("a negated group of space.name terms does not limit the search to spaces")
			}
		case t.kind == 'w' && strings.EqualFold(t.value, "OR"):
			// Both sides of an OR next to a space.name term must be
			// space.name terms: only then is the union still a set of
			// the spaces named.
			leftStart := i - 3
			_, leftIsTerm := term(leftStart)
			_, rightIsTerm := term(i + 1)
			leftTouches := leftStart >= 0 && isSpaceName(leftStart) || i > 0 && toks[i-1].kind == ')' && groupHasSpaceName(toks, i-1)
			rightTouches := isSpaceName(i+1) || i+1 < len(toks) && toks[i+1].kind == '(' && groupHasSpaceName(toks, i+1)
			if (leftTouches || rightTouches) && !(leftIsTerm && rightIsTerm) {
				return nil, filterErr("OR joins a space.name term with something else; join space.name terms only with each other, as in (space.name = \"spaces/A\" OR space.name = \"spaces/B\") AND …")
			}
		}
	}
	if depth != 0 {
		return nil, filterErr("unbalanced parentheses")
	}
	return spaces, nil
}

// closing returns the index of the parenthesis that closes the one at
// open, or -1.
func closing(toks []filterToken, open int) int {
	depth := 0
	for i := open; i < len(toks); i++ {
		switch toks[i].kind {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// groupHasSpaceName reports whether the parenthesized group that has a
// parenthesis at i (opening or closing) mentions space.name.
func groupHasSpaceName(toks []filterToken, i int) bool {
	lo, hi := i, i
	if toks[i].kind == '(' {
		hi = closing(toks, i)
	} else {
		depth := 0
		for lo = i; lo >= 0; lo-- {
			if toks[lo].kind == ')' {
				depth++
			} else if toks[lo].kind == '(' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
	}
	if lo < 0 || hi < 0 {
		return true // unbalanced: treat as touching, so it is refused
	}
	return slices.ContainsFunc(toks[lo:hi+1], func(t filterToken) bool {
		return t.kind == 'w' && strings.EqualFold(t.value, "space.name")
	})
}

func validSpaceName(s string) bool {
	id, ok := strings.CutPrefix(s, "spaces/")
	if !ok || id == "" || id == "-" {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ScopeNeed is one thing a call must be allowed to see, and the scopes
// that allow it for app and for user authentication, narrowest first.
type ScopeNeed struct {
	What string // "message events"
	App  []Scope
	User []Scope
}

// spaceEventKinds are the kinds of space event and the scopes that let a
// caller read each, narrowest first. The kind is the word after
// "google.workspace.chat." in the event type.
var spaceEventKinds = map[string]ScopeNeed{
	"message": {What: "message events",
		App:  []Scope{ScopeAppMessagesReadonly, ScopeAppAllMessagesReadonly},
		User: []Scope{ScopeMessagesReadonly, ScopeMessages}},
	"reaction": {What: "reaction events",
		App:  []Scope{ScopeAppMessagesReadonly, ScopeAppAllMessagesReadonly},
		User: []Scope{ScopeMessagesReactionsReadonly, ScopeMessagesReadonly, ScopeMessagesReactions, ScopeMessages}},
	"membership": {What: "membership events",
		App:  []Scope{ScopeAppMembershipsReadonly, ScopeAppMemberships, ScopeAppAllMembershipsReadonly},
		User: []Scope{ScopeMembershipsReadonly, ScopeMemberships}},
	"space": {What: "space events",
		App:  []Scope{ScopeAppSpacesReadonly, ScopeAppSpaces, ScopeAppAllSpacesReadonly},
		User: []Scope{ScopeSpacesReadonly, ScopeSpaces}},
}

// SpaceEventKinds returns a ScopeNeed for every kind of space event, in
// a stable order: spaces.spaceEvents.get reads one event whose kind is
// not known until it is read.
func SpaceEventKinds() []ScopeNeed {
	out := make([]ScopeNeed, 0, len(spaceEventKinds))
	for _, k := range slices.Sorted(maps.Keys(spaceEventKinds)) {
		out = append(out, spaceEventKinds[k])
	}
	return out
}

// SpaceEventNeeds returns a ScopeNeed for each kind of event a
// spaces.spaceEvents.list filter asks for, in a stable order. It fails on
// a filter that names no event type, or an event type that is not
// Chat's (google.workspace.chat.KIND.v1.ACTION).
func SpaceEventNeeds(filter string) ([]ScopeNeed, error) {
	toks, err := tokenize(filter)
	if err != nil {
		return nil, err
	}
	kinds := map[string]bool{}
	for i, t := range toks {
		if t.kind != 'w' || !strings.EqualFold(t.value, "event_types") {
			continue
		}
		if t.value != "event_types" {
			return nil, filterErr("%q: write the field as event_types", t.value)
		}
		if i+2 >= len(toks) || toks[i+1].kind != 'o' || toks[i+1].value != ":" || (toks[i+2].kind != 's' && toks[i+2].kind != 'w') {
			return nil, filterErr(`event_types must be followed by : and an event type, as in event_types:"google.workspace.chat.message.v1.created"`)
		}
		typ := toks[i+2].value
		rest, ok := strings.CutPrefix(typ, "google.workspace.chat.")
		kind, action, ok2 := strings.Cut(rest, ".v1.")
		if _, known := spaceEventKinds[kind]; !ok || !ok2 || !known || action == "" {
			return nil, filterErr("%q is not a Chat event type such as google.workspace.chat.message.v1.created", typ)
		}
		kinds[kind] = true
	}
	if len(kinds) == 0 {
		return nil, filterErr(`it names no event type; add event_types:"google.workspace.chat.message.v1.created" (or another type)`)
	}
	var out []ScopeNeed
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		out = append(out, spaceEventKinds[k])
	}
	return out, nil
}
