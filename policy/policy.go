package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/shaping"
)

// Policy is a parsed and validated policy file. It is immutable after
// Parse and safe for concurrent use.
type Policy struct {
	file      string
	callers   []*Caller
	byName    map[string]*Caller
	bySecret  map[[sha256.Size]byte]*Caller
	byPeer    map[[2]int64]*Caller // (uid, gid); -1 where the file sets none
	byAccount map[string]*Caller   // "namespace/name"
}

// identifyMode is how a caller proves who it is.
type identifyMode int

const (
	modeNone identifyMode = iota
	modeSecret
	modeUnix
	modeServiceAccount
	modeSecretNotRead // a secretFile left unread (Options.SkipSecretFiles): matches no secret
)

// Caller is one entry of callers in the policy file. Its exported fields
// describe what the file grants; decisions use compiled copies, so
// changing them changes nothing (and callers must not: they are shared).
type Caller struct {
	// Name identifies the caller in logs, metrics and errors.
	Name string
	// Scopes are the most the caller's tokens may carry, in short form
	// ("chat.bot"), in file order.
	Scopes []chatapi.Scope
	// Subjects are the users the caller may act as through domain-wide
	// delegation: email addresses, or "*@domain" for every user of a
	// domain, as written in the file.
	Subjects []string
	// AdminAccess lets the caller, acting as one of its subjects, call
	// with useAdminAccess=true: as a Workspace administrator, with a
	// chat.admin.* scope.
	AdminAccess bool
	// Limits is the caller's own rate limit.
	Limits Limits

	policy   *Policy
	index    int    // position in callers
	path     string // "callers[3]"
	mode     identifyMode
	secret   [sha256.Size]byte
	peer     [2]int64           // unixUID, unixGID; -1 where unset
	account  string             // Kubernetes "namespace/name"
	byMethod map[string][]*rule // method id → the rules that list it, in file order
	granted  map[chatapi.Scope]bool
	users    map[string]bool // exact subjects, lower case
	domains  map[string]bool // domains of "*@domain" subjects, lower case
}

// Limits is a caller's rate limit. Zero PerMinute means no per-caller
// limit.
type Limits struct {
	// PerMinute is the sustained rate, in calls per minute.
	PerMinute int `json:"perMinute"`
	// Burst is how many calls may go at once above the sustained rate.
	// When the file sets PerMinute but not Burst, Parse sets Burst to
	// EffectiveBurst.
	Burst int `json:"burst"`
}

// EffectiveBurst returns the burst of the token bucket that enforces l:
// Burst when it is above 0, otherwise one second's worth of PerMinute,
// rounded up and at least 1 (a bucket with burst 0 would refuse every
// call). It returns 0 when PerMinute is 0 or less, which means no
// per-caller limit.
func (l Limits) EffectiveBurst() int {
	switch {
	case l.PerMinute <= 0:
		return 0
	case l.Burst > 0:
		return l.Burst
	}
	return shaping.DefaultBurst(l.PerMinute, time.Minute)
}

// rule is one compiled entry of a caller's allow list.
type rule struct {
	path      string          // "callers[0].allow[1]"
	allSpaces bool            // spaces: ["*"]
	spaces    map[string]bool // "spaces/AAAA"
	prefer    []chatapi.Scope // tried before the narrowest-first order
}

// Error is what Parse returns for a policy that does not parse or does
// not validate. It lists every problem found, not only the first.
type Error struct {
	// File is the file name given to Parse.
	File string
	// Problems follow the structure of the file: callers in order, and
	// each caller's fields in the order the format lists them.
	Problems []Problem
}

// Problem is one thing wrong with a policy file.
type Problem struct {
	// Path is where: a field path such as "callers[0].scopes[1]", a line
	// such as "line 3" for YAML syntax errors, or "" for the whole file.
	Path string
	// Message says what is wrong and how to fix it.
	Message string
}

// Error returns one line per problem, each "FILE: PATH: MESSAGE" (without
// "FILE: " when File is empty, and without "PATH: " when Path is).
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File)
			b.WriteString(": ")
		}
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// MaxFileSize bounds what Load reads, in bytes. A ConfigMap holds at most
// 1 MiB.
const MaxFileSize = 8 << 20

// Options change how a policy is read. The zero value reads it as the
// broker does.
type Options struct {
	// SkipSecretFiles leaves each identify.secretFile unread: its name is
	// checked, and two callers naming the same file are an error, but the
	// file is not opened, so its secret is neither checked nor known and
	// the caller is matched by no secret. It is for checking a policy
	// where the Secrets are not mounted (CI, a workstation); the broker
	// never sets it.
	SkipSecretFiles bool
}

// Load reads the policy file at path and parses it with Parse(path, data).
func Load(path string) (*Policy, error) {
	return LoadWith(path, Options{})
}

