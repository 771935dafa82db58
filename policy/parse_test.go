package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
)

// secrets replaces H1…H4 in test files with the hashes of secret-1…4.
var secrets = strings.NewReplacer(
	"H1", HashSecret("secret-1"), "H2", HashSecret("secret-2"),
	"H3", HashSecret("secret-3"), "H4", HashSecret("secret-4"),
)

func mustParse(t testing.TB, file string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(secrets.Replace(file)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestParseValid(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		file       string
		wantNames  []string
		wantScopes []chatapi.Scope // of the first caller
		wantLimits Limits          // of the first caller
		wantSubjs  []string        // of the first caller
	}{
		{
			desc: "minimal",
			file: `
version: 1
callers:
  - name: notifier
    identify: {secretSHA256: H1}
    allow:
      - methods: [spaces.messages.create]
        spaces: [spaces/AAAA]
    scopes: [chat.bot]
`,
			wantNames:  []string{"notifier"},
			wantScopes: []chatapi.Scope{"chat.bot"},
		},
		{
			desc: "everything the format offers",
			file: `
# A leading document marker and comments are fine.
---
version: 1
callers:
  - name: ops.bot_2-x
    identify:
      secretSHA256: "H1"
    allow:
      - methods: ["spaces.messages.*", chat.spaces.get, spaces.members.list]
        spaces: [spaces/AAAA, spaces/b-B_9]
      - methods: ["*"]
        spaces: ["*"]
    scopes:
      - https://www.googleapis.com/auth/chat.app.messages.readonly
      - chat.bot
      - chat.messages
    subjects: [alice@example.com, "*@Corp.Example.org", Bob.Smith+chat@example.com]
    limits: {perMinute: 600, burst: 20}
  - name: "123"
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.list], spaces: ["*"]}]
    scopes: [chat.bot]
    subjects: ~
    limits: {}
`,
			wantNames:  []string{"ops.bot_2-x", "123"},
			wantScopes: []chatapi.Scope{"chat.app.messages.readonly", "chat.bot", "chat.messages"},
			wantLimits: Limits{PerMinute: 600, Burst: 20},
			wantSubjs:  []string{"alice@example.com", "*@Corp.Example.org", "Bob.Smith+chat@example.com"},
		},
		{
			desc: "JSON is YAML",
			file: `{"version": 1, "callers": [{"name": "j", "identify": {"secretSHA256": "H1"},
			  "allow": [{"methods": ["spaces.create"], "spaces": ["*"]}], "scopes": ["chat.app.spaces"]}]}`,
			wantNames:  []string{"j"},
			wantScopes: []chatapi.Scope{"chat.app.spaces"},
		},
		{
			desc: "burst defaults to one second's worth of perMinute",
			file: `
version: 1
callers:
  - name: a
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
    limits: {perMinute: 90}
`,
			wantNames:  []string{"a"},
			wantScopes: []chatapi.Scope{"chat.bot"},
			wantLimits: Limits{PerMinute: 90, Burst: 2},
		},
		{
			desc: "a slow limit still gets a burst of one",
			file: `
version: 1
callers:
  - name: a
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
    limits: {perMinute: 1}
`,
			wantNames:  []string{"a"},
			wantScopes: []chatapi.Scope{"chat.bot"},
			wantLimits: Limits{PerMinute: 1, Burst: 1},
		},
		{
			desc: "a user-only method is fine with subjects and a user scope",
			file: `
version: 1
callers:
  - name: reactor
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.reactions.create, customEmojis.list, spaces.setup], spaces: ["*"]}]
    scopes: [chat.messages.reactions, chat.customemojis.readonly, chat.spaces.create]
    subjects: ["*@example.com"]
`,
			wantNames:  []string{"reactor"},
			wantScopes: []chatapi.Scope{"chat.messages.reactions", "chat.customemojis.readonly", "chat.spaces.create"},
			wantSubjs:  []string{"*@example.com"},
		},
	} {
		p, err := Parse("policy.yaml", []byte(secrets.Replace(tc.file)))
		if err != nil {
			t.Errorf("%s: got error\n%v\nwant none", tc.desc, err)
			continue
		}
		var names []string
		for _, c := range p.Callers() {
			names = append(names, c.Name)
		}
		c := p.Callers()[0]
		if !reflect.DeepEqual(names, tc.wantNames) {
			t.Errorf("%s: names: got %q, want %q", tc.desc, names, tc.wantNames)
		}
		if !reflect.DeepEqual(c.Scopes, tc.wantScopes) {
			t.Errorf("%s: scopes: got %q, want %q", tc.desc, c.Scopes, tc.wantScopes)
		}
		if c.Limits != tc.wantLimits {
			t.Errorf("%s: limits: got %+v, want %+v", tc.desc, c.Limits, tc.wantLimits)
		}
		if len(c.Subjects)+len(tc.wantSubjs) > 0 && !reflect.DeepEqual(c.Subjects, tc.wantSubjs) {
			t.Errorf("%s: subjects: got %q, want %q", tc.desc, c.Subjects, tc.wantSubjs)
		}
		for i, c := range p.Callers() {
			if got, ok := p.CallerByName(c.Name); !ok || got != c {
				t.Errorf("%s: CallerByName(%q) = %v, %v; want callers[%d]", tc.desc, c.Name, got, ok, i)
			}
		}
		if p.File() != "policy.yaml" {
			t.Errorf("%s: File() = %q, want policy.yaml", tc.desc, p.File())
		}
	}
}

// A valid caller to build invalid files around.
const okCaller = `
  - name: ok
    identify: {secretSHA256: H4}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		desc string
		file string
		want string
	}{
		{
			desc: "YAML syntax error",
			file: "version: 1\ncallers: [\n",
			want: `policy.yaml: line 2: invalid YAML: did not find expected node content`,
		},
		{
			desc: "YAML syntax error without a line",
			file: "version: 1 a: b\n",
			want: `policy.yaml: invalid YAML: mapping values are not allowed in this context`,
		},
		{
			desc: "tab indentation",
			file: "version: 1\ncallers:\n\t- name: a\n",
			want: `policy.yaml: line 3: invalid YAML: found character that cannot start any token`,
		},
		{
			desc: "duplicate keys",
			file: "version: 1\nversion: 1\ncallers:\n  - name: a\n    name: b\n",
			want: "policy.yaml: line 2: key \"version\" is set twice in the same mapping; keep one\n" +
				`policy.yaml: line 5: key "name" is set twice in the same mapping; keep one`,
		},
		{
			desc: "second document",
			file: "version: 1\ncallers:" + okCaller + "--- # more\ncallers: []\n",
			want: `policy.yaml: line 7: a second YAML document starts here; a policy file holds one document, so remove this "---" and what follows, or merge the callers into the first`,
		},
		{
			desc: "empty file",
			file: "",
			want: "policy.yaml: version: missing; add \"version: 1\" at the top of the file\n" +
				`policy.yaml: callers: no callers; add at least one (default deny: with no callers every request is refused)`,
		},
		{
			desc: "not a mapping",
			file: "- version: 1\n",
			want: `policy.yaml: got a list, want a mapping of version, callers`,
		},
		{
			desc: "wrong version, empty callers",
			file: "version: 2\ncallers: []\n",
			want: "policy.yaml: version: 2 is not a version of this format; the only version is 1\n" +
				`policy.yaml: callers: no callers; add at least one (default deny: with no callers every request is refused)`,
		},
		{
			desc: "unknown fields, with and without a near match, in field order",
			file: `
version: 1
Callers: []
callers:
  - name: a
    identify: {secretSha256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A], space: [spaces/B]}]
    scopes: [chat.bot]
    extra: true
    "odd key\n": 1
    limit: {perMinute: 1}
