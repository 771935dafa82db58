package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
)

// What the catalog offers, computed once.
var (
	// allMethods is the whole catalog, sorted by id: what "*" means.
	allMethods = chatapi.Methods()
	// groups maps "spaces.messages.*" to the methods whose id starts with
	// "spaces.messages.", for every prefix that ends at a dot.
	groups = func() map[string][]*chatapi.Method {
		g := map[string][]*chatapi.Method{}
		for _, m := range allMethods {
			for i := range len(m.ID) {
				if m.ID[i] == '.' {
					g[m.ID[:i]+".*"] = append(g[m.ID[:i]+".*"], m)
				}
			}
		}
		return g
	}()
	// methodWords are the spellings "did you mean" chooses from for
	// methods: ids first, then groups, each sorted.
	methodWords = func() []string {
		var ids, gs []string
		for _, m := range allMethods {
			ids = append(ids, m.ID)
		}
		for g := range groups {
			gs = append(gs, g)
		}
		sort.Strings(gs)
		return append(ids, gs...)
	}()
	scopeWords = func() []string {
		var s []string
		for _, sc := range chatapi.Scopes() {
			s = append(s, string(sc))
		}
		return s
	}()
)

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	spaceRE     = regexp.MustCompile(`^spaces/[A-Za-z0-9_-]+$`)
	spaceIDRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	hexRE       = regexp.MustCompile(`^[0-9a-f]{64}$`)
	emptySecret = func() [sha256.Size]byte { return sha256.Sum256(nil) }()
)

const hashHint = `put the output of "chat-broker hash-secret" here, never the secret itself`

// validate checks doc, reporting every problem to ps, and fills p with
// the compiled callers. p is meaningful only when ps stays empty.
func validate(doc *fileDoc, p *Policy, o Options, ps *problems) {
	if ps.bad[""] {
		return // not a mapping at all; one line says so
	}
	switch {
	case ps.bad["version"]:
	case doc.Version == nil:
		ps.add("version", `missing; add "version: 1" at the top of the file`)
	case *doc.Version != 1:
		ps.add("version", "%d is not a version of this format; the only version is 1", *doc.Version)
	}
	if !ps.bad["callers"] && len(doc.Callers) == 0 {
		ps.add("callers", "no callers; add at least one (default deny: with no callers every request is refused)")
	}

	// Names and secrets must be unique. Count them first so that each
	// duplicate is reported once, at its first use, naming the others.
	names := map[string][]int{}
	ids := &identities{secrets: map[string][]int{}, peers: map[[2]int64][]int{}, accounts: map[string][]int{}, fileHash: map[int]string{}, fileErr: map[int]error{}}
	for i, cd := range doc.Callers {
		if cd.Name != "" {
			names[cd.Name] = append(names[cd.Name], i)
		}
		id := cd.Identify
		if id == nil {
			continue
		}
		if id.SecretFile != nil {
			read := readSecretFile
			if o.SkipSecretFiles {
				read = secretFileKey
			}
			if h, err := read(p.file, *id.SecretFile); err != nil {
				ids.fileErr[i] = err
			} else {
				ids.fileHash[i] = h
				ids.secrets[h] = append(ids.secrets[h], i)
			}
		}
		if id.SecretSHA256 != nil {
			ids.secrets[*id.SecretSHA256] = append(ids.secrets[*id.SecretSHA256], i)
		}
		if id.UnixUID != nil || id.UnixGID != nil {
			k := peerKey(id.UnixUID, id.UnixGID)
			ids.peers[k] = append(ids.peers[k], i)
		}
		if id.ServiceAccount != nil {
			ids.accounts[*id.ServiceAccount] = append(ids.accounts[*id.ServiceAccount], i)
		}
	}

	p.byName = make(map[string]*Caller, len(doc.Callers))
	p.bySecret = make(map[[sha256.Size]byte]*Caller, len(doc.Callers))
	p.byPeer = map[[2]int64]*Caller{}
	p.byAccount = map[string]*Caller{}
	for i := range doc.Callers {
		path := fmt.Sprintf("callers[%d]", i)
		if ps.bad[path] {
			continue
		}
		cd := &doc.Callers[i]
		c := &Caller{policy: p, index: i, path: path}
		validateName(cd, c, names, ps)
		validateIdentify(cd, c, ids, ps)
		explicit := validateAllow(cd, c, ps)
		scopesOK := validateScopes(cd, c, ps)
		validateSubjects(cd, c, ps)
		validateLimits(cd, c, ps)
		if scopesOK {
			checkServable(explicit, cd, c, ps)
			validatePrefer(cd, c, ps)
			validateAdminAccess(cd, c, ps)
		}
		p.callers = append(p.callers, c)
		p.byName[c.Name] = c
		switch c.mode {
		case modeSecret:
			p.bySecret[c.secret] = c
		case modeUnix:
			p.byPeer[c.peer] = c
		case modeServiceAccount:
			p.byAccount[c.account] = c
		}
	}
}

