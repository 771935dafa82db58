package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
	yaml "go.yaml.in/yaml/v3"

	"github.com/chat-broker/chat-broker/policy"
)

func newPolicyCheckCommand() *cobra.Command {
	var opts policy.Options
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "validate policy files as the broker loads them",
		Long: `Parse and validate each policy file with the broker's own parser, so CI and
reload always agree. Every problem is printed, one a line, naming the file, the
place in it and the fix. It exits 0 when every file is valid, 1 when one is
invalid (or holds no policy), and 2 when one cannot be read (or on a usage error).

A FILE of Kubernetes objects (a ConfigMap manifest, or the output of
"kubectl kustomize" or "helm template" on standard input, FILE -) is checked by
the policies it holds: each ConfigMap data value with a top-level callers (and
any value under a .yaml or .yml key that is not valid YAML). Other objects and
values are passed over. A ConfigMap's secretFiles name files in the pod, so
they are not read.

A policy file's secretFiles are read as the broker reads them, so a check
fails where its Secrets are not mounted; --skip-secret-files checks everything
else there.`,
		Example: `  chat-broker policy check policy.yaml
  chat-broker policy check deploy/kubernetes/components/sidecar/policy-configmap.yaml
  kubectl kustomize deploy/kubernetes/base | chat-broker policy check -
  chat-broker policy check --skip-secret-files /etc/chat-broker/policy.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("policy check: name at least one policy file; run 'chat-broker policy check --help'")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyCheck(args, opts, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	skipSecretFilesFlag(fs, &opts.SkipSecretFiles)
	return cmd
}

// skipSecretFilesFlag adds --skip-secret-files, which check and explain
// share, with its environment variable.
func skipSecretFilesFlag(fs *flag.FlagSet, p *bool) {
	fs.BoolVar(p, "skip-secret-files", false, "do not read identify.secretFile (where the Secrets are not mounted: CI, a workstation); the broker always reads them")
	setEnv(fs.Lookup("skip-secret-files"), "CHAT_BROKER_SKIP_SECRET_FILES")
}

func runPolicyCheck(files []string, opts policy.Options, stdin io.Reader, stdout, stderr io.Writer) error {
	invalid, unreadable, checked := 0, 0, 0
	missingSecrets := false
	for _, file := range files {
		name, data, err := readPolicyInput(file, stdin)
		if err != nil {
			unreadable++
			fmt.Fprintln(stderr, err)
			continue
		}
		sources := policySources(name, data)
		checked += max(len(sources), 1)
		if len(sources) == 0 {
			invalid++
			fmt.Fprintf(stderr, "%s: holds Kubernetes objects but no policy: no ConfigMap value with a top-level callers; name the policy file, or the manifest of the ConfigMap that holds it\n", name)
			continue
		}
		for _, src := range sources {
			p, err := policy.ParseWith(src.name, src.data, src.options(opts))
			var perr *policy.Error
			switch {
			case errors.As(err, &perr):
				invalid++
				src.fileLines(perr)
				fmt.Fprintln(stderr, perr)
				missingSecrets = missingSecrets || !opts.SkipSecretFiles && missingSecretFile(perr)
			case err != nil:
				invalid++
				fmt.Fprintf(stderr, "%s: %v\n", src.name, err)
			default:
				fmt.Fprintf(stdout, "%s: ok (%s)\n", src.name, checkSummary(p))
			}
		}
	}
	if missingSecrets {
		fmt.Fprintln(stderr, skipSecretFilesHint)
	}
	switch {
	case unreadable > 0:
		return usageError("policy check: %d of %d files cannot be read", unreadable, len(files))
	case invalid > 0:
		return noError("policy check: %d of %d policies invalid", invalid, checked)
	}
	return nil
}

// loadOnePolicy reads the one policy a file (or "-", standard input)
// holds, itself or in a ConfigMap. Anything that cannot be used exits 2:
// the command was given it to use, not to judge.
func loadOnePolicy(file string, opts policy.Options, stdin io.Reader) (*policy.Policy, error) {
	name, data, err := readPolicyInput(file, stdin)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	sources := policySources(name, data)
	if len(sources) != 1 {
		return nil, usageError("%s: holds %d policies (ConfigMap values with a top-level callers); name a file that holds one", name, len(sources))
	}
	src := sources[0]
	p, err := policy.ParseWith(src.name, src.data, src.options(opts))
	var perr *policy.Error
	if errors.As(err, &perr) {
		src.fileLines(perr)
		if !opts.SkipSecretFiles && missingSecretFile(perr) {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("%w\n%s", perr, skipSecretFilesHint)}
		}
		return nil, &exitError{code: exitUsage, err: perr}
	}
	return p, err
}

const skipSecretFilesHint = "a secretFile is not there: where the Secrets are not mounted (CI, a workstation), add --skip-secret-files to check the rest"

// missingSecretFile reports whether a problem is a secretFile that does
// not exist.
func missingSecretFile(e *policy.Error) bool {
	return slices.ContainsFunc(e.Problems, func(p policy.Problem) bool {
		return strings.HasSuffix(p.Path, ".secretFile") && strings.Contains(p.Message, "no such file")
	})
}

// checkSummary counts what a valid policy holds, and what was not read.
func checkSummary(p *policy.Policy) string {
	s := plural(len(p.Callers()), "caller")
	if n := p.SecretFilesNotRead(); n > 0 {
		s += "; " + plural(n, "secretFile") + " not read"
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// readPolicyInput reads a file named on the command line, or standard
// input for "-", under the policy's size cap, and returns the name to
// report it by.
func readPolicyInput(file string, stdin io.Reader) (name string, data []byte, err error) {
	name, r := file, stdin
	if file == "-" {
		name = "standard input"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return name, nil, fileError("", file, err, "check the path")
		}
		defer f.Close()
		r = f
	}
	data, err = io.ReadAll(io.LimitReader(r, policy.MaxFileSize+1))
	switch {
	case err != nil && file == "-":
		return name, nil, fmt.Errorf("standard input: %v", err)
	case err != nil:
		return name, nil, fileError("", file, err, "check the path")
	case len(data) > policy.MaxFileSize:
		return name, nil, fmt.Errorf("%s: larger than %d MiB; a policy is a few kilobytes", name, policy.MaxFileSize>>20)
	}
	return name, data, nil
}

// policySource is one policy to check: a whole file, or a key of a
// ConfigMap in a file of Kubernetes objects.
type policySource struct {
	name string
	data []byte
	// offset is the line of the file just before the policy's first
	// line, for a policy in a block scalar ("policy.yaml: |"); -1 when
	// the policy's lines are not the file's.
	offset int
	// inConfigMap: its secretFiles name files in the pod, never here,
	// so they are not read.
	inConfigMap bool
}

// policySources returns the policies data holds. A file whose first
// document is not a Kubernetes object (apiVersion and kind) is one
// policy, as the broker reads it, including any YAML error. Otherwise
// each document is an object, and a ConfigMap's data value is a policy
// (isPolicy) when it has a top-level callers, in file order.
func policySources(file string, data []byte) []policySource {
	whole := []policySource{{name: file, data: data}}
	var docs []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return whole
		}
		if len(n.Content) == 1 && n.Content[0].Tag != "!!null" {
			docs = append(docs, n.Content[0]) // "---" with only comments is no document
		}
	}
	if len(docs) == 0 || field(docs[0], "apiVersion") == nil || field(docs[0], "kind") == nil {
		return whole
	}
	var out []policySource
	for _, doc := range docs {
		if kind := field(doc, "kind"); kind == nil || kind.Value != "ConfigMap" {
			continue
		}
		d := field(doc, "data")
		if d == nil || d.Kind != yaml.MappingNode {
			continue
		}
		name := "?"
		if n := field(field(doc, "metadata"), "name"); n != nil {
			name = n.Value
		}
		for i := 0; i+1 < len(d.Content); i += 2 {
			key, val := d.Content[i].Value, d.Content[i+1]
			if !isPolicy(key, val.Value) {
				continue
			}
			src := policySource{name: fmt.Sprintf("%s (ConfigMap %s, data.%s)", file, name, key), data: []byte(val.Value), offset: -1, inConfigMap: true}
			if val.Style == yaml.LiteralStyle {
				src.offset = val.Line
			}
			out = append(out, src)
		}
	}
	return out
}

// isPolicy reports whether a ConfigMap's data value is a policy: YAML
// with a top-level callers (what every policy has, and other YAML
// seldom), or, under a key ending in .yaml or .yml, YAML that does not
// parse (a policy with a syntax error must not pass unseen).
func isPolicy(key, value string) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		return strings.HasSuffix(key, ".yaml") || strings.HasSuffix(key, ".yml")
	}
	return len(doc.Content) == 1 && field(doc.Content[0], "callers") != nil
}

// field returns the value of key in a mapping node, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// options are opts for this source: a ConfigMap's secretFiles are
// never read.
func (s policySource) options(opts policy.Options) policy.Options {
	if s.inConfigMap {
		opts.SkipSecretFiles = true
	}
	return opts
}

// fileLines turns the policy's "line N" into the file's, for a policy
// embedded in a manifest; where that cannot be done, it says whose lines
// they are.
func (s policySource) fileLines(e *policy.Error) {
	for i, p := range e.Problems {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Path, "line "))
		if err != nil || !strings.HasPrefix(p.Path, "line ") {
			continue
		}
		if s.offset >= 0 {
			e.Problems[i].Path = "line " + strconv.Itoa(s.offset+n)
		} else {
			e.Problems[i].Path = fmt.Sprintf("line %d of the policy", n)
		}
	}
}