`,
			want: "policy.yaml: callers[0].identify: names no way to identify the caller; set secretSHA256 to the output of \"chat-broker hash-secret\" (or secretFile, unixUID, serviceAccount)\n" +
				"policy.yaml: callers[0].identify.secretSha256: unknown field; did you mean \"secretSHA256\"?\n" +
				"policy.yaml: callers[0].allow[0].space: unknown field; did you mean \"spaces\"?\n" +
				"policy.yaml: callers[0].extra: unknown field; the fields here are name, identify, allow, scopes, subjects, limits\n" +
				"policy.yaml: callers[0].limit: unknown field; did you mean \"limits\"?\n" +
				"policy.yaml: callers[0].\"odd key\\n\": unknown field; the fields here are name, identify, allow, scopes, subjects, limits\n" +
				`policy.yaml: Callers: unknown field; did you mean "callers"?`,
		},
		{
			desc: "wrong types, one line each",
			file: `
version: "1"
callers:
  - name: 0123
    identify: {secretSHA256: H1}
    allow: [{methods: spaces.messages.create, spaces: [spaces/A, 7]}]
    scopes: [chat.bot, yes]
    subjects: {a: b}
    limits: {perMinute: 1.5, burst: many}
  - ~
  - just a string
`,
			want: "policy.yaml: version: got a string, want a whole number\n" +
				"policy.yaml: callers[0].name: got a number, want a string; put the value in quotes\n" +
				"policy.yaml: callers[0].allow[0].methods: got a string, want a list; write it as [ … ] or as lines starting with \"- \"\n" +
				"policy.yaml: callers[0].allow[0].spaces[1]: got a number, want a string; put the value in quotes\n" +
				"policy.yaml: callers[0].scopes[1]: got true/false, want a string; put the value in quotes\n" +
				"policy.yaml: callers[0].subjects: got a mapping, want a list; write it as [ … ] or as lines starting with \"- \"\n" +
				"policy.yaml: callers[0].limits.perMinute: got 1.5, want a whole number\n" +
				"policy.yaml: callers[0].limits.burst: got a string, want a whole number\n" +
				"policy.yaml: callers[1]: empty entry; remove it\n" +
				`policy.yaml: callers[2]: got a string, want a mapping of name, identify, allow, scopes, subjects, limits`,
		},
		{
			desc: "names: missing, invalid, used three times",
			file: `
