package main

import (
	"context"
	"net"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
)

// runOut runs the program and returns its error, standard output and
// standard error.
func runOut(t *testing.T, stdin string, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	err = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return err, out.String(), errOut.String()
}

// commands returns every command of the program but cobra's own help.
func commands() []*cobra.Command {
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		all = append(all, c)
		for _, sub := range c.Commands() {
			if sub.Name() != "help" {
				walk(sub)
			}
		}
	}
	walk(newRootCommand())
	return all
}

// Every command has a usage line, a summary, a description, examples and
// argument checks, and --help prints them to standard output and exits 0.
func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		path := c.CommandPath()
		t.Run(path, func(t *testing.T) {
			if c.Use == "" || c.Short == "" || c.Long == "" || c.Example == "" || c.Args == nil {
				t.Errorf("%s: want Use, Short, Long, Example and Args; got Use %q Short %q, Long %d bytes, Example %d bytes, Args set %v",
					path, c.Use, c.Short, len(c.Long), len(c.Example), c.Args != nil)
			}
			args := append(strings.Fields(path)[1:], "--help")
			err, out, errOut := runOut(t, "", args...)
			if err != nil || errOut != "" {
				t.Fatalf("%s --help: %v (exit %d), stderr %q; want exit 0", path, err, exitCode(err), errOut)
			}
			for _, want := range []string{"Usage:\n  " + path, "Examples:\n", strings.TrimSpace(c.Long[:40])} {
				if !strings.Contains(out, want) {
					t.Errorf("%s --help lacks %q:\n%s", path, want, out)
				}
			}
			c.LocalFlags().VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out, "--"+f.Name+" ") && !strings.Contains(out, "--"+f.Name+"\n") {
					t.Errorf("%s --help does not list --%s", path, f.Name)
				}
			})
		})
	}
}

// serve's flags are listed under headings, in a fixed order, none left
// over under a plain "Flags:".
func TestServeHelpGroups(t *testing.T) {
	_, out, _ := runOut(t, "", "serve", "--help")
	var order []int
	for _, h := range []string{groupGoogle, groupCallers, groupListeners, groupLimits, groupLogging, "Other flags"} {
		i := strings.Index(out, "\n"+h+":\n")
		if i < 0 {
			t.Fatalf("serve --help has no heading %q:\n%s", h, out)
		}
		order = append(order, i)
	}
	if !slices.IsSorted(order) {
		t.Errorf("serve --help headings out of order (%v):\n%s", order, out)
	}
	if strings.Contains(out, "\nFlags:\n") {
		t.Errorf("serve --help has flags under no heading:\n%s", out)
	}
	for _, tc := range []struct{ flag, heading string }{
		{"key", groupGoogle}, {"impersonate", groupGoogle}, {"upstream", groupGoogle},
		{"policy", groupCallers}, {"k8s-issuer", groupCallers},
		{"listen", groupListeners}, {"drain", groupListeners},
		{"max-in-flight", groupLimits}, {"shared-limits", groupLimits},
		{"log-level", groupLogging}, {"audit-flush-interval", groupLogging},
	} {
		flagAt := strings.Index(out, "\n  --"+tc.flag+" ")
		headingAt := strings.Index(out, "\n"+tc.heading+":\n")
		next := len(out)
		for _, h := range []string{groupGoogle, groupCallers, groupListeners, groupLimits, groupLogging, "Other flags"} {
			if i := strings.Index(out, "\n"+h+":\n"); i > headingAt && i < next {
				next = i
			}
		}
		if flagAt < headingAt || flagAt > next {
			t.Errorf("--%s is not under %q", tc.flag, tc.heading)
		}
	}
}

