package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/agnivade/levenshtein"
	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
)

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "chat-broker COMMAND",
		Short: "hold a Google Chat app's credentials and proxy its Chat API calls, by policy",
		Long: `chat-broker holds a Google Chat app's service-account key (or impersonates the
app's service account keylessly) and proxies the Chat API calls of the apps in its
pod, each checked against a YAML policy. docs/cli.md is the reference.`,
		Example: `  chat-broker demo
  chat-broker serve --key sa.json --policy policy.yaml
  chat-broker policy add-caller --name notifier --secret-file notifier.secret --policy policy.yaml
  chat-broker policy check policy.yaml`,
		Version: versionText(),
		// Args and RunE see what no subcommand matched, so an unknown
		// command gets one line, not cobra's multi-line suggestion.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(cmd.ErrOrStderr())
				cmd.Help()
				return usageError("no command given; run 'chat-broker --help'")
			}
			return unknownCommand(cmd, args[0])
		},
		SilenceErrors:     true, // main prints the error, once
		SilenceUsage:      true, // a usage error is one line, not 50
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(flagError)
	root.SetUsageFunc(usage)
	root.AddCommand(
		newServeCommand(),
		newDemoCommand(),
		newPolicyCommand(),
		newHashSecretCommand(),
		newWaitCommand(),
		newEmulatorCommand(),
		newChaosCommand(),
		newVersionCommand(),
	)
	return root
}

// unknownCommand is the error for a command that cmd does not have.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only on its own path
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", s[0])
	}
	return usageError("%s; run '%s --help' for the commands", msg, cmd.CommandPath())
}

// noArgs is cobra.NoArgs as a usage error that points at --help.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unexpected argument %q; run '%s --help'", args[0], cmd.CommandPath())
	}
	return nil
}

// Flag annotations: the environment variable of a flag, and the heading
// it is listed under in help.
const (
	envAnnotation   = "chat-broker/env"
	groupAnnotation = "chat-broker/group"
)

// bindEnv gives each flag of fs that has no variable yet the variable
// CHAT_BROKER_<PREFIX><FLAG>: --socket-mode of serve is
// CHAT_BROKER_SOCKET_MODE, --spaces of chaos (prefix "CHAOS_")
// CHAT_BROKER_CHAOS_SPACES. A variable means one thing wherever it is
// read (TestEnvNamesMeanOneThing).
func bindEnv(fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) {
		if envOf(f) != "" {
			return
		}
		setEnv(f, envName(prefix, f.Name))
	})
}

func setEnv(f *flag.Flag, name string) {
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[envAnnotation] = []string{name}
}

func envName(prefix, flagName string) string {
	return "CHAT_BROKER_" + prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envOf(f *flag.Flag) string {
	if v := f.Annotations[envAnnotation]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// setGroup lists the named flags under heading in help.
func setGroup(fs *flag.FlagSet, heading string, names ...string) {
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil {
			panic("setGroup: no flag --" + n) // a programming error, caught by every test
		}
		if f.Annotations == nil {
			f.Annotations = map[string][]string{}
		}
		f.Annotations[groupAnnotation] = []string{heading}
	}
}

// applyEnv fills each flag not given on the command line from its
// environment variable; the command line wins.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envOf(f)
		if err != nil || f.Changed || name == "" {
			return
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if setErr := fs.Set(f.Name, v); setErr != nil {
			err = usageError("%s=%q (for --%s): %s", name, v, f.Name, valueProblem(f, v, setErr))
		}
	})
	return err
}

// flagError turns the flag parser's errors into one line that names the
// flag as help does, says what was expected, and points at --help.
func flagError(cmd *cobra.Command, err error) error {
	help := fmt.Sprintf("run '%s --help'", cmd.CommandPath())
	var notExist *flag.NotExistError
	var invalid *flag.InvalidValueError
	var noValue *flag.ValueRequiredError
	switch {
	case errors.As(err, &notExist):
		if short := notExist.GetSpecifiedShortnames(); short != "" {
			// "-listen": a long flag with one dash.
			if cmd.Flags().Lookup(short) != nil {
				return usageError("-%s: flags take two dashes: write --%s", short, short)
			}
			return usageError("unknown flag -%s (flags take two dashes); %s", short, help)
		}
		name := notExist.GetSpecifiedName()
		if near := nearestFlag(cmd.Flags(), name); near != "" {
			return usageError("unknown flag --%s; did you mean --%s? %s", name, near, help)
		}
		return usageError("unknown flag --%s; %s", name, help)
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		return usageError("--%s: %s", f.Name, valueProblem(f, invalid.GetValue(), invalid.Unwrap()))
	case errors.As(err, &noValue):
		return usageError("--%s needs a value; %s", noValue.GetSpecifiedName(), help)
	}
	return usageError("%v; %s", err, help)
}