version: 1
callers:
  - name: notifier
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - identify: {secretSHA256: H2}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: notifier
    identify: {secretSHA256: H3}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: "My Notifier"
    identify: {secretSHA256: H4}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: notifier
    identify: {secretSHA256: ` + HashSecret("secret-5") + `}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: "-"
    identify: {secretSHA256: ` + HashSecret("secret-6") + `}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`,
			want: "policy.yaml: callers[0].name: \"notifier\" is used 3 times (also callers[2].name, callers[4].name); caller names must be unique\n" +
				"policy.yaml: callers[1].name: missing; name the caller, as in name: notifier\n" +
				"policy.yaml: callers[3].name: \"My Notifier\" is not a valid name; use lower-case letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit, as in \"my-notifier\"\n" +
				`policy.yaml: callers[5].name: "-" is not a valid name; use lower-case letters, digits, ".", "_" and "-", starting with a letter or digit`,
		},
		{
			desc: "the brief's duplicate-name example",
			file: `
version: 1
callers:
  - name: notifier
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]` + okCaller + `
  - name: notifier
    identify: {secretSHA256: H3}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`,
			want: `policy.yaml: callers[0].name: "notifier" is used twice (also callers[2].name); caller names must be unique`,
		},
		{
			desc: "identify problems; the secret itself is never echoed",
			file: `