// An environment variable means one thing: where two commands read the
// same one, it is the same flag with the same type and default (serve's
// --admin and wait's). None is a variable that apps read.
func TestEnvNamesMeanOneThing(t *testing.T) {
	type use struct{ cmd, flag, typ, def string }
	seen := map[string]use{}
	for _, c := range commands() {
		c.LocalFlags().VisitAll(func(f *flag.Flag) {
			env := envOf(f)
			if f.Name == "help" || f.Name == "version" {
				return
			}
			if env == "" {
				t.Errorf("%s --%s has no environment variable", c.CommandPath(), f.Name)
				return
			}
			u := use{c.CommandPath(), f.Name, f.Value.Type(), f.DefValue}
			if prev, ok := seen[env]; ok && (prev.flag != u.flag || prev.typ != u.typ || prev.def != u.def) {
				t.Errorf("%s means two things: %s --%s (%s, default %q) and %s --%s (%s, default %q)",
					env, prev.cmd, prev.flag, prev.typ, prev.def, u.cmd, u.flag, u.typ, u.def)
			}
			seen[env] = u
		})
	}
	for _, reserved := range []string{"CHAT_BROKER_URL", "CHAT_BROKER_TOKEN"} {
		if u, ok := seen[reserved]; ok {
			t.Errorf("%s is the apps' variable, but %s --%s reads it", reserved, u.cmd, u.flag)
		}
	}
	for env, want := range map[string]string{
		"CHAT_BROKER_SPACES":          "",
		"CHAT_BROKER_EMULATOR_SPACES": "spaces",
		"CHAT_BROKER_CHAOS_SPACES":    "spaces",
		"CHAT_BROKER_ADMIN":           "admin",
		"CHAT_BROKER_LISTEN":          "listen",
		"CHAT_BROKER_EMULATOR_LISTEN": "listen",
		"CHAT_BROKER_WAIT_TIMEOUT":    "timeout",
	} {
		if got := seen[env].flag; got != want {
			t.Errorf("%s is --%q, want --%q", env, got, want)
		}
	}
}

// Flag mistakes are one line that names the flag as help does, says the
// form wanted, and exits 2; nothing else is printed.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown flag", nil, []string{"serve", "--prot", "1"}, "unknown flag --prot; run 'chat-broker serve --help'"},
		{"near miss", nil, []string{"serve", "--listn", "x"}, "unknown flag --listn; did you mean --listen? run 'chat-broker serve --help'"},
		{"one dash, known flag", nil, []string{"serve", "-listen", "127.0.0.1:1"}, "-listen: flags take two dashes: write --listen"},
		{"one dash, unknown", nil, []string{"policy", "check", "-prot"}, "unknown flag -prot (flags take two dashes); run 'chat-broker policy check --help'"},
		{"unknown flag of a nested command", nil, []string{"policy", "explain", "f", "--callr", "x"}, "unknown flag --callr; did you mean --caller? run 'chat-broker policy explain --help'"},
		{"duration without unit", nil, []string{"serve", "--drain", "30"}, `--drain: "30" is not a duration; write it like 30s`},
		{"not a whole number", nil, []string{"chaos", "--creates", "many"}, `--creates: "many" is not a whole number; write it like 1000`},
		{"not a number", nil, []string{"chaos", "--fault-rate", "high"}, `--fault-rate: "high" is not a number; write it like 0.2`},
		{"not a bool", nil, []string{"serve", "--unsafe-listen=maybe"}, `--unsafe-listen: "maybe" is not true or false`},
		{"not octal", nil, []string{"serve", "--socket-mode", "999"}, `--socket-mode: "999" is not octal permission bits; write them like 0660`},
		{"no value", nil, []string{"wait", "--admin"}, "--admin needs a value; run 'chat-broker wait --help'"},
		{"bad variable", map[string]string{"CHAT_BROKER_WAIT_TIMEOUT": "1"}, []string{"wait"}, `CHAT_BROKER_WAIT_TIMEOUT="1" (for --timeout): "1" is not a duration; write it like 30s`},
		{"unknown command", nil, []string{"serv"}, `unknown command "serv" (did you mean serve?); run 'chat-broker --help' for the commands`},
		{"unknown policy command", nil, []string{"policy", "chek"}, `unknown command "chek" (did you mean check?); run 'chat-broker policy --help' for the commands`},
		{"extra argument", nil, []string{"wait", "now"}, `unexpected argument "now"; run 'chat-broker wait --help'`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err, out, errOut := runOut(t, "", tc.args...)
			if err == nil || err.Error() != tc.want || exitCode(err) != 2 {
				t.Errorf("run(%q) = %v (exit %d)\nwant %s (exit 2)", tc.args, err, exitCode(err), tc.want)
			}
			if out != "" || errOut != "" {
				t.Errorf("run(%q) printed %q and %q; want only the error, which main prints", tc.args, out, errOut)
			}
		})
	}
}

