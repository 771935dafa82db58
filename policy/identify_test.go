package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const identifyRules = `
    allow: [{methods: [spaces.messages.create], spaces: [spaces/A]}]
    scopes: [chat.bot]`

func TestIdentifyModes(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "notifier.secret")
	if err := os.WriteFile(secretFile, []byte("file-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "policy.yaml")
	data := `version: 1
callers:
  - name: from-file
    identify: {secretFile: notifier.secret}` + identifyRules + `
  - name: uid-only
    identify: {unixUID: 1001}` + identifyRules + `
  - name: uid-and-gid
    identify: {unixUID: 1001, unixGID: 3000}` + identifyRules + `
  - name: gid-only
    identify: {unixGID: 3000}` + identifyRules + `
  - name: pod
    identify: {serviceAccount: prod/notifier}` + identifyRules + `
`
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := p.CallerBySecret("file-secret-0123456789abcdef"); !ok || c.Name != "from-file" {
		t.Errorf("secret from a file (relative to the policy, trailing newline dropped): got %v %v", c, ok)
	}
	if _, ok := p.CallerBySecret("file-secret-0123456789abcdef\n"); ok {
		t.Error("the trailing newline counted as part of the secret")
	}
	for _, tc := range []struct {
		uid, gid uint32
		want     string
	}{
		{1001, 3000, "uid-and-gid"},
		{1001, 5, "uid-only"},
		{7, 3000, "gid-only"},
		{7, 5, ""},
	} {
		c, ok := p.CallerByPeer(tc.uid, tc.gid)
		got := ""
		if ok {
			got = c.Name
		}
		if got != tc.want {
			t.Errorf("CallerByPeer(%d, %d) = %q, want %q", tc.uid, tc.gid, got, tc.want)
		}
	}
	if c, ok := p.CallerByServiceAccount("prod/notifier"); !ok || c.Name != "pod" {
		t.Errorf("CallerByServiceAccount = %v %v", c, ok)
	}
	if _, ok := p.CallerByServiceAccount("dev/notifier"); ok {
		t.Error("another namespace's account matched")
	}
	if got, ok := p.CallerBySecret(""); ok {
		t.Errorf("empty secret matched %s", got.Name)
	}
	for name, want := range map[string]string{
		"from-file": "secret", "uid-only": "unix uid 1001", "uid-and-gid": "unix uid 1001 gid 3000",
		"gid-only": "unix gid 3000", "pod": "service account prod/notifier",
	} {
		c, _ := p.CallerByName(name)
		if got := c.Identity(); got != want {
			t.Errorf("%s.Identity() = %q, want %q", name, got, want)
		}
	}
	if !p.HasUnixCallers() || !p.HasServiceAccountCallers() {
		t.Error("HasUnixCallers/HasServiceAccountCallers = false")
	}
}

func TestIdentifyModeErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "short.secret"), []byte("short\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "dup.secret"), []byte("duplicated-secret-0123456789\n"), 0o600)
	file := filepath.Join(dir, "policy.yaml")
	data := `version: 1
callers:
  - name: a
    identify: {secretFile: missing.secret}` + identifyRules + `
  - name: b
    identify: {secretFile: short.secret}` + identifyRules + `
  - name: c
    identify: {secretFile: dup.secret}` + identifyRules + `
  - name: d
    identify: {secretSHA256: "` + HashSecret("duplicated-secret-0123456789") + `"}` + identifyRules + `
  - name: e
    identify: {unixUID: 1001}` + identifyRules + `
  - name: f
    identify: {unixUID: 1001}` + identifyRules + `
  - name: g
    identify: {serviceAccount: prod/x}` + identifyRules + `
  - name: h
    identify: {serviceAccount: prod/x}` + identifyRules + `
  - name: i
    identify: {serviceAccount: notifier}` + identifyRules + `
  - name: j
    identify: {unixUID: 5, serviceAccount: prod/j}` + identifyRules + `
`
	os.WriteFile(file, []byte(data), 0o600)
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load accepted a broken policy")
	}
	want := file + `: callers[0].identify.secretFile: open ` + filepath.Join(dir, "missing.secret") + `: no such file or directory; mount the caller's Secret there, or use secretSHA256
` + file + `: callers[1].identify.secretFile: ` + filepath.Join(dir, "short.secret") + ` holds a secret of 5 bytes; use at least 16 random bytes (openssl rand -base64 32); mount the caller's Secret there, or use secretSHA256
` + file + `: callers[2].identify.secretFile: the same secret is used twice (also callers[3].identify.secretSHA256 or .secretFile); give each caller its own secret, or a request's caller would be ambiguous
` + file + `: callers[4].identify: the same unixUID/unixGID is used twice (also callers[5].identify); give each caller its own uid (or uid and gid), or a connection's caller would be ambiguous
` + file + `: callers[6].identify.serviceAccount: "prod/x" is used twice (also callers[7].identify.serviceAccount); give each caller its own service account
` + file + `: callers[8].identify.serviceAccount: "notifier": want namespace/name of a Kubernetes service account, e.g. prod/notifier
` + file + `: callers[9].identify: sets unixUID/unixGID and serviceAccount; set exactly one way to identify the caller`
	if got := err.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(err.Error(), "duplicated-secret") {
		t.Error("an error echoes a secret")
	}
}