// dupNote describes the other uses of a duplicate value, as in
// `"x" is used twice (also callers[2].name)`. format turns an index into
// the path of a use.
func dupNote(value string, idx []int, format string) string {
	also := make([]string, 0, len(idx)-1)
	for _, j := range idx[1:] {
		also = append(also, fmt.Sprintf(format, j))
	}
	times := "twice"
	if len(idx) > 2 {
		times = strconv.Itoa(len(idx)) + " times"
	}
	return fmt.Sprintf("%s is used %s (also %s)", value, times, strings.Join(also, ", "))
}

func validateName(cd *callerDoc, c *Caller, names map[string][]int, ps *problems) {
	np := c.path + ".name"
	switch idx := names[cd.Name]; {
	case ps.bad[np]:
	case cd.Name == "":
		ps.add(np, "missing; name the caller, as in name: notifier")
	case !nameRE.MatchString(cd.Name):
		hint := ""
		if s := suggestName(cd.Name); s != "" {
			hint = fmt.Sprintf(", as in %q", s)
		}
		ps.add(np, "%q is not a valid name; use lower-case letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit%s", cd.Name, hint)
	case len(idx) > 1 && idx[0] == c.index:
		ps.add(np, "%s; caller names must be unique", dupNote(strconv.Quote(cd.Name), idx, "callers[%d].name"))
	}
	c.Name = cd.Name
}

// suggestName lower-cases a name and replaces what the format does not
// allow with "-", or returns "" when nothing sensible is left.
func suggestName(name string) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
	s = strings.TrimLeft(s, "._-")
	if len(s) > 64 || !nameRE.MatchString(s) {
		return ""
	}
	return s
}

// identities counts each identity across callers, so that a duplicate is
// reported once, at its first use, naming the others.
type identities struct {
	secrets  map[string][]int   // lower-case hex hash → callers
	peers    map[[2]int64][]int // (uid, gid), -1 for unset → callers
	accounts map[string][]int   // "namespace/name" → callers
	fileHash map[int]string     // caller → hash of its secretFile
	fileErr  map[int]error      // caller → why its secretFile is unusable
}

func peerKey(uid, gid *int) [2]int64 {
	k := [2]int64{-1, -1}
	if uid != nil {
		k[0] = int64(*uid)
	}
	if gid != nil {
		k[1] = int64(*gid)
	}
	return k
}

// minSecretLen is the shortest caller secret a secretFile may hold.
const minSecretLen = 16

// readSecretFile hashes the caller secret in a file mounted from a
// Kubernetes Secret: one line, a trailing newline is not part of it. A
// relative name is relative to the policy file's folder. The secret is
// never echoed.
func readSecretFile(policyFile, name string) (string, error) {
	if !filepath.IsAbs(name) && policyFile != "" {
		name = filepath.Join(filepath.Dir(policyFile), name)
	}
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	switch {
	case len(data) > 4096:
		return "", fmt.Errorf("%s is larger than 4 KiB; it should hold one secret", name)
	case len(s) < minSecretLen:
		return "", fmt.Errorf("%s holds a secret of %d bytes; use at least %d random bytes (openssl rand -base64 32)", name, len(s), minSecretLen)
	case strings.ContainsAny(s, " \t\r\n"):
		return "", fmt.Errorf("%s holds white space, which an 'Authorization: Bearer' header cannot carry; use base64 or hex", name)
	}
	return HashSecret(s), nil
}