// Values of the right type that cannot be used are refused before
// anything listens, each error naming its flag and the range wanted, with
// exit code 2.
func TestFlagValueErrors(t *testing.T) {
	serve := []string{"serve", "--key", "k.json", "--policy", "p.yaml"}
	redis := append(slices.Clone(serve), "--shared-limits", "redis://127.0.0.1:6379/0")
	for _, tc := range []struct {
		base []string
		args []string
		want string
	}{
		{[]string{"chaos"}, []string{"--creates", "0"}, "--creates 0: want 1 to"},
		{[]string{"chaos"}, []string{"--creates", "1000000"}, "--creates 1000000: want 1 to"},
		{[]string{"chaos"}, []string{"--concurrency", "0"}, "--concurrency 0"},
		{[]string{"chaos"}, []string{"--spaces", "0"}, "--spaces 0"},
		{[]string{"chaos"}, []string{"--fault-rate", "1"}, "--fault-rate 1: want at least 0 and below 1"},
		{[]string{"chaos"}, []string{"--fault-rate", "-0.1"}, "--fault-rate -0.1"},
		{[]string{"chaos"}, []string{"--timeout", "0s"}, "--timeout 0s"},
		{[]string{"chaos"}, []string{"extra"}, `unexpected argument "extra"`},
		{serve, []string{"--max-in-flight", "0"}, "--max-in-flight 0: want at least 1"},
		{serve, []string{"--max-waiting", "-1"}, "--max-waiting -1"},
		{serve, []string{"--request-deadline", "0s"}, "--request-deadline 0s"},
		{serve, []string{"--max-attempts", "0"}, "--max-attempts 0: want at least 1 (1 turns retries off)"},
		{serve, []string{"--rate-limit-wait", "-1s"}, "--rate-limit-wait -1s"},
		{serve, []string{"--space-write-limit", "60/min"}, `--space-write-limit "60/min": rate "60/min": unit "min": want s, m or h`},
		{serve, []string{"--space-read-limit", "fast"}, `--space-read-limit "fast": rate "fast"`},
		{serve, []string{"--project-limit", "messages=3000/m"}, `--project-limit "messages=3000/m": project limit "messages=3000/m": unknown quota class "messages"; known: `},
		{serve, []string{"--project-limit", "message-writes"}, `--project-limit "message-writes": project limit "message-writes": want CLASS=RATE`},
		{serve, []string{"--shared-limits-password-file", "pw"}, "--shared-limits-password-file: needs --shared-limits URL"},
		{serve, []string{"--shared-limits-app", "x"}, "--shared-limits-app: needs --shared-limits URL"},
		{redis, []string{"--shared-limits-budget", "0s"}, "--shared-limits-budget 0s"},
		{redis, []string{"--shared-limits-probe", "-1s"}, "--shared-limits-probe -1s"},
		{redis, []string{"--shared-limits-brokers", "0"}, "--shared-limits-brokers 0: want 1 to 10000"},
		{redis, []string{"--shared-limits-brokers", "10001"}, "--shared-limits-brokers 10001: want 1 to 10000"},
		{redis, []string{"--shared-limits-app", "a}b"}, `--shared-limits-app "a}b": no { or }`},
		{serve, []string{"--shared-limits-brokers", "3"}, "--shared-limits-brokers: needs --shared-limits URL"},
		{serve, []string{"--shared-limits-cluster"}, "--shared-limits-cluster: needs --shared-limits URL"},
	} {
		args := append(slices.Clone(tc.base), tc.args...)
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			err, _, _ := runOut(t, "", args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
				t.Errorf("run(%q) = %v (exit %d)\nwant an error containing %q (exit 2)", args, err, exitCode(err), tc.want)
			}
		})
	}
}

