package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
)

// addCallerFlags are policy add-caller's flags.
type addCallerFlags struct {
	name, secretFile, policyFile string
	spaces, methods, scopes      string
}

func newAddCallerCommand() *cobra.Command {
	var f addCallerFlags
	cmd := &cobra.Command{
		Use:   "add-caller --name NAME [--secret-file FILE] [--policy FILE] [flags]",
		Short: "make a caller: a new secret, its hash, and the policy rule (or add it to the file)",
		Long: `Make a new caller: generate a random secret (32 bytes, URL-safe base64), write it
to --secret-file (mode 0600; an existing file is never overwritten) or, without
it, print it once; then print its SHA-256 and the caller's rule to paste under
callers: in the policy. With --policy FILE, add the rule to the file in place
instead: the result is checked with the broker's own parser first, and the file
is replaced in one step, so it is never left half-written or invalid (a running
broker reloads it).

--scopes defaults to the narrowest app scope of each of --methods (chat.bot for
spaces.messages.create). The caller is app-authenticated; for a caller that acts as
users (subjects), edit the rule by hand.`,
		Example: `  chat-broker policy add-caller --name notifier --secret-file notifier.secret
  chat-broker policy add-caller --name notifier --secret-file notifier.secret --spaces spaces/AAAA --policy policy.yaml
  chat-broker policy add-caller --name reader --methods spaces.messages.list,spaces.messages.get --spaces spaces/AAAA,spaces/BBBB`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAddCaller(f, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.name, "name", "", "the caller's `name`: lower-case letters, digits, '.', '_' and '-'; required")
	fs.StringVar(&f.secretFile, "secret-file", "", "write the new secret to this `file` (mode 0600, never overwritten); default: print it once")
	fs.StringVar(&f.policyFile, "policy", "", "add the caller to this policy `file` in place; default: print the rule to paste")
	fs.StringVar(&f.spaces, "spaces", "*", "comma-separated `spaces` the caller may call in, e.g. spaces/AAAA; * is every space the app is in")
	fs.StringVar(&f.methods, "methods", "spaces.messages.create", "comma-separated Chat `methods` (or groups such as spaces.messages.*) the caller may call")
	fs.StringVar(&f.scopes, "scopes", "", "comma-separated `scopes` its calls carry; default: the narrowest app scope of each method")
	bindEnv(fs, "ADD_CALLER_")
	return cmd
}

func runAddCaller(f addCallerFlags, stdout io.Writer) error {
	if f.name == "" {
		return usageError("--name: required: the caller's name in the policy, e.g. --name notifier")
	}
	spaces, methods := splitList(f.spaces), splitList(f.methods)
	if len(spaces) == 0 {
		return usageError("--spaces: empty; name spaces such as spaces/AAAA, or * for every space the app is in")
	}
	if len(methods) == 0 {
		return usageError("--methods: empty; name methods such as spaces.messages.create")
	}
	scopes := splitList(f.scopes)
	if len(scopes) == 0 {
		var err error
		if scopes, err = appScopes(methods); err != nil {
			return err
		}
	}
	secret := newSecret()
	hash := policy.HashSecret(secret)

	// The rule alone must be a valid caller, whatever file it goes to.
	rule := callerRule("  ", f.name, hash, methods, spaces, scopes)
	if _, err := policy.Parse("the new caller", []byte("version: 1\ncallers:\n"+rule)); err != nil {
		return usageError("the caller these flags describe is not valid:\n%v", err)
	}
	var updated []byte
	var target string
	if f.policyFile != "" {
		var err error
		if target, updated, err = appendCaller(f.policyFile, f.name, hash, methods, spaces, scopes); err != nil {
			return err
		}
	}

	// Nothing is written before everything is known to be good; the
	// secret file first, so a policy never names a secret that is lost.
	if f.secretFile != "" {
		if err := writeNewFile(f.secretFile, []byte(secret)); err != nil {
			return err
		}
	}
	if f.policyFile != "" {
		if err := replaceFile(target, updated); err != nil {
			if f.secretFile != "" {
				os.Remove(f.secretFile)
			}
			return fmt.Errorf("--policy %s: %w; nothing changed", f.policyFile, err)
		}
	}

	switch {
	case f.secretFile != "":
		fmt.Fprintf(stdout, "# %s's secret is in %s (mode 0600). Give it to the app as its bearer token.\n", f.name, f.secretFile)
	default:
		fmt.Fprintf(stdout, "# %s's secret, shown only now: give it to the app as its bearer token.\n# %s\n", f.name, secret)
	}
	fmt.Fprintf(stdout, "# Its SHA-256, the policy's secretSHA256: %s\n", hash)
	if f.policyFile != "" {
		fmt.Fprintf(stdout, "# Added caller %q to %s; a running broker reloads it.\n", f.name, f.policyFile)
		return nil
	}
	fmt.Fprintf(stdout, "# Paste this caller under callers: in the policy, then run: chat-broker policy check FILE\n%s", rule)
	return nil
}

// appScopes picks, for each method id, the narrowest app scope Chat
// accepts for it, unless an earlier pick already covers it.
func appScopes(methods []string) ([]string, error) {
	var scopes []string
	for _, id := range methods {
		m, ok := chatapi.Lookup(id)
		switch {
		case !ok:
			return nil, usageError("--methods %s: not a Chat method id (a group or a typo); name the scopes with --scopes, or check it with 'chat-broker policy check' after", id)
		case m.UserOnly():
			return nil, usageError("--methods %s: works only as a user (domain-wide delegation); add-caller writes app-authenticated callers: edit subjects and scopes by hand", id)
		}
		covered := false
		for _, s := range m.AppScopes {
			covered = covered || slices.Contains(scopes, string(s))
		}
		if !covered {
			scopes = append(scopes, string(m.AppScopes[0]))
		}
	}
	return scopes, nil
}

// callerRule is a caller's YAML, its list item indented by indent.
func callerRule(indent, name, hash string, methods, spaces, scopes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s- name: %s\n", indent, yamlScalar(name))
	fmt.Fprintf(&b, "%s  identify:\n%s    secretSHA256: %q\n", indent, indent, hash)
	fmt.Fprintf(&b, "%s  allow:\n", indent)
	fmt.Fprintf(&b, "%s    - methods: %s\n", indent, yamlList(methods))
	fmt.Fprintf(&b, "%s      spaces: %s\n", indent, yamlList(spaces))
	fmt.Fprintf(&b, "%s  scopes: %s\n", indent, yamlList(scopes))
	return b.String()
}

var plainYAML = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/*@-]*$`)

// yamlScalar writes s plain when that is safe, else double-quoted (JSON
// quoting is valid YAML), so no value can change the structure.
func yamlScalar(s string) string {
	if plainYAML.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = yamlScalar(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// callersIndent finds how the file indents its callers' list items.
var callersIndent = regexp.MustCompile(`(?m)^callers:[ \t]*(?:#.*)?\n(?:[ \t]*(?:#.*)?\n)*( *)- `)

// appendCaller returns the policy file (symlinks resolved) and its text
// with the caller appended, having checked that the file is a valid
// policy now, that the name is free, and that the result parses to the
// same callers plus the new one. Text is appended, so the file's
// comments and layout stay as they are; a file whose callers list does
// not end the file in block style is refused, unchanged.
func appendCaller(file, name, hash string, methods, spaces, scopes []string) (string, []byte, error) {
	target, err := filepath.EvalSymlinks(file)
	if err != nil {
		return "", nil, fileError("--policy", file, err, policyFileFix)
	}
	data, err := os.ReadFile(target)
	if err != nil {
		return "", nil, fileError("--policy", file, err, policyFileFix)
	}
	before, err := policy.Parse(file, data)
	if err != nil {
		return "", nil, usageError("--policy %s: the file is not a valid policy now; fix it first ('chat-broker policy check %s'):\n%v", file, file, err)
	}
	if _, taken := before.CallerByName(name); taken {
		return "", nil, usageError("--name %s: %s already has a caller of that name; choose another name, or edit that caller's rule", name, file)
	}
	indent := "  "
	if m := callersIndent.FindSubmatch(data); m != nil {
		indent = string(m[1])
	}
	text := slices.Clone(data)
	if len(text) > 0 && text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	text = append(text, callerRule(indent, name, hash, methods, spaces, scopes)...)
	after, err := policy.Parse(file, text)
	if err == nil {
		c, ok := after.CallerByName(name)
		if ok && len(after.Callers()) == len(before.Callers())+1 && c.Name == name {
			return target, text, nil
		}
	}
	return "", nil, usageError("--policy %s: cannot add the caller at the end of the file: its callers: list must be the last thing in it, written as lines starting with \"- \"; nothing changed: run without --policy and paste the rule", file)
}

// writeNewFile writes data to a new file of mode 0600; an existing file
// is an error, never overwritten.
func writeNewFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageError("--secret-file %s: the file exists; add-caller never overwrites a secret: remove it, or name a new file", name)
	}
	if err != nil {
		return fileError("--secret-file", name, err, "name a file in a folder that exists")
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("--secret-file %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("--secret-file %s: %w", name, err)
	}
	return nil
}

// replaceFile replaces name with data in one step (a temporary file in
// the same folder, then a rename), keeping its permission bits, so a
// reader (a broker reloading it) sees the old file or the new one, never
// half of one.
func replaceFile(name string, data []byte) error {
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
