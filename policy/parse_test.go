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
			desc:       "burst defaults to one second's worth of perMinute",
			file:       "version: 1\ncallers:" + okCaller + "    limits: {perMinute: 90}\n",
			wantNames:  []string{"ok"},
			wantScopes: []chatapi.Scope{"chat.bot"},
			wantLimits: Limits{PerMinute: 90, Burst: 2},
		},
		{
			desc:       "a slow limit still gets a burst of one",
			file:       "version: 1\ncallers:" + okCaller + "    limits: {perMinute: 1}\n",
			wantNames:  []string{"ok"},
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
		t.Run(tc.desc, func(t *testing.T) {
			p := mustParse(t, tc.file)
			var names []string
			for _, c := range p.Callers() {
				names = append(names, c.Name)
			}
			c := p.Callers()[0]
			if !reflect.DeepEqual(names, tc.wantNames) {
				t.Errorf("names: got %q, want %q", names, tc.wantNames)
			}
			if !reflect.DeepEqual(c.Scopes, tc.wantScopes) {
				t.Errorf("scopes: got %q, want %q", c.Scopes, tc.wantScopes)
			}
			if c.Limits != tc.wantLimits {
				t.Errorf("limits: got %+v, want %+v", c.Limits, tc.wantLimits)
			}
			if len(c.Subjects)+len(tc.wantSubjs) > 0 && !reflect.DeepEqual(c.Subjects, tc.wantSubjs) {
				t.Errorf("subjects: got %q, want %q", c.Subjects, tc.wantSubjs)
			}
			for i, c := range p.Callers() {
				if got, ok := p.CallerByName(c.Name); !ok || got != c {
					t.Errorf("CallerByName(%q) = %v, %v; want callers[%d]", c.Name, got, ok, i)
				}
			}
			if p.File() != "policy.yaml" {
				t.Errorf("File() = %q, want policy.yaml", p.File())
			}
		})
	}
}

// A valid caller to build other files around.
const okCaller = `
  - name: ok
    identify: {secretSHA256: H4}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]
`

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
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
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
		t.Run(tc.desc, func(t *testing.T) {
			c, ok := p.CallerBySecret(tc.secret)
			got := ""
			if ok {
				got = c.Name
			}
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("got %q, %v; want %q", got, ok, tc.want)
			}
		})
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