// LoadWith is Load with options.
func LoadWith(path string, o Options) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: path, Problems: []Problem{{Message: fmt.Sprintf("the file is larger than %d MiB; a policy file is a few kilobytes", MaxFileSize>>20)}}}
	}
	return ParseWith(path, data, o)
}

// Parse parses and validates a policy. file is used only in error text
// and in the messages of decisions. On failure the error is an *Error
// that lists every problem found.
func Parse(file string, data []byte) (*Policy, error) {
	return ParseWith(file, data, Options{})
}

// ParseWith is Parse with options.
func ParseWith(file string, data []byte, o Options) (*Policy, error) {
	var ps problems
	doc, ok := decodeFile(data, &ps)
	if !ok {
		return nil, &Error{File: file, Problems: ps.list}
	}
	p := &Policy{file: file}
	validate(doc, p, o, &ps)
	if len(ps.list) > 0 {
		return nil, &Error{File: file, Problems: ps.sorted()}
	}
	return p, nil
}

// HashSecret returns the lowercase hex SHA-256 of a caller secret: the
// value of identify.secretSHA256, and what `chat-broker hash-secret`
// prints.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// SecretFilesNotRead returns how many callers' secretFiles were left
// unread (Options.SkipSecretFiles).
func (p *Policy) SecretFilesNotRead() int {
	n := 0
	for _, c := range p.callers {
		if c.mode == modeSecretNotRead {
			n++
		}
	}
	return n
}

// File returns the file name the policy was parsed with.
func (p *Policy) File() string { return p.file }

// Callers returns the callers in file order. The slice is the caller's;
// the *Caller values are shared and must not be modified.
func (p *Policy) Callers() []*Caller { return append([]*Caller(nil), p.callers...) }

// CallerByName returns the caller with the given name.
func (p *Policy) CallerByName(name string) (*Caller, bool) {
	c, ok := p.byName[name]
	return c, ok
}

// CallerBySecret returns the caller whose secretSHA256 is the SHA-256 of
// secret. It hashes once and looks the hash up in a map, so its cost does
// not depend on the number of callers; the match is then confirmed with
// a constant-time comparison. An empty secret matches no caller.
func (p *Policy) CallerBySecret(secret string) (*Caller, bool) {
	if secret == "" {
		return nil, false
	}
	h := sha256.Sum256([]byte(secret))
	c, ok := p.bySecret[h]
	if ok && c.mode != modeSecret {
		return nil, false
	}
	if !ok || subtle.ConstantTimeCompare(c.secret[:], h[:]) != 1 {
		return nil, false
	}
	return c, true
}

// CallerByPeer returns the caller identified by the kernel-reported
// credentials of a Unix-socket peer. The most specific identity wins: a
// caller with both unixUID and unixGID matching, then one with unixUID
// only, then one with unixGID only.
func (p *Policy) CallerByPeer(uid, gid uint32) (*Caller, bool) {
	for _, k := range [][2]int64{{int64(uid), int64(gid)}, {int64(uid), -1}, {-1, int64(gid)}} {
		if c, ok := p.byPeer[k]; ok {
			return c, true
		}
	}
	return nil, false
}

// CallerByServiceAccount returns the caller identified by a verified
// Kubernetes service account, "namespace/name".
func (p *Policy) CallerByServiceAccount(account string) (*Caller, bool) {
	c, ok := p.byAccount[account]
	return c, ok
}

// HasUnixCallers and HasServiceAccountCallers report whether any caller
// is identified that way, so the broker can say what it needs to serve
// them (a Unix socket; a Kubernetes issuer).
func (p *Policy) HasUnixCallers() bool { return len(p.byPeer) > 0 }

// HasServiceAccountCallers: see HasUnixCallers.
func (p *Policy) HasServiceAccountCallers() bool { return len(p.byAccount) > 0 }

// Identity describes how the caller is identified, for logs and
// explanations: "secret", "unix uid 1001", "unix uid 1001 gid 2000",
// "service account prod/notifier". It never includes the secret or its
// hash.
func (c *Caller) Identity() string {
	switch c.mode {
	case modeSecret:
		return "secret"
	case modeUnix:
		s := "unix"
		if c.peer[0] >= 0 {
			s += fmt.Sprintf(" uid %d", c.peer[0])
		}
		if c.peer[1] >= 0 {
			s += fmt.Sprintf(" gid %d", c.peer[1])
		}
		return s
	case modeServiceAccount:
		return "service account " + c.account
	case modeSecretNotRead:
		return "secret file, not read"
	}
	return "none"
}

// Path returns where the caller is in the policy file, as in
// "callers[2]".
func (c *Caller) Path() string { return c.path }
