package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes: 1 for a failure at run time, 2 for a usage error (a bad
// flag or argument), as flag.ExitOnError would.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `chat-broker holds a Google Chat app's service-account key and proxies
Chat API calls for the apps in its pod, by policy.

Usage:
  chat-broker serve --key sa.json --policy policy.yaml [flags]   run the broker
  chat-broker demo [--listen ADDR] [--admin ADDR]                 broker + emulator, ready to try
  chat-broker emulator --listen ADDR --write-key FILE [flags]     the emulator alone, for tests
  chat-broker chaos [--creates N] [--fault-rate F] [--seed N]     creates through a failing emulator: nothing lost or doubled
  chat-broker policy check FILE...                                validate policy files
  chat-broker policy explain FILE --caller C --request "VERB /path"  what the broker would do
  chat-broker wait [--admin ADDR] [--timeout D]                   block until the broker is ready
  chat-broker hash-secret < secret                                print a secret's secretSHA256
  chat-broker version                                             print the version

Run "chat-broker COMMAND -h" for a command's flags.
`

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "emulator":
		return runEmulator(ctx, rest, stdout, stderr)
	case "chaos":
		return runChaos(ctx, rest, stdout, stderr)
	case "policy":
		return runPolicy(rest, stdout, stderr)
	case "wait":
		return runWait(ctx, rest, stdout, stderr)
	case "hash-secret":
		return runHashSecret(rest, stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "chat-broker %s\n", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError("unknown command %q", cmd)
}

// parseFlags parses a subcommand's flags, then fills each flag not given
// on the command line from its environment variable (envName); -h prints
// the flags with their variables and succeeds.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage of chat-broker %s (every flag can also be set by the environment variable shown):\n", fs.Name())
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(stderr, "  --%s %s\t[%s]\n    \t%s", f.Name, name, envName(f.Name), usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, &exitError{code: 2, err: fmt.Errorf("%s: %w", fs.Name(), err)}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || given[f.Name] || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = usageError("%s=%q (for --%s): %v", envName(f.Name), v, f.Name, err)
		}
	})
	return false, envErr
}

// envName is the environment variable of a flag: --socket-mode is
// CHAT_BROKER_SOCKET_MODE. A flag on the command line wins over it.
func envName(flagName string) string {
	return "CHAT_BROKER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listFlag is a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
