package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// timestamp formats a time as Chat does: RFC 3339 in UTC.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// readBody reads the request's JSON object into a map keyed by camelCase
// field name. Like Google's JSON parser it accepts snake_case names too,
// and it refuses a name the resource does not have.
func (c *call) readBody(resource string, known map[string]bool) (map[string]json.RawMessage, *chatapi.Error) {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, invalidArgument(fmt.Sprintf("chat-broker emulator: %s needs a JSON body with Content-Type application/json, got %q", c.m.ID, ct))
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, c.m.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, chatapi.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request payload size exceeds the limit: %d bytes.", tooBig.Limit))
	}
	if err != nil {
		return nil, invalidArgument("chat-broker emulator: read request body: " + err.Error())
	}
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) == 0 {
		return fields, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, invalidArgument("Invalid JSON payload received. " + err.Error())
	}
	for k, v := range raw {
		name := camelCase(k)
		if !known[name] {
			return nil, invalidArgument(fmt.Sprintf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", k, resource))
		}
		if string(v) != "null" {
			fields[name] = v
		}
	}
	return fields, nil
}

// stringField decodes a string field of a body read by readBody.
func stringField(fields map[string]json.RawMessage, resource, name string) (string, *chatapi.Error) {
	raw, ok := fields[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidArgument(fmt.Sprintf("Invalid value at '%s.%s' (TYPE_STRING), %s", resource, snakeCase(name), raw))
	}
	return s, nil
}

// camelCase turns "cards_v2" into "cardsV2".
func camelCase(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if p := parts[i]; p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// snakeCase turns "cardsV2" into "cards_v2".
func snakeCase(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			sb.WriteByte('_')
			r += 'a' - 'A'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// pageSize reads the pageSize parameter: 0 or absent means def, more than
// max means max.
func (c *call) pageSize(def, max int) (int, *chatapi.Error) {
	s := c.q.Get("pageSize")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return 0, invalidArgument(fmt.Sprintf("Invalid value at 'page_size' (TYPE_INT32), %q", s))
	case n < 0:
		return 0, invalidArgument("The page size must not be negative.")
	case n == 0:
		return def, nil
	case n > max:
		return max, nil
	}
	return n, nil
}

// Page tokens are opaque to clients. Inside they name the kind of list and
// a position, so a token from one list is refused by another.
func pageToken(kind string, pos int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("emu1:" + kind + ":" + strconv.FormatInt(pos, 10)))
}

// paginate returns the first size items keep accepts, in order, and the
// token for the page after them ("" when none is left). A list's keep
// skips what its page token says was already listed; pos is an item's
// position in that token.
func paginate[T any](items []T, size int, kind string, pos func(T) int64, keep func(T) bool) ([]T, string) {
	var page []T
	for _, it := range items {
		if !keep(it) {
			continue
		}
		if len(page) == size {
			return page, pageToken(kind, pos(page[len(page)-1]))
		}
		page = append(page, it)
	}
	return page, ""
}

// wireAll turns a page of items into their wire form.
func wireAll[T any](page []T, wire func(T) any) []any {
	out := make([]any, len(page))
	for i, it := range page {
		out[i] = wire(it)
	}
	return out
}

// readPageToken returns the position in the pageToken parameter, or -1
// when there is none.
func (c *call) readPageToken(kind string) (int64, *chatapi.Error) {
	s := c.q.Get("pageToken")
	if s == "" {
		return -1, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	rest, ok := strings.CutPrefix(string(b), "emu1:"+kind+":")
	pos, perr := strconv.ParseInt(rest, 10, 64)
	if err != nil || !ok || perr != nil || pos < 0 {
		return 0, invalidArgument("The page token is not valid.")
	}
	return pos, nil
}

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
			if depth, _ := parenDepth(atom); depth != 0 || hasParenOutside(atom) {
				return nil, fmt.Errorf("parentheses are supported only around a group of ORs")
			}
			or = append(or, atom)
		}
		out = append(out, or)
	}
	return out, nil
}

// splitOutside splits s at every sep that is outside quotes and
// parentheses.
func splitOutside(s, sep string) []string {
	var parts []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], sep):
			parts = append(parts, s[start:i])
			start = i + len(sep)
			i += len(sep) - 1
		}
	}
	return append(parts, s[start:])
}

// parenDepth returns the parenthesis depth at the end of s, counting only
// parentheses outside quotes, and the lowest depth reached before the end.
func parenDepth(s string) (end, low int) {
	depth, quote := 0, byte(0)
	low = 0
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '(':
			depth++
		case ch == ')':
			depth--
			if depth < low {
				low = depth
			}
		}
	}
	return depth, low
}

func hasParenOutside(s string) bool {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quote != 0:
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
		case ch == '(' || ch == ')':
			return true
		}
	}
	return false
}

// stripParens removes parentheses that enclose all of s: "(a OR b)"
// becomes "a OR b", "(a) OR (b)" stays.
func stripParens(s string) string {
	for len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' {
		inner := s[1 : len(s)-1]
		if end, low := parenDepth(inner); end != 0 || low < 0 {
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