// secretFileKey stands for readSecretFile when secret files are not
// read: it checks the name and returns a key that is the same for two
// callers naming one file and never a secret's hash.
func secretFileKey(policyFile, name string) (string, error) {
	if name == "" {
		return "", errors.New("no file named")
	}
	if !filepath.IsAbs(name) && policyFile != "" {
		name = filepath.Join(filepath.Dir(policyFile), name)
	}
	return notReadPrefix + filepath.Clean(name), nil
}

// notReadPrefix begins the keys of secretFileKey.
const notReadPrefix = "not read: "

// k8sName is a DNS-1123 label: what Kubernetes allows as a namespace, and
// (with dots) as a service account name.
var (
	k8sNamespace = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	k8sName      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
)

func validateIdentify(cd *callerDoc, c *Caller, ids *identities, ps *problems) {
	ip := c.path + ".identify"
	for _, f := range []string{"", ".secretSHA256", ".secretFile", ".unixUID", ".unixGID", ".serviceAccount"} {
		if ps.bad[ip+f] {
			return
		}
	}
	id := cd.Identify
	if id == nil {
		ps.add(ip, `missing; set identify.secretSHA256 to the output of "chat-broker hash-secret"`)
		return
	}
	var modes []string
	if id.SecretSHA256 != nil {
		modes = append(modes, "secretSHA256")
	}
	if id.SecretFile != nil {
		modes = append(modes, "secretFile")
	}
	if id.UnixUID != nil || id.UnixGID != nil {
		modes = append(modes, "unixUID/unixGID")
	}
	if id.ServiceAccount != nil {
		modes = append(modes, "serviceAccount")
	}
	switch {
	case len(modes) == 0:
		ps.add(ip, `names no way to identify the caller; set secretSHA256 to the output of "chat-broker hash-secret" (or secretFile, unixUID, serviceAccount)`)
		return
	case len(modes) > 1:
		ps.add(ip, "sets %s; set exactly one way to identify the caller", strings.Join(modes, " and "))
		return
	}

	switch modes[0] {
	case "secretSHA256":
		sp := ip + ".secretSHA256"
		s := *id.SecretSHA256
		// The value is never echoed: someone may have pasted the secret
		// itself, and error text ends up in logs.
		switch idx := ids.secrets[s]; {
		case hexRE.MatchString(strings.ToLower(s)) && !hexRE.MatchString(s):
			ps.add(sp, "must be lower-case hex; write it in lower case")
		case !hexRE.MatchString(s):
			ps.add(sp, "want 64 lower-case hex characters, got %d characters; %s", len(s), hashHint)
		case s == hex.EncodeToString(emptySecret[:]):
			ps.add(sp, `is the hash of an empty secret; choose a secret and put the output of "chat-broker hash-secret" here`)
		case len(idx) > 1 && idx[0] == c.index:
			ps.add(sp, "%s; give each caller its own secret, or a request's caller would be ambiguous", dupNote("the same hash", idx, "callers[%d].identify.secretSHA256 or .secretFile"))
		case len(idx) > 1:
		default:
			hex.Decode(c.secret[:], []byte(s)) // cannot fail: hexRE matched
			c.mode = modeSecret
		}
	case "secretFile":
		sp := ip + ".secretFile"
		if err, bad := ids.fileErr[c.index]; bad {
			ps.add(sp, "%v; mount the caller's Secret there, or use secretSHA256", err)
			return
		}
		h := ids.fileHash[c.index]
		switch idx := ids.secrets[h]; {
		case len(idx) > 1 && idx[0] == c.index:
			ps.add(sp, "%s; give each caller its own secret, or a request's caller would be ambiguous", dupNote("the same secret", idx, "callers[%d].identify.secretSHA256 or .secretFile"))
		case len(idx) > 1:
		case strings.HasPrefix(h, notReadPrefix):
			c.mode = modeSecretNotRead
		default:
			hex.Decode(c.secret[:], []byte(h))
			c.mode = modeSecret
		}
	case "unixUID/unixGID":
		ok := true
		for _, f := range []struct {
			name string
			v    *int
		}{{"unixUID", id.UnixUID}, {"unixGID", id.UnixGID}} {
			if f.v != nil && (*f.v < 0 || *f.v > 1<<32-2) {
				ps.add(ip+"."+f.name, "%d is not a Unix id; want 0 to 4294967294", *f.v)
				ok = false
			}
		}
		if !ok {
			return
		}
		k := peerKey(id.UnixUID, id.UnixGID)
		if idx := ids.peers[k]; len(idx) > 1 {
			if idx[0] == c.index {
				ps.add(ip, "%s; give each caller its own uid (or uid and gid), or a connection's caller would be ambiguous", dupNote("the same unixUID/unixGID", idx, "callers[%d].identify"))
			}
			return
		}
		c.peer, c.mode = k, modeUnix
	case "serviceAccount":
		sp := ip + ".serviceAccount"
		ns, name, found := strings.Cut(*id.ServiceAccount, "/")
		if !found || !k8sNamespace.MatchString(ns) || !k8sName.MatchString(name) {
			ps.add(sp, "%q: want namespace/name of a Kubernetes service account, e.g. prod/notifier", *id.ServiceAccount)
			return
		}
		if idx := ids.accounts[*id.ServiceAccount]; len(idx) > 1 {
			if idx[0] == c.index {
				ps.add(sp, "%s; give each caller its own service account", dupNote(strconv.Quote(*id.ServiceAccount), idx, "callers[%d].identify.serviceAccount"))
			}
			return
		}
		c.account, c.mode = *id.ServiceAccount, modeServiceAccount
	}
}

