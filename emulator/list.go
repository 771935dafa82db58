package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
)

// listSpec is what sets one list method's paging apart from another's.
type listSpec struct {
	// field names the items in the answer: "spaces", "messages", …
	field string
	// kind is written into page tokens, so that a token from one list is
	// refused by another.
	kind string
	// defSize is the page size when none is asked for; maxSize caps it.
	defSize, maxSize int
	// filter maps every accepted spelling of a filter field to the field;
	// nil for a method that reads its filter itself.
	filter map[string]filterField
	// ordered: the method takes orderBy create_time ASC or DESC, and its
	// tokens name the direction.
	ordered bool
}

var (
	spacesList    = &listSpec{field: "spaces", kind: "spaces", defSize: 100, maxSize: 1000, filter: spaceFilterFields}
	membersList   = &listSpec{field: "memberships", kind: "members", defSize: 100, maxSize: 1000, filter: memberFilterFields}
	messagesList  = &listSpec{field: "messages", kind: "messages", defSize: 25, maxSize: 1000, filter: messageFilterFields, ordered: true}
	reactionsList = &listSpec{field: "reactions", kind: "reactions", defSize: 25, maxSize: 200, filter: reactionFilterFields}
	eventsList    = &listSpec{field: "spaceEvents", kind: "spaceEvents", defSize: 100, maxSize: 1000}
)

// listParams are a list request's paging parameters.
type listParams struct {
	field  string
	kind   string // the page token kind, with the direction for an ordered list
	size   int
	after  int64 // the position the page token names; -1 on the first page
	desc   bool  // newest first
	filter *filter
}

// readList reads a list request's parameters in the order Chat checks
// them: pageSize, orderBy, pageToken, filter.
func (c *call) readList(spec *listSpec) (*listParams, *chatapi.Error) {
	p := &listParams{field: spec.field, kind: spec.kind, filter: &filter{}}
	var err *chatapi.Error
	if p.size, err = c.pageSize(spec.defSize, spec.maxSize); err != nil {
		return nil, err
	}
	if spec.ordered {
		switch ob := strings.Join(strings.Fields(strings.ToLower(c.q.Get("orderBy"))), " "); ob {
		case "", "createtime", "create_time", "createtime asc", "create_time asc":
			p.kind += "-asc"
		case "createtime desc", "create_time desc":
			p.kind, p.desc = p.kind+"-desc", true
		default:
			return nil, invalidArgument(fmt.Sprintf("chat-broker emulator: orderBy %q: only create_time ASC or DESC is supported", c.q.Get("orderBy")))
		}
	}
	if p.after, err = c.readPageToken(p.kind); err != nil {
		return nil, err
	}
	if spec.filter != nil {
		if p.filter, err = c.parseFilter(spec.filter); err != nil {
			return nil, err
		}
	}
	return p, nil
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

// page answers one page of a list. items are in ascending order of pos,
// an item's position, which a page token names; a newest-first list walks
// them backwards. The page holds the first p.size items past the token's
// position that match accepts (nil accepts all), in their wire form.
func page[T any](p *listParams, items []T, pos func(T) int64, match func(T) bool, wire func(T) any) listPage {
	if p.desc {
		items = slices.Clone(items)
		slices.Reverse(items)
	}
	out := listPage{field: p.field}
	var last T
	for _, it := range items {
		switch {
		case p.after >= 0 && !p.desc && pos(it) <= p.after,
			p.after >= 0 && p.desc && pos(it) >= p.after,
			match != nil && !match(it):
			continue
		}
		if len(out.items) == p.size {
			out.next = pageToken(p.kind, pos(last))
			break
		}
		out.items = append(out.items, wire(it))
		last = it
	}
	return out
}

// listPage is a list method's answer: the page's items under the method's
// field, then nextPageToken; each is left out when empty, as Chat does.
type listPage struct {
	field string
	items []any
	next  string
}

// MarshalJSON writes the items before the token, as Chat does. Field
// names and page tokens are plain ASCII, which %q quotes as JSON does.
func (p listPage) MarshalJSON() ([]byte, error) {
	b := []byte("{")
	if len(p.items) > 0 {
		items, err := json.Marshal(p.items)
		if err != nil {
			return nil, err
		}
		b = fmt.Appendf(b, "%q:%s", p.field, items)
	}
	if p.next != "" {
		if len(p.items) > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%q:%q", "nextPageToken", p.next)
	}
	return append(b, '}'), nil
}
