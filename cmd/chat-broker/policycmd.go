package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/chat-broker/chat-broker/policy"
)

func runPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError("policy: want a subcommand: chat-broker policy check FILE...")
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
	case strings.ContainsAny(secret, " \t"):
		return errors.New("hash-secret: the secret contains white space, which an 'Authorization: Bearer' header cannot carry; use base64 or hex")
	}
	fmt.Fprintln(stdout, policy.HashSecret(secret))
	return nil
}