// explicitMethod is a method named by its id in an allow rule, which
// validation holds to stricter checks than methods reached by a group.
type explicitMethod struct {
	path string
	m    *chatapi.Method
}

func validateAllow(cd *callerDoc, c *Caller, ps *problems) []explicitMethod {
	ap := c.path + ".allow"
	if !ps.bad[ap] && len(cd.Allow) == 0 {
		ps.add(ap, `no rules; add one, as in allow: [{methods: [spaces.messages.create], spaces: ["spaces/AAAA"]}] (default deny: a caller with no rules can call nothing)`)
	}
	c.byMethod = map[string][]*rule{}
	var explicit []explicitMethod
	for j, rd := range cd.Allow {
		rp := fmt.Sprintf("%s[%d]", ap, j)
		if ps.bad[rp] {
			continue
		}
		r := &rule{path: rp, spaces: map[string]bool{}}
		hasStar := false
		for _, s := range rd.Spaces {
			hasStar = hasStar || s == "*"
		}
		specific := len(rd.Spaces) > 0 && !hasStar

		mp := rp + ".methods"
		if !ps.bad[mp] && len(rd.Methods) == 0 {
			ps.add(mp, `no methods; list method ids such as "spaces.messages.create", groups such as "spaces.messages.*", or "*"`)
		}
		for k, pat := range rd.Methods {
			kp := fmt.Sprintf("%s[%d]", mp, k)
			if ps.bad[kp] {
				continue
			}
			ms, isID, msg := resolveMethods(pat)
			if msg != "" {
				ps.add(kp, "%s", msg)
				continue
			}
			if isID {
				if specific && !ms[0].NamesSpace() {
					ps.add(kp, `%s names no space, so a rule with specific spaces never allows it; list it in a rule with spaces: ["*"]`, ms[0].ID)
				}
				explicit = append(explicit, explicitMethod{kp, ms[0]})
			}
			for _, m := range ms {
				rs := c.byMethod[m.ID]
				if len(rs) == 0 || rs[len(rs)-1] != r { // a rule may name a method twice
					c.byMethod[m.ID] = append(rs, r)
				}
			}
		}

		sp := rp + ".spaces"
		if !ps.bad[sp] && len(rd.Spaces) == 0 {
			ps.add(sp, `no spaces; list spaces as "spaces/ID", or ["*"] for every space`)
		}
		for k, s := range rd.Spaces {
			kp := fmt.Sprintf("%s[%d]", sp, k)
			switch {
			case ps.bad[kp]:
			case s == "spaces/-":
				ps.add(kp, `"spaces/-" means every space to Chat; write "*" for every space, or name the spaces`)
			case s == "*":
				if len(rd.Spaces) > 1 {
					ps.add(kp, `"*" must be the only entry in spaces; remove it or the other entries`)
				}
				r.allSpaces = true
			case spaceRE.MatchString(s):
				r.spaces[s] = true
			case s == "spaces/*":
				ps.add(kp, `"spaces/*" is not a pattern; write "*" for every space`)
			case spaceIDRE.MatchString(s):
				ps.add(kp, "%q is not a space name; write %q", s, "spaces/"+s)
			default:
				ps.add(kp, `%q is not a space name; write "spaces/ID" with the ID from the space's URL, or "*" for every space`, s)
			}
		}
	}
	return explicit
}