// Exit codes: 0 yes, 1 no (refused, invalid when asked to judge, not
// ready), 2 usage errors and files that cannot be used.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, opsPolicy("spaces/AAAA"))
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, strings.Replace(opsPolicy("spaces/AAAA"), "methods:", "method:", 1))
	missing := filepath.Join(dir, "missing.yaml")
	explain := func(file, request string) []string {
		return []string{"policy", "explain", file, "--caller", "app", "--request", request}
	}
	for _, tc := range []struct {
		desc string
		args []string
		want int
	}{
		{"check: valid", []string{"policy", "check", good}, 0},
		{"check: invalid", []string{"policy", "check", good, bad}, 1},
		{"check: missing", []string{"policy", "check", missing}, 2},
		{"check: invalid and missing", []string{"policy", "check", bad, missing}, 2},
		{"check: no file", []string{"policy", "check"}, 2},
		{"check: a folder", []string{"policy", "check", dir}, 2},
		{"explain: allowed", explain(good, "POST /v1/spaces/AAAA/messages"), 0},
		{"explain: refused", explain(good, "POST /v1/spaces/BBBB/messages"), 1},
		{"explain: refused, not a method", explain(good, "POST /batch"), 1},
		{"explain: missing policy", explain(missing, "POST /v1/spaces/AAAA/messages"), 2},
		{"explain: invalid policy", explain(bad, "POST /v1/spaces/AAAA/messages"), 2},
		{"explain: unknown caller", []string{"policy", "explain", good, "--caller", "nobody", "--request", "GET /v1/spaces"}, 2},
		{"explain: malformed request", explain(good, "/v1/spaces"), 2},
		{"explain: no file", []string{"policy", "explain", "--caller", "app", "--request", "GET /v1/spaces"}, 2},
		{"wait: not ready", []string{"wait", "--admin", "127.0.0.1:1", "--timeout", "100ms", "--interval", "20ms"}, 1},
		{"wait: bad timeout", []string{"wait", "--timeout", "0s"}, 2},
		{"wait: bad flag", []string{"wait", "--timeout", "soon"}, 2},
		{"help", []string{"policy", "--help"}, 0},
		{"version", []string{"version"}, 0},
		{"no command", nil, 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err, _, _ := runOut(t, "", tc.args...)
			if got := exitCode(err); got != tc.want {
				t.Errorf("run(%q): exit %d (%v), want %d", tc.args, got, err, tc.want)
			}
		})
	}
	// wait: ready is TestWait's (it needs a running broker).
}

