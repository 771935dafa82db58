package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

const explainPolicy = `version: 1
callers:
  - name: notifier
    identify: {secretSHA256: "%s"}
    allow:
      - methods: [spaces.messages.create, spaces.messages.list]
        spaces: [spaces/AAAA]
      - methods: [spaces.messages.reactions.create]
        spaces: ["*"]
    scopes: [chat.bot, chat.app.messages.readonly, chat.messages.reactions.create]
    subjects: ["*@example.com"]
`

func TestPolicyExplain(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, file, strings.Replace(explainPolicy, "%s", policy.HashSecret("notifier-secret-0123456789"), 1))

	for _, tc := range []struct {
		desc     string
		args     []string
		want     proxy.Explanation
		wantExit int
	}{
		{"create carries chat.bot", []string{"--request", "POST /v1/spaces/AAAA/messages"},
			proxy.Explanation{Caller: "notifier", Method: "spaces.messages.create", Space: "spaces/AAAA", Decision: "allow", Rule: "callers[0].allow[0]", Scopes: scopes("chat.bot")}, 0},
		{"list carries the app scope", []string{"--request", "GET /v1/spaces/AAAA/messages?pageSize=10"},
			proxy.Explanation{Caller: "notifier", Method: "spaces.messages.list", Space: "spaces/AAAA", Decision: "allow", Rule: "callers[0].allow[0]", Scopes: scopes("chat.app.messages.readonly")}, 0},
		{"user-only method as a user", []string{"--request", "POST /v1/spaces/BBBB/messages/M1/reactions", "--subject", "bob@example.com"},
			proxy.Explanation{Caller: "notifier", Method: "spaces.messages.reactions.create", Space: "spaces/BBBB", Subject: "bob@example.com", Decision: "allow", Rule: "callers[0].allow[1]", Scopes: scopes("chat.messages.reactions.create")}, 0},
		{"other space", []string{"--request", "GET /v1/spaces/BBBB/messages"},
			proxy.Explanation{Caller: "notifier", Method: "spaces.messages.list", Space: "spaces/BBBB", Decision: "deny", Rule: "callers[0].allow[0].spaces", Reason: "SPACE_NOT_ALLOWED", Status: 403, Scopes: scopes(),
				Message: `caller "notifier" may not call spaces.messages.list in spaces/BBBB; add "spaces/BBBB" to callers[0].allow[0].spaces in ` + file}, 1},
		{"not a Chat method", []string{"--request", "POST /batch"},
			proxy.Explanation{Caller: "notifier", Decision: "deny", Reason: "UNKNOWN_METHOD", Status: 404, Scopes: scopes(),
				Message: "POST /batch is not a Google Chat API method chat-broker knows; check the path (e.g. /v1/spaces/AAAA/messages)"}, 1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var out strings.Builder
			args := append([]string{"policy", "explain", file, "--caller", "notifier", "--output", "json"}, tc.args...)
			err := run(context.Background(), args, nil, &out, io.Discard)
			if code := exitCode(err); code != tc.wantExit {
				t.Errorf("exit %d (%v), want %d", code, err, tc.wantExit)
			}
			var got proxy.Explanation
			if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("got  %s\nwant %s", gotJSON, wantJSON)
			}
		})
	}

	// The text form names the same facts.
	var out strings.Builder
	if err := run(context.Background(), []string{"policy", "explain", file, "--caller", "notifier", "--request", "GET /v1/spaces/AAAA/messages"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"method:   spaces.messages.list", "decision: allow", "rule:     callers[0].allow[0]", "scopes:   chat.app.messages.readonly"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}

	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"no caller", []string{"policy", "explain", file, "--request", "GET /v1/spaces"}, "--caller: required"},
		{"no request", []string{"policy", "explain", file, "--caller", "notifier"}, "--request: required"},
		{"unknown caller", []string{"policy", "explain", file, "--caller", "nobody", "--request", "GET /v1/spaces"}, `no caller "nobody"`},
		{"request without a verb", []string{"policy", "explain", file, "--caller", "notifier", "--request", "/v1/spaces"}, `want "VERB /path"`},
		{"unknown output", []string{"policy", "explain", file, "--caller", "notifier", "--request", "GET /v1/spaces", "--output", "yaml"}, `--output "yaml"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := run(context.Background(), tc.args, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
				t.Errorf("run(%q) = %v (exit %d), want a usage error containing %q", tc.args, err, exitCode(err), tc.want)
			}
		})
	}
}

func scopes(ss ...string) []chatapi.Scope {
	out := []chatapi.Scope{}
	for _, s := range ss {
		out = append(out, chatapi.Scope(s))
	}
	return out
}
