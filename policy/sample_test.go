package policy_test

import (
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
)

// The sample policy users copy (examples/policy.yaml) passes the same
// checks as serve, and means what its comments say.
func TestSamplePolicy(t *testing.T) {
	p, err := policy.Load("../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	method := func(id string) *chatapi.Method { m, _ := chatapi.Lookup(id); return m }
	for _, tc := range []struct {
		caller, method, space, subject string
		allow                          bool
		scope                          chatapi.Scope
	}{
		{"notifier", "spaces.messages.create", "spaces/AAAAAAAAAAA", "", true, chatapi.ScopeBot},
		{"notifier", "spaces.messages.create", "spaces/CCCCCCCCCCC", "", false, ""},
		{"notifier", "spaces.messages.delete", "spaces/AAAAAAAAAAA", "", false, ""},
		{"reporter", "spaces.messages.list", "spaces/AAAAAAAAAAA", "", true, chatapi.ScopeAppMessagesReadonly},
		{"reporter", "spaces.list", "", "", true, chatapi.ScopeBot},
		{"helpdesk", "spaces.messages.create", "spaces/ZZZZZZZZZZZ", "ann@example.com", true, chatapi.ScopeMessagesCreate},
		{"helpdesk", "spaces.messages.create", "spaces/ZZZZZZZZZZZ", "ann@example.org", false, ""},
	} {
		t.Run(tc.caller+" "+tc.method+" "+tc.space+" "+tc.subject, func(t *testing.T) {
			c, ok := p.CallerByName(tc.caller)
			if !ok {
				t.Fatalf("no caller %q", tc.caller)
			}
			d := p.Decide(c, method(tc.method), tc.space, tc.subject)
			if d.Allow != tc.allow || (tc.allow && (len(d.Scopes) != 1 || d.Scopes[0] != tc.scope)) {
				t.Errorf("got %+v, want allow %v with %s", d, tc.allow, tc.scope)
			}
		})
	}
}
