package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/policy"
)

var hashLine = regexp.MustCompile(`(?m)^# Its SHA-256, the policy's secretSHA256: ([0-9a-f]{64})$`)

// readSecret returns the secret add-caller wrote and checks the file's
// mode.
func readSecret(t *testing.T, name string) string {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %#o, want 0600", name, fi.Mode().Perm())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 40 || strings.ContainsAny(string(data), " \n") {
		t.Errorf("secret file holds %d bytes with white space or too few; want one URL-safe base64 line of 32 random bytes", len(data))
	}
	return string(data)
}

// Without --policy: the secret goes to the file and nowhere else; the
// printed hash is its SHA-256; the printed rule, pasted under callers:,
// is a policy the broker loads and that allows the call.
func TestAddCallerPrintsRule(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "notifier.secret")
	err, out, errOut := runOut(t, "", "policy", "add-caller", "--name", "notifier", "--secret-file", secretFile, "--spaces", "spaces/AAAA", "--methods", "spaces.messages.create,spaces.messages.list")
	if err != nil {
		t.Fatal(err)
	}
	secret := readSecret(t, secretFile)
	if strings.Contains(out+errOut, secret) {
		t.Errorf("the secret was printed:\n%s%s", out, errOut)
	}
	m := hashLine.FindStringSubmatch(out)
	if m == nil || m[1] != policy.HashSecret(secret) {
		t.Fatalf("printed hash %v, want the SHA-256 of the secret file:\n%s", m, out)
	}
	// The whole output, its comments included, pasted under callers:.
	file := writePolicy(t, dir, "version: 1\ncallers:\n"+out)
	for _, tc := range []struct {
		request string
		want    int
	}{
		{"POST /v1/spaces/AAAA/messages", 0},
		{"GET /v1/spaces/AAAA/messages", 0}, // chat.app.messages.readonly, picked for list
		{"POST /v1/spaces/BBBB/messages", 1},
	} {
		err, _, _ := runOut(t, "", "policy", "explain", file, "--caller", "notifier", "--request", tc.request)
		if exitCode(err) != tc.want {
			t.Errorf("explain %s: exit %d (%v), want %d", tc.request, exitCode(err), err, tc.want)
		}
	}

	// The file exists now: it is never overwritten.
	err, _, _ = runOut(t, "", "policy", "add-caller", "--name", "other", "--secret-file", secretFile)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "the file exists; add-caller never overwrites a secret") {
		t.Errorf("second add-caller to the same file: %v (exit %d)", err, exitCode(err))
	}
	if again := readSecret(t, secretFile); again != secret {
		t.Error("the secret file was overwritten")
	}
}

// Without --secret-file, the secret is printed once, on standard output.
func TestAddCallerPrintsSecretOnce(t *testing.T) {
	err, out, errOut := runOut(t, "", "policy", "add-caller", "--name", "notifier")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^# ([A-Za-z0-9_-]{43})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no secret line in:\n%s", out)
	}
	if strings.Count(out, m[1]) != 1 || strings.Contains(errOut, m[1]) {
		t.Errorf("the secret appears %d times on stdout and %v on stderr, want once on stdout", strings.Count(out, m[1]), strings.Contains(errOut, m[1]))
	}
	if h := hashLine.FindStringSubmatch(out); h == nil || h[1] != policy.HashSecret(m[1]) {
		t.Errorf("printed hash %v is not the secret's", h)
	}
	if !strings.Contains(out, `spaces: ["*"]`) || !strings.Contains(out, "scopes: [chat.bot]") {
		t.Errorf("want every space and chat.bot by default:\n%s", out)
	}
}

const addCallerBase = `# Our callers. Keep this comment.
version: 1
callers:
    - name: app
      identify: {secretSHA256: "%s"}
      allow:
        - methods: [spaces.messages.create]
          spaces: [spaces/AAAA]
      scopes: [chat.bot]
`

// With --policy, the caller is appended to the file in place: the file
// keeps its comments, layout and mode and gains a caller the broker
// loads; anything that would leave it broken changes nothing.
func TestAddCallerEditsPolicy(t *testing.T) {
	base := strings.Replace(addCallerBase, "%s", policy.HashSecret(opsSecret), 1)
	t.Run("appends", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "policy.yaml")
		writeFile(t, file, strings.TrimSuffix(base, "\n")) // no final newline
		os.Chmod(file, 0o644)
		secretFile := filepath.Join(dir, "notifier.secret")
		err, out, errOut := runOut(t, "", "policy", "add-caller", "--name", "notifier", "--secret-file", secretFile, "--spaces", "spaces/BBBB", "--policy", file)
		if err != nil {
			t.Fatal(err)
		}
		secret := readSecret(t, secretFile)
		if strings.Contains(out+errOut, secret) {
			t.Error("the secret was printed")
		}
		data, _ := os.ReadFile(file)
		if !strings.HasPrefix(string(data), strings.TrimSuffix(base, "\n")+"\n") {
			t.Errorf("the file's text was changed, not appended to:\n%s", data)
		}
		if !strings.Contains(string(data), "\n    - name: notifier\n") {
			t.Errorf("the caller does not follow the file's indentation:\n%s", data)
		}
		p, err := policy.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := p.CallerBySecret(secret); !ok || c.Name != "notifier" || len(p.Callers()) != 2 {
			t.Errorf("the new policy does not know the secret as notifier (%d callers)", len(p.Callers()))
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %#o, want the file's own 0644", fi.Mode().Perm())
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 2 {
			t.Errorf("left %d files in the folder, want the policy and the secret", len(entries))
		}
	})
	for _, tc := range []struct {
		desc, policy string
		args         []string
		want         string
	}{
		{"name taken", base, []string{"--name", "app"}, "--name app: "},
		{"invalid now", strings.Replace(base, "methods:", "method:", 1), []string{"--name", "notifier"}, "the file is not a valid policy now; fix it first"},
		{"callers not last", strings.Replace(base, "version: 1\n", "", 1) + "version: 1\n", []string{"--name", "notifier"}, "cannot add the caller at the end of the file"},
		{"callers in flow style", "version: 1\ncallers: [{name: app, identify: {secretSHA256: \"" + policy.HashSecret(opsSecret) + "\"}, allow: [{methods: [spaces.messages.create], spaces: [spaces/AAAA]}], scopes: [chat.bot]}]\n", []string{"--name", "notifier"}, "cannot add the caller at the end of the file"},
		{"invalid caller", base, []string{"--name", "Not A Name"}, "the caller these flags describe is not valid"},
		{"user-only method", base, []string{"--name", "pinner", "--methods", "spaces.messagePins.create"}, "works only as a user"},
		{"missing file", "", []string{"--name", "notifier"}, "no such file"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "policy.yaml")
			if tc.policy != "" {
				writeFile(t, file, tc.policy)
			}
			secretFile := filepath.Join(dir, "new.secret")
			args := append([]string{"policy", "add-caller", "--policy", file, "--secret-file", secretFile}, tc.args...)
			err, _, _ := runOut(t, "", args...)
			if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("add-caller %q: %v (exit %d), want exit 2 and %q", tc.args, err, exitCode(err), tc.want)
			}
			if data, _ := os.ReadFile(file); string(data) != tc.policy {
				t.Errorf("the policy file changed:\n%s", data)
			}
			if _, err := os.Stat(secretFile); err == nil {
				t.Error("a secret file was written although the policy was not changed")
			}
		})
	}
}
