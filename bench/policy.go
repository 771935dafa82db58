package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chat-broker/chat-broker/policy"
)

// secrets are the callers' bearer secrets of one run, fresh each run.
type secrets struct {
	notifier, delegate, reader, ops string
}

func newSecrets() secrets {
	return secrets{
		notifier: randomSecret("notifier"),
		delegate: randomSecret("delegate"),
		reader:   randomSecret("reader"),
		ops:      randomSecret("ops"),
	}
}

func randomSecret(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand panics on failure)
	return prefix + "-" + hex.EncodeToString(b)
}

// Subjects the delegated caller may act as.
const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
)

// realisticPolicy is a pod's policy: an app-authenticated notifier (the
// caller under load), a caller acting as users (media upload, the cold
// herd's user tokens), a rate-limited reader and an operator with broad
// rights, so that identification and decisions search more than one
// caller.
func realisticPolicy(s secrets) string {
	return fmt.Sprintf(`version: 1
callers:
  - name: notifier
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.messages.create, spaces.messages.get, spaces.messages.list]
        spaces: [spaces/AAAA, spaces/BBBB]
      - methods: [media.download]
        spaces: ["*"]
    scopes: [chat.bot, chat.app.messages.readonly]
  - name: delegate
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.messages.create, spaces.messages.list, media.upload]
        spaces: [spaces/AAAA]
    scopes: [chat.messages.create, chat.messages.readonly]
    subjects: [%s, %s]
  - name: reader
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.get, spaces.messages.get]
        spaces: ["*"]
    scopes: [chat.bot]
    limits: {perMinute: 600, burst: 20}
  - name: ops
    identify: {secretSHA256: %q}
    allow:
      - methods: ["*"]
        spaces: ["*"]
    scopes: [chat.bot]
`, policy.HashSecret(s.notifier), policy.HashSecret(s.delegate), alice, bob,
		policy.HashSecret(s.reader), policy.HashSecret(s.ops))
}

// scalePolicy is n callers, each with its own secret and one rule of its
// own: messages.get in its own space and in spaces/AAAA, the space the
// load reads. It returns the policy and the secrets, in caller order.
func scalePolicy(n int) (string, []string) {
	var b strings.Builder
	b.WriteString("version: 1\ncallers:\n")
	run := randomSecret("scale")
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("%s-%05d", run, i)
		fmt.Fprintf(&b, `  - name: caller-%05d
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.messages.get]
        spaces: [spaces/S%05d, spaces/AAAA]
    scopes: [chat.bot]
`, i, policy.HashSecret(out[i]), i)
	}
	return b.String(), out
}

// writePolicy validates text with the broker's own parser and writes it
// to dir/name, so a policy mistake here is reported as such and not as a
// broker that would not start.
func writePolicy(dir, name, text string) (string, error) {
	path := filepath.Join(dir, name)
	if _, err := policy.Parse(path, []byte(text)); err != nil {
		return "", fmt.Errorf("bench: generated policy: %w", err)
	}
	return path, os.WriteFile(path, []byte(text), 0o600)
}
