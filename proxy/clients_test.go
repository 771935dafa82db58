package proxy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Python and Node examples use Google's official client libraries,
// changed only in endpoint and credential. They run where the machine
// has the toolchain and library (.ci/run installs both); elsewhere the
// test says what is missing and skips.

func TestPythonClient(t *testing.T) {
	// Prefer Debian's interpreter, where apt installs the library.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Skip("python3 not installed: skipping the Python client test (Debian: apt-get install python3-googleapi)")
		}
	}
	if out, err := exec.Command(python, "-c", "import googleapiclient, google.oauth2.credentials").CombinedOutput(); err != nil {
		t.Skipf("google-api-python-client not importable by %s: skipping the Python client test (Debian: apt-get install python3-googleapi): %s", python, firstLine(out))
	}
	// The example builds its client from the discovery document the
	// broker serves: no copy on disk, no network beyond the broker.
	runExample(t, nil, python, filepath.Join("..", "examples", "python", "post_message.py"))
}

func TestNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: skipping the Node client test")
	}
	dir := filepath.Join("..", "examples", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@googleapis", "chat")); err != nil {
		t.Skip("@googleapis/chat not installed: skipping the Node client test (run: npm ci --prefix examples/node)")
	}
	runExample(t, nil, node, filepath.Join(dir, "post_message.js"))
}

// runExample runs an example program against a real broker and checks
// that it created and listed a message, and that the emulator saw the
// broker's tokens, never the caller's secret.
func runExample(t *testing.T, extraEnv []string, name string, args ...string) {
	t.Helper()
	e := newEnv(t)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "CHAT_BROKER_URL="+e.url, "CHAT_BROKER_TOKEN="+notifierSecret, "CHAT_SPACE=spaces/AAAA")
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	if !strings.Contains(string(out), "created spaces/AAAA/messages/") || !strings.Contains(string(out), "listed 1") {
		t.Errorf("output %q, want a created message and a list of one", out)
	}
	reqs := e.emu.Requests()
	if len(reqs) != 2 || reqs[0].MethodID != "spaces.messages.create" || reqs[1].MethodID != "spaces.messages.list" {
		t.Fatalf("emulator saw %+v, want a create then a list", reqs)
	}
	for _, r := range reqs {
		if strings.Contains(r.Authorization, notifierSecret) || len(r.Scopes) != 1 {
			t.Errorf("%s reached Google with Authorization %q and scopes %v", r.MethodID, r.Authorization, r.Scopes)
		}
	}
	if msgs := e.emu.Messages("spaces/AAAA"); len(msgs) != 1 || msgs[0].Text != "Hello, world!" {
		t.Errorf("emulator holds %+v, want one \"Hello, world!\"", msgs)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
