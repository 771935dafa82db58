package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
)

// FuzzParse checks that Parse never panics, that a failure is always an
// *Error whose every line names the file, and that whatever Parse accepts
// Decide can answer for every method.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"version: 1\ncallers:" + okCaller,
		secrets.Replace(decideFile),
		secrets.Replace("version: 1\ncallers:" + okCaller),
		"version: 1\ncallers:\n  - name: a\n    identify: {unixUID: 7}\n    allow: [~]\n    scopes: chat.bot\n",
		"{version: 1, callers: [{name: x, identify: {secretSHA256: " + HashSecret("x") + "}, allow: [{methods: ['*'], spaces: ['*']}], scopes: [chat.bot], subjects: ['*@example.com']}]}",
		"version: 1\n---\ncallers: []\n",
		"a: &a [*a, *a]\n",
		"callers: [\n",
	} {
		f.Add([]byte(seed))
	}
	methods := chatapi.Methods()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("got %T %v, want an *Error with problems", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml: ") {
					t.Fatalf("error line does not name the file: %q", line)
				}
			}
			return
		}
		if len(p.Callers()) == 0 {
			t.Fatal("accepted a policy with no callers")
		}
		for _, c := range p.Callers() {
			for _, m := range methods {
				p.Decide(c, m, "spaces/AAAA", "")
				p.Decide(c, m, "", "user@example.com")
			}
		}
	})
}
