package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/policy"
)

// lines is an io.Writer that hands each complete line to a channel, so a
// test can wait for a command's output without polling.
type lines struct {
	mu  sync.Mutex
	ch  chan string
	buf []byte
	all strings.Builder // everything written, for scans
}

func newLines() *lines { return &lines{ch: make(chan string, 1000)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case l.ch <- string(l.buf[:i]):
		default: // a test that stopped reading must not block the program
		}
		l.buf = l.buf[i+1:]
	}
}

// waitFor waits until a line matching re has been written (now or
// earlier), and returns its submatches.
func (l *lines) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	l.mu.Lock()
	for _, line := range strings.Split(l.all.String(), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			l.mu.Unlock()
			return m
		}
	}
	l.mu.Unlock()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line := <-l.ch:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no output line matching %s", re)
			return nil
		}
	}
}

// start runs the program in the background; the returned function cancels
// it (as Ctrl-C does) and returns its error.
func start(t *testing.T, args ...string) (stdout, stderr *lines, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = newLines(), newLines()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), stdout, stderr) }()
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("%v did not stop within 30s of cancel", args)
			}
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// startEmulator runs the emulator command with the app a member of
// spaces (comma-separated; "" for none) and returns the key file it wrote
// in dir and its URL.
func startEmulator(t *testing.T, dir, spaces string) (keyFile, url string) {
	t.Helper()
	keyFile = filepath.Join(dir, "sa.json")
	args := []string{"emulator", "--listen", "127.0.0.1:0", "--write-key", keyFile}
	if spaces != "" {
		args = append(args, "--spaces", spaces)
	}
	out, _, _ := start(t, args...)
	return keyFile, out.waitFor(t, regexp.MustCompile(`serving (http://\S+);`))[1]
}

var (
	exportURL   = regexp.MustCompile(`^export CHAT_BROKER_URL=(http://\S+)$`)
	exportToken = regexp.MustCompile(`^export CHAT_BROKER_TOKEN=(\S+)$`)
)