// resolveMethods expands one entry of methods: an id, a group or "*".
// isID reports an exact id. A leading "chat." (the discovery document's
// spelling) is accepted. msg is the problem when the entry matches
// nothing.
func resolveMethods(pat string) (ms []*chatapi.Method, isID bool, msg string) {
	id := strings.TrimPrefix(pat, "chat.")
	switch {
	case id == "*":
		return allMethods, false, ""
	case strings.HasSuffix(id, ".*") && !strings.Contains(strings.TrimSuffix(id, ".*"), "*"):
		if ms, ok := groups[id]; ok {
			return ms, false, ""
		}
		return nil, false, fmt.Sprintf("group %q matches no method%s", pat,
			didYouMean(id, methodWords, `; a group is the start of method ids followed by ".*", as in "spaces.messages.*"`))
	case strings.Contains(id, "*"):
		return nil, false, fmt.Sprintf(`%q: "*" may only stand alone or end a group, as in "spaces.messages.*"`, pat)
	}
	if m, ok := chatapi.Lookup(id); ok && m.ID == id {
		return []*chatapi.Method{m}, true, ""
	}
	return nil, false, fmt.Sprintf("unknown method %q%s", pat,
		didYouMean(id, methodWords, `; use a method id such as "spaces.messages.create", a group such as "spaces.messages.*", or "*"`))
}

// validateScopes reports whether the scopes are all known, so that the
// servability check does not pile a second error on a typo.
func validateScopes(cd *callerDoc, c *Caller, ps *problems) bool {
	sp := c.path + ".scopes"
	ok := !ps.bad[sp] && len(cd.Scopes) > 0
	if !ps.bad[sp] && len(cd.Scopes) == 0 {
		ps.add(sp, `no scopes; grant at least one, usually "chat.bot"`)
	}
	parsed := make([]chatapi.Scope, len(cd.Scopes))
	known := make([]bool, len(cd.Scopes))
	uses := map[chatapi.Scope][]int{}
	for k, s := range cd.Scopes {
		if sc, isKnown := chatapi.ParseScope(s); isKnown {
			parsed[k], known[k] = sc, true
			uses[sc] = append(uses[sc], k)
		}
	}
	c.granted = map[chatapi.Scope]bool{}
	for k, s := range cd.Scopes {
		kp := fmt.Sprintf("%s[%d]", sp, k)
		switch idx := uses[parsed[k]]; {
		case ps.bad[kp]:
			ok = false
		case !known[k]:
			ok = false
			ps.add(kp, "unknown scope %q%s", s, didYouMean(strings.TrimPrefix(s, chatapi.ScopePrefix), scopeWords,
				`; use a Chat scope such as "chat.bot"`))
		case idx[0] != k:
			// A repeat, reported at the first use.
		default:
			if len(idx) > 1 {
				ps.add(kp, "%s; list each scope once", dupNote(strconv.Quote(string(parsed[k])), idx, sp+"[%d]"))
			}
			c.Scopes = append(c.Scopes, parsed[k])
			c.granted[parsed[k]] = true
		}
	}
	return ok
}