// What the CLI prints names flags and files, never Go packages.
func TestErrorsHaveNoPackagePrefix(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.json")
	writeFile(t, badKey, `{"type":"authorized_user"}`)
	good := writePolicy(t, dir, opsPolicy("spaces/AAAA"))
	typo := filepath.Join(dir, "typo.yaml")
	writeFile(t, typo, strings.Replace(opsPolicy("spaces/AAAA"), "methods:", "method:", 1))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().String()
	prefix := regexp.MustCompile(`\b(broker|policy|proxy|emulator|shaping|sharedlimits|identity|refusal): (key|explain|[a-z]+:)?`)
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"missing key", []string{"serve", "--key", "nope.json", "--policy", good}, "--key nope.json: no such file: give the path of the Chat app's service-account key"},
		{"wrong key type", []string{"serve", "--key", badKey, "--policy", good}, `--key ` + badKey + `: type is "authorized_user", want "service_account"`},
		{"missing policy", []string{"serve", "--impersonate", "chat-app@p.iam.gserviceaccount.com", "--policy", "nope.yaml"}, "--policy nope.yaml: no such file: give the path of the policy file"},
		{"a method: typo", []string{"policy", "explain", typo, "--caller", "app", "--request", "GET /v1/spaces"}, typo + `: callers[0].allow[0].method: unknown field; did you mean "methods"?`},
		{"unknown caller", []string{"policy", "explain", good, "--caller", "nobody", "--request", "GET /v1/spaces"}, `--caller "nobody": no caller "nobody" in ` + good},
		{"malformed request", []string{"policy", "explain", good, "--caller", "app", "--request", "/v1/spaces"}, `--request "/v1/spaces": want "VERB /path"`},
		{"emulator quotas", []string{"emulator", "--write-key", filepath.Join(dir, "k.json"), "--quotas", "nonsense"}, "--quotas: "},
		{"listen in use", []string{"emulator", "--write-key", filepath.Join(dir, "k.json"), "--listen", busy}, "--listen " + busy + ": the address is in use: stop what listens there or choose another port"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err, _, errOut := runOut(t, "", tc.args...)
			if err == nil {
				t.Fatalf("run(%q) succeeded", tc.args)
			}
			text := err.Error() + errOut
			if m := prefix.FindString(text); m != "" {
				t.Errorf("run(%q) printed a package prefix %q:\n%s", tc.args, m, text)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v\nwant it to start %s", tc.args, err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 0 && tc.desc != "a method: typo" {
				t.Errorf("run(%q): %d lines, want one:\n%v", tc.args, strings.Count(err.Error(), "\n")+1, err)
			}
		})
	}
	// The typo gives one line, the unknown field, not also "no methods".
	err, _, _ = runOut(t, "", "policy", "explain", typo, "--caller", "app", "--request", "GET /v1/spaces")
	if strings.Contains(err.Error(), "no methods") {
		t.Errorf("a method: typo also reports no methods:\n%v", err)
	}
}

func TestVersion(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	path := "github.com/chat-broker/chat-broker"
	for _, tc := range []struct {
		desc, ld string
		info     *debug.BuildInfo
		want     string
	}{
		{"go install @v1.2.3", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: path, Version: "v1.2.3"}},
			"chat-broker v1.2.3\n"},
		{"go build in a checkout", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: path, Version: "v0.0.0-20261206113631-2cfc3819774b+dirty"},
			Settings: settings("vcs", "git", "vcs.revision", "2cfc3819774b6855b16b07dd7e7550d695964454", "vcs.time", "2026-12-06T11:36:31Z", "vcs.modified", "true")},
			"chat-broker v0.0.0-20261206113631-2cfc3819774b+dirty (revision 2cfc3819774b6855b16b07dd7e7550d695964454, 2026-12-06T11:36:31Z, with uncommitted changes)\n"},
		{"go build in a clean checkout", "", &debug.BuildInfo{Main: debug.Module{Path: path, Version: "v1.3.0"},
			Settings: settings("vcs.revision", "2cfc3819774b", "vcs.time", "2026-12-06T11:36:31Z", "vcs.modified", "false")},
			"chat-broker v1.3.0 (revision 2cfc3819774b, 2026-12-06T11:36:31Z)\n"},
		{"image built with -X main.version", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Path: path, Version: "(devel)"}},
			"chat-broker v1.2.3\n"},
		{"go run", "", &debug.BuildInfo{Main: debug.Module{Path: path, Version: "(devel)"}},
			"chat-broker (devel: built by go run, go test or go build without a module version)\n"},
		{"no build info", "", nil, "chat-broker (devel: built by go run, go test or go build without a module version)\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := formatVersion(tc.ld, tc.info); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	err, out, _ := runOut(t, "", "version")
	if err != nil || !strings.HasPrefix(out, "chat-broker ") || out == "chat-broker dev\n" || strings.Count(out, "\n") != 1 {
		t.Errorf("version: %v\n%s", err, out)
	}
	if _, out2, _ := runOut(t, "", "--version"); out2 != out {
		t.Errorf("--version printed %q, version %q", out2, out)
	}
}