// The README's first command: the demo starts, serves the curl line it
// prints, and stops cleanly on Ctrl-C.
func TestDemo(t *testing.T) {
	out, _, stop := start(t, "demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	base := out.waitFor(t, exportURL)[1]
	secret := out.waitFor(t, exportToken)[1]
	curlLine := out.waitFor(t, regexp.MustCompile(`^curl .*\\$`))[0]
	curlCont := out.waitFor(t, regexp.MustCompile(`^\s+-d .*/messages"$`))[0]

	// Run the printed lines as a user pastes them, where bash and curl exist.
	if _, err := exec.LookPath("curl"); err == nil {
		script := "export CHAT_BROKER_URL=" + base + "\nexport CHAT_BROKER_TOKEN=" + secret + "\n" + curlLine + "\n" + curlCont + "\n"
		got, err := exec.Command("bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("the printed curl line failed: %v\n%s", err, got)
		}
		if !strings.Contains(string(got), `"text": "Hello, world!"`) && !strings.Contains(string(got), `"text":"Hello, world!"`) {
			t.Fatalf("the printed curl line answered %s, want the created message", got)
		}
	} else {
		t.Log("curl not installed: running the printed request from Go instead")
		req, _ := http.NewRequest("POST", base+"/v1/spaces/DEMO/messages", strings.NewReader(`{"text":"Hello, world!"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("demo create: %v %v", resp, err)
		}
		resp.Body.Close()
	}

	list := func(space string) (int, string) { return fetchAs(t, base+"/v1/"+space+"/messages", secret) }
	// Listing carries the app scope the demo emulator approved.
	if code, body := list("spaces/DEMO"); code != 200 || !strings.Contains(body, "Hello, world!") {
		t.Fatalf("demo list: %d %s", code, body)
	}
	// Anything else is denied.
	if code, _ := list("spaces/OTHER"); code != 403 {
		t.Errorf("demo list in spaces/OTHER: %d, want 403", code)
	}

	if err := stop(); err != nil {
		t.Fatalf("demo exited with %v after Ctrl-C, want nil (exit 0)", err)
	}
}

// The production path: the emulator command writes a key, serve loads it
// with a policy file, and a call goes through; /readyz turns ready once a
// token is minted.
func TestEmulatorAndServe(t *testing.T) {
	secret := "app-secret-0123456789abcdefghij"
	listen, admin, stop, _ := serveOneCaller(t, "app", secret, "spaces.messages.create", "chat.bot")
	code, err := postMessage(listen, "spaces/AAAA", "Bearer "+secret)
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 {
		t.Fatalf("create through serve: %d", code)
	}
	// A token has been minted, so the broker is ready.
	if code, _ := fetch(t, "http://"+admin+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d after a successful call, want 200", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve exited with %v, want nil", err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fetch GETs url and returns the status and body; no answer fails the
// test.
func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	return fetchAs(t, url, "")
}

// fetchAs GETs url with secret as the bearer ("" for none) and returns
// the status and body; no answer fails the test.
func fetchAs(t *testing.T, url, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// writePolicy writes text to policy.yaml in dir and returns the file's
// name.
func writePolicy(t *testing.T, dir, text string) string {
	t.Helper()
	name := filepath.Join(dir, "policy.yaml")
	writeFile(t, name, text)
	return name
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.json")
	writeFile(t, badKey, `{"type":"authorized_user"}`)
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"no command", nil, "no command given"},
		{"unknown command", []string{"serv"}, `unknown command "serv"`},
		{"serve without key", []string{"serve", "--policy", "p.yaml"}, "--key: required"},
		{"serve without policy", []string{"serve", "--key", "k.json"}, "--policy: required"},
		{"non-loopback listen", []string{"serve", "--key", "k", "--policy", "p", "--listen", "0.0.0.0:8080"}, `--listen "0.0.0.0:8080": non-loopback address needs --unsafe-listen`},
		{"non-loopback admin", []string{"serve", "--key", "k", "--policy", "p", "--admin", ":9090"}, `--admin ":9090": non-loopback address needs --unsafe-listen`},
		{"http upstream", []string{"serve", "--key", "k", "--policy", "p", "--upstream", "http://chat.googleapis.com"}, "plain http is allowed only on a loopback host"},
		{"upstream with path", []string{"serve", "--key", "k", "--policy", "p", "--upstream", "https://chat.googleapis.com/v1"}, "want an origin"},
		{"missing key file", []string{"serve", "--key", filepath.Join(dir, "none.json"), "--policy", "p"}, "--key " + filepath.Join(dir, "none.json") + ": no such file: give the path"},
		{"wrong key type", []string{"serve", "--key", badKey, "--policy", "p"}, `"authorized_user"`},
		{"key and impersonate", []string{"serve", "--key", "k.json", "--impersonate", "chat-app@p.iam.gserviceaccount.com", "--policy", "p"}, "--key and --impersonate: give one, not both: --key FILE mints with the service-account key; --impersonate EMAIL mints keyless"},
		{"token endpoint with a key", []string{"serve", "--key", "k.json", "--token-endpoint", "https://oauth2.googleapis.com/token", "--policy", "p"}, "--token-endpoint: only with --impersonate"},
		{"impersonate not an email", []string{"serve", "--impersonate", "chat-app", "--policy", "p"}, `--impersonate "chat-app": want the Chat app's service-account email`},
		{"http IAM endpoint", []string{"serve", "--impersonate", "a@b.iam.gserviceaccount.com", "--iam-endpoint", "http://iam.example.com", "--policy", "p"}, "plain http is allowed only on a loopback host"},
		{"emulator without key", []string{"emulator"}, "--write-key: required"},
		{"emulator bad approve", []string{"emulator", "--write-key", "k", "--approve", "chat.bot"}, `--approve: "chat.bot" is not a chat.app.* scope`},
		{"policy without check", []string{"policy"}, "policy check FILE"},
		{"bad log level", []string{"demo", "--log-level", "loud"}, `--log-level "loud"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := run(context.Background(), tc.args, strings.NewReader(""), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	writeFile(t, good, secretPolicy("app", "app-secret-0123456789", "spaces.messages.create", "spaces/AAAA", "chat.bot"))
	writeFile(t, bad, secretPolicy("app", "app-secret-0123456789", "spaces.messages.create", "spaces/AAAA", "chat.bott"))
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"policy", "check", good}, nil, &out, &errOut); err != nil {
		t.Fatalf("check good: %v", err)
	}
	if !strings.Contains(out.String(), "good.yaml: ok (1 caller)") {
		t.Errorf("check good printed %q", out.String())
	}
	err := run(context.Background(), []string{"policy", "check", good, bad}, nil, &out, &errOut)
	if err == nil {
		t.Fatal("check bad succeeded")
	}
	want := bad + `: callers[0].scopes[0]: unknown scope "chat.bott"; did you mean "chat.bot"?`
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("check bad printed %q, want it to contain %q", errOut.String(), want)
	}
}

func TestHashSecret(t *testing.T) {
	secret := "s3cret-0123456789-abcdef"
	for _, tc := range []struct{ desc, in string }{
		{"bare", secret},
		{"with LF", secret + "\n"},
		{"with CRLF", secret + "\r\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var out strings.Builder
			if err := run(context.Background(), []string{"hash-secret"}, strings.NewReader(tc.in), &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out.String()); got != policy.HashSecret(secret) {
				t.Errorf("hash-secret(%q) = %q, want %q", tc.in, got, policy.HashSecret(secret))
			}
		})
	}
	for _, tc := range []struct{ desc, in, want string }{
		{"empty", "", "no secret on standard input"},
		{"short", "short", "the secret is 5 bytes"},
		{"white space", "has a space 0123456789", "white space"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := run(context.Background(), []string{"hash-secret"}, strings.NewReader(tc.in), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("hash-secret(%q) = %v, want %q", tc.in, err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"hash-secret", secret}, nil, io.Discard, io.Discard); err == nil {
		t.Error("hash-secret accepted the secret as an argument")
	}
}

// The demo writes its key and policy into the folder it names; a refusal
// names that policy.yaml, and an edit to it is reloaded, so the refused
// call goes through. A temporary folder is removed when the demo stops.
func TestDemoFiles(t *testing.T) {
	for _, tc := range []struct {
		desc string
		dir  bool
	}{{"--dir", true}, {"temporary folder", false}} {
		t.Run(tc.desc, func(t *testing.T) {
			args := []string{"demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
			given := filepath.Join(t.TempDir(), "demo-files")
			if tc.dir {
				args = append(args, "--dir", given)
			}
			out, logs, stop := start(t, args...)
			dir := out.waitFor(t, regexp.MustCompile(`^chat-broker demo: files in (\S+): `))[1]
			if tc.dir && dir != given {
				t.Errorf("demo named %s, want --dir %s", dir, given)
			}
			base := out.waitFor(t, exportURL)[1]
			secret := out.waitFor(t, exportToken)[1]
			file := filepath.Join(dir, "policy.yaml")
			for _, name := range []string{file, filepath.Join(dir, "sa.json")} {
				if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v, want a file of mode 0600", name, err)
				}
			}
			list := func() (int, string) { return fetchAs(t, base+"/v1/spaces/OTHER/messages", secret) }
			if code, body := list(); code != 403 || !strings.Contains(body, `add \"spaces/OTHER\" to callers[0].allow[0].spaces in `+file) {
				t.Fatalf("refused call: %d %s; want 403 naming %s", code, body, file)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, file, strings.Replace(string(data), "spaces: [spaces/DEMO]", "spaces: [spaces/DEMO, spaces/OTHER]", 1))
			logs.waitFor(t, regexp.MustCompile(`"msg":"policy reloaded"`))
			if code, body := list(); code != 200 {
				t.Errorf("after the edit: %d %s, want 200", code, body)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			_, err = os.Stat(dir)
			if kept := err == nil; kept != tc.dir {
				t.Errorf("after the demo stopped, %s exists: %v; want %v", dir, kept, tc.dir)
			}
		})
	}
}
