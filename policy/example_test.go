package policy_test

import (
	"fmt"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
)

// Parse a policy, identify a caller by its secret, and decide two calls.
// A test like this in your CI pins down what your policy allows.
func Example() {
	const secret = "s3cret-of-the-notifier"
	file := `
version: 1
callers:
  - name: notifier
    identify:
      secretSHA256: ` + policy.HashSecret(secret) + `
    allow:
      - methods: [spaces.messages.create, spaces.messages.get]
        spaces: [spaces/AAAA]
    scopes: [chat.bot]
`
	p, err := policy.Parse("policy.yaml", []byte(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	c, ok := p.CallerBySecret(secret)
	if !ok {
		fmt.Println("unknown caller")
		return
	}
	create, _ := chatapi.Lookup("spaces.messages.create")

	d := p.Decide(c, create, "spaces/AAAA", "")
	fmt.Println(d.Allow, d.Rule, d.Scopes)

	d = p.Decide(c, create, "spaces/BBBB", "")
	fmt.Println(d.Allow, d.Reason)
	fmt.Println(d.Message)
	// Output:
	// true callers[0].allow[0] [chat.bot]
	// false SPACE_NOT_ALLOWED
	// caller "notifier" may not call spaces.messages.create in spaces/BBBB; add "spaces/BBBB" to callers[0].allow[0].spaces in policy.yaml
}

// Load your own policy file and check the calls that must, and must not,
// go through.
func ExampleLoad() {
	p, err := policy.Load("testdata/policy.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, tc := range []struct {
		caller, method, space, subject string
	}{
		{"notifier", "spaces.messages.create", "spaces/AAAA", ""},
		{"notifier", "spaces.messages.delete", "spaces/AAAA", ""},
		{"archiver", "spaces.messages.list", "spaces/AAAA", ""},
		{"archiver", "spaces.messages.reactions.list", "spaces/AAAA", "alice@example.com"},
		{"archiver", "spaces.messages.reactions.list", "spaces/AAAA", "mallory@example.net"},
	} {
		c, _ := p.CallerByName(tc.caller)
		m, _ := chatapi.Lookup(tc.method)
		d := p.Decide(c, m, tc.space, tc.subject)
		if d.Allow {
			fmt.Printf("%s %s: allowed by %s with %v\n", tc.caller, tc.method, d.Rule, d.Scopes)
		} else {
			fmt.Printf("%s %s: %s\n", tc.caller, tc.method, d.Reason)
		}
	}
	// Output:
	// notifier spaces.messages.create: allowed by callers[0].allow[0] with [chat.bot]
	// notifier spaces.messages.delete: METHOD_NOT_ALLOWED
	// archiver spaces.messages.list: allowed by callers[1].allow[0] with [chat.app.messages.readonly]
	// archiver spaces.messages.reactions.list: allowed by callers[1].allow[0] with [chat.messages.readonly]
	// archiver spaces.messages.reactions.list: SUBJECT_NOT_ALLOWED
}

// Parse lists every problem, each with the file, the field and the fix.
func ExampleParse_errors() {
	_, err := policy.Parse("policy.yaml", []byte(`
version: 1
callers:
  - name: notifier
    identify: {secretSHA256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}
    allow:
      - methods: [spaces.message.create, spaces.messages.list]
        spaces: [AAAA]
    scopes: [chat.bot, chat.bott]
`))
	fmt.Println(err)
	// Output:
	// policy.yaml: callers[0].allow[0].methods[0]: unknown method "spaces.message.create"; did you mean "spaces.messages.create"?
	// policy.yaml: callers[0].allow[0].spaces[0]: "AAAA" is not a space name; write "spaces/AAAA"
	// policy.yaml: callers[0].scopes[1]: unknown scope "chat.bott"; did you mean "chat.bot"?
}

func ExampleHashSecret() {
	// What `chat-broker hash-secret` prints, and what identify.secretSHA256 holds.
	fmt.Println(policy.HashSecret("password"))
	// Output:
	// 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
}