// valueProblem says why value does not suit f, and the form it wants.
func valueProblem(f *flag.Flag, value string, cause error) string {
	example := f.DefValue
	switch f.Value.Type() {
	case "duration":
		if example == "0s" || example == "" {
			example = "30s"
		}
		return fmt.Sprintf("%q is not a duration; write it like %s", value, example)
	case "int", "int64":
		return fmt.Sprintf("%q is not a whole number; write it like %s", value, example)
	case "float64":
		return fmt.Sprintf("%q is not a number; write it like %s", value, example)
	case "bool":
		return fmt.Sprintf("%q is not true or false", value)
	}
	return fmt.Sprintf("%q %v", value, cause)
}

// nearestFlag returns the flag of fs whose name is within two edits of
// name, if exactly one is the closest.
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if d := levenshtein.ComputeDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// usage prints a command's usage: its command line, examples,
// subcommands, and flags under their headings, each with its environment
// variable in brackets.
func usage(cmd *cobra.Command) error {
	w := cmd.OutOrStderr()
	fmt.Fprintf(w, "Usage:\n  %s\n", cmd.UseLine())
	if cmd.HasExample() {
		fmt.Fprintf(w, "\nExamples:\n%s\n", cmd.Example)
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintln(w, "\nCommands:")
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				fmt.Fprintf(w, "  %-12s %s\n", c.Name(), c.Short)
			}
		}
	}
	var headings []string
	groups := map[string][]*flag.Flag{}
	hasEnv := false
	cmd.LocalFlags().VisitAll(func(f *flag.Flag) {
		if f.Hidden {
			return
		}
		h := "Flags"
		if g := f.Annotations[groupAnnotation]; len(g) == 1 {
			h = g[0]
		}
		if f.Name == "help" || f.Name == "version" {
			h = "Other flags"
		}
		if _, ok := groups[h]; !ok {
			headings = append(headings, h)
		}
		groups[h] = append(groups[h], f)
		hasEnv = hasEnv || envOf(f) != ""
	})
	sort.SliceStable(headings, func(i, j int) bool { return headingRank(headings[i]) < headingRank(headings[j]) })
	if hasEnv {
		fmt.Fprintln(w, "\nEvery flag can also be set by the environment variable in brackets; the command line wins.")
	}
	for _, h := range headings {
		fmt.Fprintf(w, "\n%s:\n", h)
		for _, f := range groups[h] {
			printFlag(w, f)
		}
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's usage.\n", cmd.CommandPath())
	}
	return nil
}

// headingOrder is the order of flag headings in help; a command's own
// flags ("Flags") come after serve's groups, help and version last.
var headingOrder = []string{groupGoogle, groupCallers, groupListeners, groupLimits, groupLogging, "Flags", "Other flags"}

func headingRank(h string) int {
	for i, o := range headingOrder {
		if o == h {
			return i
		}
	}
	return len(headingOrder) // none today; after the others
}

// printFlag prints one flag on two lines:
//
//	--listen address	[CHAT_BROKER_LISTEN]
//	    	address of the proxy listener (default 127.0.0.1:8080)
func printFlag(w io.Writer, f *flag.Flag) {
	name, text := flag.UnquoteUsage(f)
	if f.Value.Type() == "bool" {
		name = ""
	}
	short := ""
	if f.Shorthand != "" {
		short = "-" + f.Shorthand + ", "
	}
	if env := envOf(f); env != "" {
		fmt.Fprintf(w, "  %s--%s %s\t[%s]\n", short, f.Name, name, env)
	} else {
		fmt.Fprintf(w, "  %s--%s %s\n", short, f.Name, name)
	}
	fmt.Fprintf(w, "    \t%s", text)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
		fmt.Fprintf(w, " (default %s)", f.DefValue)
	}
	fmt.Fprintln(w)
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
