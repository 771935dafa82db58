package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/identity"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

func runPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "explain" {
		return runExplain(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "check" {
		return usageError("policy: want a subcommand: chat-broker policy check FILE... or chat-broker policy explain FILE --caller NAME --request \"VERB /path\"")
	}
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	if help, err := parseFlags(fs, args[1:], stderr); help || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError("policy check: name at least one policy file")
	}
	bad := 0
	for _, file := range fs.Args() {
		p, err := policy.Load(file)
		if err != nil {
			bad++
			fmt.Fprintln(stderr, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%d callers)\n", file, len(p.Callers()))
	}
	if bad > 0 {
		return fmt.Errorf("policy check: %d of %d files invalid", bad, fs.NArg())
	}
	return nil
}

// minSecretLen keeps guessable caller secrets out of policies.
const minSecretLen = 16

func runHashSecret(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hash-secret", flag.ContinueOnError)
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("hash-secret: reads the secret on standard input, not as an argument (arguments show up in ps and shell history)")
	}
	data, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return fmt.Errorf("hash-secret: read standard input: %w", err)
	}
	// One line: a trailing newline from echo or a file is not part of it.
	line, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
	secret := strings.TrimSuffix(string(line), "\r")
	switch {
	case secret == "":
		return errors.New("hash-secret: no secret on standard input; e.g. openssl rand -base64 32 | tee secret | chat-broker hash-secret")
	case len(secret) < minSecretLen:
		return fmt.Errorf("hash-secret: the secret is %d bytes; use at least %d random bytes, e.g. openssl rand -base64 32", len(secret), minSecretLen)
	case identity.LooksLikeJWT(secret):
		return errors.New("hash-secret: the secret looks like a JWT, which the broker reads as a Kubernetes service-account token; use random bytes, e.g. openssl rand -base64 32")
	case strings.ContainsAny(secret, " \t"):
		return errors.New("hash-secret: the secret contains white space, which an 'Authorization: Bearer' header cannot carry; use base64 or hex")
	}
	fmt.Fprintln(stdout, policy.HashSecret(secret))
	return nil
}

// runExplain prints what the broker would do with one request. It exits
// 0 when the call would be allowed and 1 when it would be refused, like
// "kubectl auth can-i", so a CI step can assert either.
func runExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	caller := fs.String("caller", "", "the caller's `name` in the policy; required")
	request := fs.String("request", "", `the request as "VERB /path?query", e.g. "POST /v1/spaces/AAAA/messages"; required`)
	subject := fs.String("subject", "", "the `user` to act as (domain-wide delegation), as the "+proxy.SubjectHeader+" header would name")
	output := fs.String("output", "text", "output `format`: text or json")
	// The file may come before the flags, as in the usage line.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError("policy explain: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case file == "":
		return usageError("policy explain: name the policy file: chat-broker policy explain FILE --caller NAME --request \"VERB /path\"")
	case *caller == "":
		return usageError("--caller: required: the caller's name in the policy")
	case *request == "":
		return usageError(`--request: required, e.g. --request "POST /v1/spaces/AAAA/messages"`)
	case *output != "text" && *output != "json":
		return usageError("--output %q: want text or json", *output)
	}
	pol, err := policy.Load(file)
	if err != nil {
		return err
	}
	e, err := proxy.Explain(pol, *caller, *request, *subject)
	if err != nil {
		return usageError("%v", err)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(e); err != nil {
			return err
		}
	} else {
		printExplanation(stdout, e)
	}
	if e.Decision != "allow" {
		return &exitError{code: 1, err: fmt.Errorf("policy explain: %s would be refused (%s)", strings.TrimSpace(*request), e.Reason)}
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