version: 1
callers:
  - name: a
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: b
    identify: {secretSHA256: H1, unixUID: 1001}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: c
    identify: {unixUID: -1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: d
    identify: {serviceAccount: Prod/d}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: e
    identify: {secretSHA256: "hunter2-the-actual-secret"}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: f
    identify: {secretSHA256: "` + strings.ToUpper(HashSecret("secret-9")) + `"}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: g
    identify: {secretSHA256: "` + HashSecret("") + `"}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: h
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: i
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: j
    identify: {}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`,
			want: "policy.yaml: callers[0].identify: missing; set identify.secretSHA256 to the output of \"chat-broker hash-secret\"\n" +
				"policy.yaml: callers[1].identify: sets secretSHA256 and unixUID/unixGID; set exactly one way to identify the caller\n" +
				"policy.yaml: callers[2].identify.unixUID: -1 is not a Unix id; want 0 to 4294967294\n" +
				"policy.yaml: callers[3].identify.serviceAccount: \"Prod/d\": want namespace/name of a Kubernetes service account, e.g. prod/notifier\n" +
				"policy.yaml: callers[4].identify.secretSHA256: want 64 lower-case hex characters, got 25 characters; put the output of \"chat-broker hash-secret\" here, never the secret itself\n" +
				"policy.yaml: callers[5].identify.secretSHA256: must be lower-case hex; write it in lower case\n" +
				"policy.yaml: callers[6].identify.secretSHA256: is the hash of an empty secret; choose a secret and put the output of \"chat-broker hash-secret\" here\n" +
				"policy.yaml: callers[7].identify.secretSHA256: the same hash is used twice (also callers[8].identify.secretSHA256 or .secretFile); give each caller its own secret, or a request's caller would be ambiguous\n" +
				`policy.yaml: callers[9].identify: names no way to identify the caller; set secretSHA256 to the output of "chat-broker hash-secret" (or secretFile, unixUID, serviceAccount)`,
		},
		{
			desc: "allow problems",
			file: `
version: 1
callers:
  - name: a
    identify: {secretSHA256: H1}
    scopes: [chat.bot]
  - name: b
    identify: {secretSHA256: H2}
    allow:
      - {methods: [], spaces: []}
      - methods:
          - spaces.message.create
          - spaces.mesages.*
          - spaces.*.get
          - spaces.messages.create.*
          - frobnicate
          - chat.spaces.list
          - media.download
          - spaces.messages.get
        spaces: [spaces/AAAA, BBBB, "spaces/*", "https://chat.google.com/room/X", "*"]
      - methods: [spaces.list]
        spaces: [spaces/AAAA]
      - ~
    scopes: [chat.bot]
`,
			want: "policy.yaml: callers[0].allow: no rules; add one, as in allow: [{methods: [spaces.messages.create], spaces: [\"spaces/AAAA\"]}] (default deny: a caller with no rules can call nothing)\n" +
				"policy.yaml: callers[1].allow[0].methods: no methods; list method ids such as \"spaces.messages.create\", groups such as \"spaces.messages.*\", or \"*\"\n" +
				"policy.yaml: callers[1].allow[0].spaces: no spaces; list spaces as \"spaces/ID\", or [\"*\"] for every space\n" +
				"policy.yaml: callers[1].allow[1].methods[0]: unknown method \"spaces.message.create\"; did you mean \"spaces.messages.create\"?\n" +
				"policy.yaml: callers[1].allow[1].methods[1]: group \"spaces.mesages.*\" matches no method; did you mean \"spaces.messages.*\"?\n" +
				"policy.yaml: callers[1].allow[1].methods[2]: \"spaces.*.get\": \"*\" may only stand alone or end a group, as in \"spaces.messages.*\"\n" +
				"policy.yaml: callers[1].allow[1].methods[3]: group \"spaces.messages.create.*\" matches no method; did you mean \"spaces.messages.create\"?\n" +
				"policy.yaml: callers[1].allow[1].methods[4]: unknown method \"frobnicate\"; use a method id such as \"spaces.messages.create\", a group such as \"spaces.messages.*\", or \"*\"\n" +
				"policy.yaml: callers[1].allow[1].spaces[1]: \"BBBB\" is not a space name; write \"spaces/BBBB\"\n" +
				"policy.yaml: callers[1].allow[1].spaces[2]: \"spaces/*\" is not a pattern; write \"*\" for every space\n" +
				"policy.yaml: callers[1].allow[1].spaces[3]: \"https://chat.google.com/room/X\" is not a space name; write \"spaces/ID\" with the ID from the space's URL, or \"*\" for every space\n" +
				"policy.yaml: callers[1].allow[1].spaces[4]: \"*\" must be the only entry in spaces; remove it or the other entries\n" +
				"policy.yaml: callers[1].allow[2].methods[0]: spaces.list names no space, so a rule with specific spaces never allows it; list it in a rule with spaces: [\"*\"]\n" +
				`policy.yaml: callers[1].allow[3]: empty entry; remove it`,
		},
		{
			desc: "scope problems",
			file: `
version: 1
callers:
  - name: a
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: []
  - name: b
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes:
      - chat.bott
      - chat.bot
      - https://www.googleapis.com/auth/chat.bot
      - https://www.googleapis.com/auth/cloud-platform
      - https://www.googleapis.com/auth/chat.mesages
      - chat.bot
`,
			want: "policy.yaml: callers[0].scopes: no scopes; grant at least one, usually \"chat.bot\"\n" +
				"policy.yaml: callers[1].scopes[0]: unknown scope \"chat.bott\"; did you mean \"chat.bot\"?\n" +
				"policy.yaml: callers[1].scopes[1]: \"chat.bot\" is used 3 times (also callers[1].scopes[2], callers[1].scopes[5]); list each scope once\n" +
				"policy.yaml: callers[1].scopes[3]: unknown scope \"https://www.googleapis.com/auth/cloud-platform\"; use a Chat scope such as \"chat.bot\"\n" +
				`policy.yaml: callers[1].scopes[4]: unknown scope "https://www.googleapis.com/auth/chat.mesages"; did you mean "chat.messages"?`,
		},
		{
			desc: "explicit methods no granted scope can serve",
			file: `
version: 1
callers:
  - name: a
    identify: {secretSHA256: H1}
    allow:
      - methods: [spaces.messages.list, spaces.messages.reactions.create, spaces.create, spaces.messages.get]
        spaces: ["*"]
      - methods: ["spaces.*"]
        spaces: ["*"]
    scopes: [chat.bot]
  - name: b
    identify: {secretSHA256: H2}
    allow:
      - methods: [spaces.messages.list, spaces.messages.reactions.create, spaces.completeImport]
        spaces: ["*"]
    scopes: [chat.bot]
    subjects: [bob@example.com]
`,
			want: "policy.yaml: callers[0].allow[0].methods[0]: spaces.messages.list needs \"chat.app.messages.readonly\", which callers[0].scopes does not grant; add \"chat.app.messages.readonly\" to callers[0].scopes\n" +
				"policy.yaml: callers[0].allow[0].methods[1]: spaces.messages.reactions.create works only with user authentication (domain-wide delegation); add the users it may act as to callers[0].subjects and \"chat.messages.reactions.create\" to callers[0].scopes\n" +
				"policy.yaml: callers[0].allow[0].methods[2]: spaces.create needs one of \"chat.app.spaces.create\", \"chat.app.spaces\", which callers[0].scopes does not grant; add \"chat.app.spaces.create\" to callers[0].scopes\n" +
				"policy.yaml: callers[1].allow[0].methods[0]: spaces.messages.list needs \"chat.app.messages.readonly\" for app authentication or one of \"chat.messages.readonly\", \"chat.messages\", \"chat.import\" as a subject, which callers[1].scopes does not grant; add \"chat.app.messages.readonly\" to callers[1].scopes\n" +
				"policy.yaml: callers[1].allow[0].methods[1]: spaces.messages.reactions.create needs one of \"chat.messages.reactions.create\", \"chat.messages.reactions\", \"chat.messages\", \"chat.import\", which callers[1].scopes does not grant; add \"chat.messages.reactions.create\" to callers[1].scopes\n" +
				`policy.yaml: callers[1].allow[0].methods[2]: spaces.completeImport needs "chat.import", which callers[1].scopes does not grant; add "chat.import" to callers[1].scopes`,
		},
		{
			desc: "subjects and limits",
			file: `
version: 1
callers:
  - name: a
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
    subjects: ["*", "*@*", bob, "bob*@example.com", "@example.com", "a@b@example.com", "*@localhost", ok@example.com]
    limits: {perMinute: -5, burst: -1}
  - name: b
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
    limits: {burst: 5}
`,
			want: "policy.yaml: callers[0].subjects[0]: \"*\" would let the caller act as any user of any domain; list users, or \"*@example.com\" for the users of one domain\n" +
				"policy.yaml: callers[0].subjects[1]: \"*@*\" would let the caller act as any user of any domain; list users, or \"*@example.com\" for the users of one domain\n" +
				"policy.yaml: callers[0].subjects[2]: \"bob\" is not an email address or \"*@domain\" pattern; write \"user@example.com\", or \"*@example.com\" for every user of a domain\n" +
				"policy.yaml: callers[0].subjects[3]: \"bob*@example.com\" is not an email address or \"*@domain\" pattern; write \"user@example.com\", or \"*@example.com\" for every user of a domain\n" +
				"policy.yaml: callers[0].subjects[4]: \"@example.com\" is not an email address or \"*@domain\" pattern; write \"user@example.com\", or \"*@example.com\" for every user of a domain\n" +
				"policy.yaml: callers[0].subjects[5]: \"a@b@example.com\" is not an email address or \"*@domain\" pattern; write \"user@example.com\", or \"*@example.com\" for every user of a domain\n" +
				"policy.yaml: callers[0].subjects[6]: \"*@localhost\" is not an email address or \"*@domain\" pattern; write \"user@example.com\", or \"*@example.com\" for every user of a domain\n" +
				"policy.yaml: callers[0].limits.perMinute: -5 is negative; use a number of calls per minute, or 0 for no limit\n" +
				"policy.yaml: callers[0].limits.burst: -1 is negative; use a number of calls, or leave it out for one second's worth of perMinute\n" +
				`policy.yaml: callers[1].limits.burst: has no effect without perMinute; set perMinute too, or remove burst`,
		},
		{
			desc: "the brief's examples, across callers",
			file: `
version: 1
callers:
  - name: notifier
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot, chat.bott]
  - name: other
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.message.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`,
			want: "policy.yaml: callers[0].scopes[1]: unknown scope \"chat.bott\"; did you mean \"chat.bot\"?\n" +
				`policy.yaml: callers[1].allow[0].methods[0]: unknown method "spaces.message.create"; did you mean "spaces.messages.create"?`,
		},
	} {
		p, err := Parse("policy.yaml", []byte(secrets.Replace(tc.file)))
		if err == nil {
			t.Errorf("%s: got a policy with %d callers, want error\n%s", tc.desc, len(p.Callers()), tc.want)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%s: got error\n%s\nwant\n%s", tc.desc, got, tc.want)
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.File != "policy.yaml" || len(pe.Problems) != strings.Count(tc.want, "\n")+1 {
			t.Errorf("%s: got %#v, want an *Error with one problem per line", tc.desc, err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error echoes a secret", tc.desc)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(secrets.Replace("version: 1\ncallers:"+okCaller)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(good)
	if err != nil || p.File() != good {
		t.Fatalf("Load(good): got %v, %v; want a policy from %s", p, err, good)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 3\n"+"callers:"+secrets.Replace(okCaller)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ": version: 3 is not a version of this format; the only version is 1"; err == nil || err.Error() != want {
		t.Errorf("Load(bad): got %v, want %s", err, want)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "policy: ") {
		t.Errorf("Load(missing): got %v, want a policy: error wrapping fs.ErrNotExist", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(big)
	if want := big + ": the file is larger than 8 MiB; a policy file is a few kilobytes"; err == nil || err.Error() != want {
		t.Errorf("Load(big): got %v, want %s", err, want)
	}
}

func TestHashSecret(t *testing.T) {
	// The SHA-256 of "password", as every sha256sum prints it.
	if got, want := HashSecret("password"), "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"; got != want {
		t.Errorf("HashSecret(password) = %s, want %s", got, want)
	}
}

func TestCallerBySecret(t *testing.T) {
	p := mustParse(t, `
