package emulator

import (
	"regexp"
	"slices"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
)

// searchFields are the fields of a SearchMessagesRequest.
var searchFields = map[string]bool{"filter": true, "markupSyntax": true, "orderBy": true, "pageSize": true, "pageToken": true, "view": true}

var (
	searchSpaceRE = regexp.MustCompile(`space\.name\s*=\s*"?(spaces/[A-Za-z0-9_-]+)"?`)
	searchWordRE  = regexp.MustCompile(`"[^"]*"|[^\s()"]+`)
)

// searchMessages serves spaces.messages.search as Chat documents it: the
// parent must be spaces/-; the filter's space.name = "spaces/ID" terms
// (joined by OR) limit the spaces, and its other words and phrases must
// all appear in a message's text. Operators, other fields and functions
// are read as nothing. Like Chat, it returns no message an app posted,
// and only spaces the user is a member of.
func (c *call) searchMessages() (any, *chatapi.Error) {
	if c.vars["space"] != "-" {
		return nil, invalidArgument("Invalid parent: to search across spaces, set parent to spaces/-. Using any other value for parent results in an INVALID_ARGUMENT error.")
	}
	_, filter, err := c.readBodyString("SearchMessagesRequest", searchFields, "filter")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(filter) == "" {
		return nil, invalidArgument("The filter is required: give search keywords, for example \"pending reports\".")
	}
	var spaces, words []string
	for _, m := range searchSpaceRE.FindAllStringSubmatch(filter, -1) {
		spaces = append(spaces, m[1])
	}
	for _, w := range searchWordRE.FindAllString(searchSpaceRE.ReplaceAllString(filter, " "), -1) {
		w = strings.Trim(w, `"`)
		if w == "" || w == "AND" || w == "OR" || strings.ContainsAny(w, "=<>:") || strings.HasSuffix(w, "()") {
			continue
		}
		words = append(words, strings.ToLower(w))
	}
	user := c.identity()
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	var results []any
	for _, sp := range e.sortedSpacesLocked() {
		if len(spaces) > 0 && !slices.Contains(spaces, sp.name) || !sp.hasHumanLocked(user) {
			continue
		}
		for _, m := range sp.msgs {
			text := strings.ToLower(m.text)
			if m.sender == appUser || !allIn(words, text) {
				continue
			}
			results = append(results, map[string]any{"message": m.wire()})
		}
	}
	return map[string]any{"results": results}, nil
}

func allIn(words []string, text string) bool {
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}