func validateSubjects(cd *callerDoc, c *Caller, ps *problems) {
	c.users, c.domains = map[string]bool{}, map[string]bool{}
	for k, s := range cd.Subjects {
		kp := fmt.Sprintf("%s.subjects[%d]", c.path, k)
		ls := strings.ToLower(s)
		switch {
		case ps.bad[kp]:
		case s == "*" || strings.HasPrefix(s, "*@*"):
			ps.add(kp, `%q would let the caller act as any user of any domain; list users, or "*@example.com" for the users of one domain`, s)
		case strings.HasPrefix(ls, "*@") && validDomain(ls[2:]):
			c.domains[ls[2:]] = true
		case validEmail(ls):
			c.users[ls] = true
		default:
			ps.add(kp, `%q is not an email address or "*@domain" pattern; write "user@example.com", or "*@example.com" for every user of a domain`, s)
		}
	}
	c.Subjects = append([]string(nil), cd.Subjects...)
}

func validateLimits(cd *callerDoc, c *Caller, ps *problems) {
	lp := c.path + ".limits"
	l := cd.Limits
	if l.PerMinute < 0 {
		ps.add(lp+".perMinute", "%d is negative; use a number of calls per minute, or 0 for no limit", l.PerMinute)
	}
	if l.Burst < 0 {
		ps.add(lp+".burst", "%d is negative; use a number of calls, or leave it out for one second's worth of perMinute", l.Burst)
	}
	if l.Burst > 0 && l.PerMinute == 0 {
		ps.add(lp+".burst", "has no effect without perMinute; set perMinute too, or remove burst")
	}
	if l.PerMinute > 0 && l.Burst == 0 {
		l.Burst = l.EffectiveBurst()
	}
	c.Limits = l
}

// validatePrefer checks each rule's prefer list: scopes the caller is
// granted that some method of the rule accepts, so the preference can
// take effect.
func validatePrefer(cd *callerDoc, c *Caller, ps *problems) {
	rules := map[string]*rule{}
	for _, rs := range c.byMethod {
		for _, r := range rs {
			rules[r.path] = r
		}
	}
	for j, rd := range cd.Allow {
		rp := fmt.Sprintf("%s.allow[%d]", c.path, j)
		r := rules[rp]
		if r == nil {
			continue
		}
		for k, s := range rd.Prefer {
			kp := fmt.Sprintf("%s.prefer[%d]", rp, k)
			sc, ok := chatapi.ParseScope(s)
			switch {
			case ps.bad[kp]:
			case !ok:
				ps.add(kp, "unknown scope %q%s", s, didYouMean(strings.TrimPrefix(s, chatapi.ScopePrefix), scopeWords, `; use a Chat scope such as "chat.app.messages.readonly"`))
			case !c.granted[sc]:
				ps.add(kp, "%q is not granted to the caller, so it cannot be preferred; add it to %s.scopes or remove it here", sc, c.path)
			case !ruleAccepts(c, r, sc):
				ps.add(kp, "no method of this rule accepts %q; remove it, or list a method that does", sc)
			default:
				r.prefer = append(r.prefer, sc)
			}
		}
	}
}

// ruleAccepts reports whether any method the rule allows accepts s.
func ruleAccepts(c *Caller, r *rule, s chatapi.Scope) bool {
	for id, rs := range c.byMethod {
		if !slices.Contains(rs, r) {
			continue
		}
		m, _ := chatapi.Lookup(id)
		if slices.Contains(m.AppScopes, s) || slices.Contains(m.UserScopes, s) || slices.Contains(m.AdminScopes, s) {
			return true
		}
	}
	return false
}