version: 1
callers:
  - name: one
    identify: {secretSHA256: H1}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
  - name: two
    identify: {secretSHA256: H2}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`)
	for _, tc := range []struct {
		desc, secret, want string
	}{
		{"first caller", "secret-1", "one"},
		{"second caller", "secret-2", "two"},
		{"wrong secret", "secret-3", ""},
		{"the hash itself is not the secret", HashSecret("secret-1"), ""},
		{"case matters", "SECRET-1", ""},
		{"empty", "", ""},
	} {
		c, ok := p.CallerBySecret(tc.secret)
		got := ""
		if ok {
			got = c.Name
		}
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: got %q, %v; want %q", tc.desc, got, ok, tc.want)
		}
	}
	if _, ok := p.CallerByName("three"); ok {
		t.Error("CallerByName(three): found a caller that does not exist")
	}
}

// Chat refuses chat.bot with a subject; Decide relies on the catalog
// never offering it as a user scope.
func TestCatalogNeverPairsBotWithSubject(t *testing.T) {
	for _, m := range chatapi.Methods() {
		for _, s := range append(append([]chatapi.Scope{}, m.UserScopes...), m.AdminScopes...) {
			if s == chatapi.ScopeBot {
				t.Errorf("%s: chat.bot is listed as a user or admin scope", m.ID)
			}
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "p.yaml", Problems: []Problem{{"", "whole file"}, {"callers[0]", "one caller"}}}
	if got, want := e.Error(), "p.yaml: whole file\np.yaml: callers[0]: one caller"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
