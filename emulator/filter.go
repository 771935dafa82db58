package emulator

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

type fieldKind int

const (
	kindString fieldKind = iota
	kindTime
)

// filterField is a field a list filter may name.
type filterField struct {
	name string // canonical name, passed to the getter
	kind fieldKind
}

type clause struct {
	field filterField
	op    string
	value string
	time  time.Time
}

// filter is a list filter in Chat's syntax (AIP-160), limited to what the
// emulator supports: comparisons joined by AND and OR, where OR binds
// tighter than AND, and parentheses only around a group of ORs. It is a
// conjunction of disjunctions.
//
// The emulator parses filters itself rather than with
// go.einride.tech/aip/filtering, because that package refuses filters the
// emulator accepts and Chat documents: its type checker takes an unquoted
// value, as in thread.name = spaces/AAAA/threads/123 (the form Chat's
// reference gives for spaces.messages.list), for an undeclared
// identifier, and its lexer cannot read an unquoted RFC 3339 time. Its
// errors are also plain text, which would have to be matched to keep the
// emulator's answers.
type filter struct {
	groups [][]clause
}

var clauseRE = regexp.MustCompile(`^\s*([A-Za-z_.]+)\s*(>=|<=|!=|=|>|<|:)\s*(.*?)\s*$`)

// splitFilter splits a filter into a conjunction of disjunctions of raw
// comparisons: "a AND (b OR c)" is [[a] [b c]]. Quoted values may hold
// anything, including AND, OR and parentheses.
func splitFilter(s string) ([][]string, error) {
	s = stripParens(strings.TrimSpace(s))
	var out [][]string
	for _, and := range splitOutside(s, " AND ") {
		and = stripParens(strings.TrimSpace(and))
		var or []string
		for _, atom := range splitOutside(and, " OR ") {
			atom = strings.TrimSpace(atom)
			if atom == "" {
				return nil, fmt.Errorf("an AND or OR is missing an operand")
			}
			if _, _, found := parens(atom); found {
				return nil, fmt.Errorf("parentheses are supported only around a group of ORs")
			}
			or = append(or, atom)
		}
		out = append(out, or)
	}
	return out, nil
}

// eachUnquoted calls visit with the index of every byte of s outside
// quotes (a quote runs from ' or " to the same character again), quote
// characters left out. visit returns how many of the bytes after it to
// pass over.
func eachUnquoted(s string, visit func(i int) (skip int)) {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		default:
			i += visit(i)
		}
	}
}

// splitOutside splits s at every sep that is outside quotes and
// parentheses.
func splitOutside(s, sep string) []string {
	var parts []string
	depth, start := 0, 0
	eachUnquoted(s, func(i int) int {
		switch {
		case s[i] == '(':
			depth++
		case s[i] == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], sep):
			parts = append(parts, s[start:i])
			start = i + len(sep)
			return len(sep) - 1
		}
		return 0
	})
	return append(parts, s[start:])
}

// parens returns the parenthesis depth at the end of s and the lowest
// depth reached, counting only parentheses outside quotes, and whether
// there are any.
func parens(s string) (end, low int, found bool) {
	eachUnquoted(s, func(i int) int {
		switch s[i] {
		case '(':
			end, found = end+1, true
		case ')':
			end, found = end-1, true
			low = min(low, end)
		}
		return 0
	})
	return end, low, found
}

// stripParens removes parentheses that enclose all of s: "(a OR b)"
// becomes "a OR b", "(a) OR (b)" stays.
func stripParens(s string) string {
	for len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' {
		inner := s[1 : len(s)-1]
		if end, low, _ := parens(inner); end != 0 || low < 0 {
			return s
		}
		s = strings.TrimSpace(inner)
	}
	return s
}

// parseFilter parses the filter parameter. fields maps every accepted
// spelling of a field name to the field. No filter matches everything.
func (c *call) parseFilter(fields map[string]filterField) (*filter, *chatapi.Error) {
	s := strings.TrimSpace(c.q.Get("filter"))
	if s == "" {
		return &filter{}, nil
	}
	unsupported := func(why string) *chatapi.Error {
		return invalidArgument(fmt.Sprintf("chat-broker emulator: filter %q: %s", s, why))
	}
	groups, err := splitFilter(s)
	if err != nil {
		return nil, unsupported(err.Error())
	}
	f := &filter{}
	for _, group := range groups {
		var or []clause
		for _, p := range group {
			m := clauseRE.FindStringSubmatch(p)
			if m == nil {
				return nil, unsupported(fmt.Sprintf("cannot read %q as FIELD OPERATOR VALUE", p))
			}
			field, ok := fields[m[1]]
			if !ok {
				return nil, unsupported(fmt.Sprintf("cannot filter on %q", m[1]))
			}
			cl := clause{field: field, op: m[2], value: unquote(m[3])}
			switch field.kind {
			case kindString:
				if cl.op != "=" && cl.op != "!=" {
					return nil, unsupported(fmt.Sprintf("%s takes only = and !=", m[1]))
				}
			case kindTime:
				if cl.op == ":" {
					return nil, unsupported(fmt.Sprintf("%s takes a comparison, not :", m[1]))
				}
				t, err := time.Parse(time.RFC3339Nano, cl.value)
				if err != nil {
					return nil, unsupported(fmt.Sprintf("%s needs an RFC 3339 time, got %q", m[1], cl.value))
				}
				cl.time = t
			}
			or = append(or, cl)
		}
		f.groups = append(f.groups, or)
	}
	return f, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// match reports whether a resource passes the filter. get returns the
// value of a field by canonical name.
func (f *filter) match(get func(field string) (string, time.Time)) bool {
	for _, or := range f.groups {
		if !slices.ContainsFunc(or, func(cl clause) bool { return cl.match(get) }) {
			return false
		}
	}
	return true
}

func (cl clause) match(get func(field string) (string, time.Time)) bool {
	s, t := get(cl.field.name)
	if cl.field.kind == kindString {
		return (s == cl.value) == (cl.op == "=")
	}
	switch cl.op {
	case "=":
		return t.Equal(cl.time)
	case "!=":
		return !t.Equal(cl.time)
	case ">":
		return t.After(cl.time)
	case ">=":
		return !t.Before(cl.time)
	case "<":
		return t.Before(cl.time)
	case "<=":
		return !t.After(cl.time)
	}
	return false
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