// validateAdminAccess holds adminAccess and the chat.admin.* scopes to
// each other: admin access acts as an administrator with such a scope,
// and such a scope serves nothing without admin access.
func validateAdminAccess(cd *callerDoc, c *Caller, ps *problems) {
	var admin []chatapi.Scope
	for _, s := range c.Scopes {
		if s.IsAdmin() {
			admin = append(admin, s)
		}
	}
	ap := c.path + ".adminAccess"
	switch {
	case cd.AdminAccess && len(cd.Subjects) == 0:
		ps.add(ap, "admin access acts as a Workspace administrator through domain-wide delegation; list the administrators in %s.subjects", c.path)
	case cd.AdminAccess && len(admin) == 0:
		ps.add(ap, `admin access needs a chat.admin.* scope; add one such as "chat.admin.spaces.readonly" to %s.scopes`, c.path)
	case !cd.AdminAccess && len(admin) > 0:
		ps.add(c.path+".scopes", "%q serves only calls with useAdminAccess=true, which this caller may not make; set %s to true, or remove the scope", admin[0], ap)
	}
	c.AdminAccess = cd.AdminAccess
}

// checkServable reports explicitly listed methods that no granted scope
// can serve: such a rule could never allow a call, which is a mistake in
// the file, not a policy.
func checkServable(explicit []explicitMethod, cd *callerDoc, c *Caller, ps *problems) {
	asUser := len(cd.Subjects) > 0
	sp := c.path + ".scopes"
	for _, e := range explicit {
		m := e.m
		if firstGranted(m.AppScopes, c.granted) != "" || (asUser && firstGranted(m.UserScopes, c.granted) != "") ||
			(asUser && cd.AdminAccess && firstGranted(m.AdminScopes, c.granted) != "") {
			continue
		}
		switch {
		case m.UserOnly() && !asUser:
			ps.add(e.path, "%s works only with user authentication (domain-wide delegation); add the users it may act as to %s.subjects and %q to %s",
				m.ID, c.path, m.UserScopes[0], sp)
		case m.UserOnly() || len(m.AppScopes) == 0:
			ps.add(e.path, "%s needs %s, which %s does not grant; add %q to %s", m.ID, oneOf(m.UserScopes), sp, m.UserScopes[0], sp)
		case asUser && len(m.UserScopes) > 0:
			ps.add(e.path, "%s needs %s for app authentication or %s as a subject, which %s does not grant; add %q to %s",
				m.ID, oneOf(m.AppScopes), oneOf(m.UserScopes), sp, m.AppScopes[0], sp)
		default:
			ps.add(e.path, "%s needs %s, which %s does not grant; add %q to %s", m.ID, oneOf(m.AppScopes), sp, m.AppScopes[0], sp)
		}
	}
}

// firstGranted returns the first scope of accepted that granted holds, or
// "". accepted is narrowest first, so that is the narrowest usable one.
func firstGranted(accepted []chatapi.Scope, granted map[chatapi.Scope]bool) chatapi.Scope {
	for _, s := range accepted {
		if granted[s] {
			return s
		}
	}
	return ""
}

// oneOf renders a scope list for a message: `"a"` or `one of "a", "b"`.
func oneOf(scopes []chatapi.Scope) string {
	q := make([]string, len(scopes))
	for i, s := range scopes {
		q[i] = strconv.Quote(string(s))
	}
	if len(q) == 1 {
		return q[0]
	}
	return "one of " + strings.Join(q, ", ")
}

// validEmail is a plain check of user@domain, lower case: enough to catch
// typos and patterns in the wrong place, not an RFC 5322 parser. "*" is
// refused in the local part, so "bob*@example.com" is not read as a
// pattern that quietly matches nothing.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(local) > 64 || !validDomain(domain) {
		return false
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := range len(local) {
		ch := local[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.IndexByte(".!#$%&'+/=?^_`{|}~-", ch) >= 0) {
			return false
		}
	}
	return true
}

// validDomain checks a lower-case DNS name of at least two labels.
func validDomain(d string) bool {
	if len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := range len(l) {
			if ch := l[i]; !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}
