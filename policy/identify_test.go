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
		desc     string
		uid, gid uint32
		want     string
	}{
		{"uid and gid match: the most specific caller", 1001, 3000, "uid-and-gid"},
		{"uid matches, gid does not", 1001, 5, "uid-only"},
		{"gid matches, uid does not", 7, 3000, "gid-only"},
		{"neither matches", 7, 5, ""},
	} {
		t.Run("CallerByPeer/"+tc.desc, func(t *testing.T) {
			c, ok := p.CallerByPeer(tc.uid, tc.gid)
			got := ""
			if ok {
				got = c.Name
			}
			if got != tc.want {
				t.Errorf("CallerByPeer(%d, %d) = %q, want %q", tc.uid, tc.gid, got, tc.want)
			}
		})
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
	for _, tc := range []struct {
		desc, caller, want string
	}{
		{"secret file", "from-file", "secret"},
		{"uid only", "uid-only", "unix uid 1001"},
		{"uid and gid", "uid-and-gid", "unix uid 1001 gid 3000"},
		{"gid only", "gid-only", "unix gid 3000"},
		{"service account", "pod", "service account prod/notifier"},
	} {
		t.Run("Identity/"+tc.desc, func(t *testing.T) {
			c, _ := p.CallerByName(tc.caller)
			if got := c.Identity(); got != tc.want {
				t.Errorf("%s.Identity() = %q, want %q", tc.caller, got, tc.want)
			}
		})
	}
	if !p.HasUnixCallers() || !p.HasServiceAccountCallers() {
		t.Error("HasUnixCallers/HasServiceAccountCallers = false")
	}
}

// SkipSecretFiles checks a policy whose Secrets are not mounted: the
// names are checked, the files are not opened, and a caller named by one
// is matched by no secret at all. Without it, the missing file is an
// error.
func TestSkipSecretFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	policyText := func(second string) []byte {
		return []byte(`version: 1
callers:
  - name: app
    identify: {secretFile: /var/run/callers/app/token}` + identifyRules + `
  - name: other
    identify: {secretFile: ` + second + `}` + identifyRules + `
`)
	}
	_, err := ParseWith(file, policyText("/var/run/callers/other/token"), Options{})
	if want := "callers[0].identify.secretFile: open /var/run/callers/app/token: no such file or directory; mount the caller's Secret there, or use secretSHA256"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("read as the broker does: %v\nwant %s", err, want)
	}

	p, err := ParseWith(file, policyText("/var/run/callers/other/token"), Options{SkipSecretFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.SecretFilesNotRead(); n != 2 {
		t.Errorf("SecretFilesNotRead = %d, want 2", n)
	}
	c, _ := p.CallerByName("app")
	if got := c.Identity(); got != "secret file, not read" {
		t.Errorf("Identity = %q", got)
	}
	for _, secret := range []string{"", "/var/run/callers/app/token", notReadPrefix + "/var/run/callers/app/token", HashSecret("")} {
		if c, ok := p.CallerBySecret(secret); ok {
			t.Errorf("CallerBySecret(%q) matched %s; a secret file not read matches nothing", secret, c.Name)
		}
	}

	for _, tc := range []struct {
		name, second, want string
	}{
		{"the same file twice", "/var/run/callers/app/../app/token", `callers[0].identify.secretFile: the same secret is used twice (also callers[1].identify.secretSHA256 or .secretFile)`},
		{"no file named", `""`, `callers[1].identify.secretFile: no file named; mount the caller's Secret there, or use secretSHA256`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWith(file, policyText(tc.second), Options{SkipSecretFiles: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}
