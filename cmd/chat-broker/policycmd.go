package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/identity"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy COMMAND",
		Short: "check a policy, explain a decision, add a caller",
		Long: `Work with policy files: check them as the broker would load them, explain what
the broker would do with one request, or add a caller with a new secret.`,
		Example: `  chat-broker policy check policy.yaml
  chat-broker policy explain policy.yaml --caller notifier --request "POST /v1/spaces/AAAA/messages"
  chat-broker policy add-caller --name notifier --secret-file notifier.secret --policy policy.yaml`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("policy: want a command: chat-broker policy check FILE..., policy explain FILE --caller NAME --request \"VERB /path\", or policy add-caller --name NAME; run 'chat-broker policy --help'")
			}
			return unknownCommand(cmd, args[0])
		},
	}
	cmd.AddCommand(newPolicyCheckCommand(), newExplainCommand(), newAddCallerCommand())
	return cmd
}

func newHashSecretCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-secret < SECRET",
		Short: "print the secretSHA256 of a caller secret read on standard input",
		Long: `Read a caller secret on standard input (one line; its newline is not part of it)
and print its SHA-256 in hex, the value of identify.secretSHA256 in the policy.
The secret is never an argument: arguments show up in ps and shell history.
'chat-broker policy add-caller' makes the secret, the hash and the rule in one go.`,
		Example: `  openssl rand -base64 32 | tee notifier.secret | chat-broker hash-secret
  chat-broker hash-secret < notifier.secret`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("hash-secret: reads the secret on standard input, not as an argument (arguments show up in ps and shell history)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHashSecret(cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// minSecretLen keeps guessable caller secrets out of policies.
const minSecretLen = 16

func runHashSecret(stdin io.Reader, stdout io.Writer) error {
	data, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return usageError("hash-secret: cannot read standard input: %v", err)
	}
	// One line: a trailing newline from echo or a file is not part of it.
	line, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
	secret := strings.TrimSuffix(string(line), "\r")
	switch {
	case secret == "":
		return usageError("hash-secret: no secret on standard input; e.g. openssl rand -base64 32 | tee secret | chat-broker hash-secret")
	case len(secret) < minSecretLen:
		return usageError("hash-secret: the secret is %d bytes; use at least %d random bytes, e.g. openssl rand -base64 32", len(secret), minSecretLen)
	case identity.LooksLikeJWT(secret):
		return usageError("hash-secret: the secret looks like a JWT, which the broker reads as a Kubernetes service-account token; use random bytes, e.g. openssl rand -base64 32")
	case strings.ContainsAny(secret, " \t"):
		return usageError("hash-secret: the secret contains white space, which an 'Authorization: Bearer' header cannot carry; use base64 or hex")
	}
	fmt.Fprintln(stdout, policy.HashSecret(secret))
	return nil
}

// explainFlags are policy explain's flags.
type explainFlags struct {
	caller, request, subject, output string
	opts                             policy.Options
}

func newExplainCommand() *cobra.Command {
	var f explainFlags
	cmd := &cobra.Command{
		Use:   "explain FILE --caller NAME --request \"VERB /path\" [flags]",
		Short: "say what the broker would do with one request, and why",
		Long: `Say what the broker would do with one request from a caller under the policy in
FILE: the Chat method, the space, the decision, the rule that decided, and the
scopes the call would carry. Like "kubectl auth can-i", it exits 0 when the call
would be allowed and 1 when it would be refused, so a CI step can assert either;
a missing or invalid policy file, an unknown caller or a malformed request exits 2.
FILE may be a ConfigMap manifest that holds one policy, or - for standard input,
as for 'policy check'.`,
		Example: `  chat-broker policy explain policy.yaml --caller notifier --request "POST /v1/spaces/AAAA/messages"
  chat-broker policy explain policy.yaml --caller notifier --request "GET /v1/spaces/AAAA/messages" --output json
  ! chat-broker policy explain policy.yaml --caller notifier --request "DELETE /v1/spaces/AAAA"   # CI: must be refused`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError("policy explain: name the policy file: chat-broker policy explain FILE --caller NAME --request \"VERB /path\"")
			case len(args) > 1:
				return usageError("unexpected argument %q; run 'chat-broker policy explain --help'", args[1])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExplain(args[0], f, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&f.caller, "caller", "", "the caller's `name` in the policy; required")
	fs.StringVar(&f.request, "request", "", `the request as "VERB /path?query", e.g. "POST /v1/spaces/AAAA/messages"; required`)
	fs.StringVar(&f.subject, "subject", "", "the `user` to act as (domain-wide delegation), as the "+proxy.SubjectHeader+" header would name")
	fs.StringVar(&f.output, "output", "text", "output `format`: text or json")
	skipSecretFilesFlag(fs, &f.opts.SkipSecretFiles)
	bindEnv(fs, "EXPLAIN_")
	return cmd
}

// runExplain prints what the broker would do with one request.
func runExplain(file string, f explainFlags, stdin io.Reader, stdout io.Writer) error {
	switch {
	case f.caller == "":
		return usageError("--caller: required: the caller's name in the policy")
	case f.request == "":
		return usageError(`--request: required, e.g. --request "POST /v1/spaces/AAAA/messages"`)
	case f.output != "text" && f.output != "json":
		return usageError("--output %q: want text or json", f.output)
	}
	pol, err := loadOnePolicy(file, f.opts, stdin)
	if err != nil {
		return err
	}
	e, err := proxy.Explain(pol, f.caller, f.request, f.subject)
	if err != nil {
		msg := withoutPrefix(err, "proxy: explain: ")
		if strings.HasPrefix(msg, "no caller") {
			return usageError("--caller %q: %s", f.caller, msg)
		}
		return usageError("--request %s", strings.TrimPrefix(msg, "request "))
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(e); err != nil {
			return err
		}
	} else {
		printExplanation(stdout, e)
	}
	if e.Decision != "allow" {
		return noError("policy explain: %s would be refused (%s)", strings.TrimSpace(f.request), e.Reason)
	}
	return nil
}

func printExplanation(w io.Writer, e proxy.Explanation) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-9s %s\n", k+":", v)
		}
	}
	method := e.Method
	if method == "" {
		method = "(none: not a Chat API method)"
	}
	row("caller", e.Caller)
	row("method", method)
	row("space", e.Space)
	if e.Subject == "" {
		row("subject", "(none: app authentication)")
	} else {
		row("subject", e.Subject)
	}
	row("decision", e.Decision)
	row("rule", e.Rule)
	row("reason", e.Reason)
	row("message", e.Message)
	if e.Decision == "allow" {
		row("scopes", chatapi.ScopeKey(e.Scopes))
	}
}
