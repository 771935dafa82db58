package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
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

// javaJars are the jars of Google's Java client stack as Debian installs
// them (libgoogle-api-client-java and what it depends on).
var javaJars = []string{
	"google-api-client.jar", "google-http-client.jar", "google-http-client-gson.jar",
	"google-oauth-client.jar", "gson.jar", "guava.jar",
	"opencensus-api.jar", "opencensus-contrib-http-util.jar", "grpc-context.jar",
}

const (
	javaSecret    = "java-app-secret-0123456789abcdef"
	javaDebianPkg = "apt-get install default-jdk-headless libgoogle-api-client-java libgoogle-http-client-java libgoogle-oauth-client-java libgoogle-gson-java"
)

// Google's Java client library, with its defaults, as a Java Chat app
// meets it: examples/java/debian/ChatCheck.java has the generated Chat
// client's shape over google-api-client (there is no Debian package of
// google-api-services-chat; examples/java/PostMessage.java is the Maven
// example for users). By default it gzips JSON bodies (sent chunked, no
// Content-Length), sends PATCH as POST with X-HTTP-Method-Override and
// uploads media in resumable sessions whose chunks are PUTs that carry
// none of the start's headers, X-Chat-Broker-Subject included: the
// broker must continue the session as the subject that started it.
func TestJavaClient(t *testing.T) {
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Skip("javac not installed: skipping the Java client test (Debian: " + javaDebianPkg + ")")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java not installed: skipping the Java client test (Debian: " + javaDebianPkg + ")")
	}
	jars := make([]string, len(javaJars))
	for i, j := range javaJars {
		jars[i] = filepath.Join("/usr/share/java", j)
		if _, err := os.Stat(jars[i]); err != nil {
			t.Skipf("%s missing: skipping the Java client test (Debian: %s)", jars[i], javaDebianPkg)
		}
	}
	classes := t.TempDir()
	cp := strings.Join(jars, string(os.PathListSeparator))
	if out, err := exec.Command(javac, "-d", classes, "-cp", cp, filepath.Join("..", "examples", "java", "debian", "ChatCheck.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}

	e := newEnvWith(t, emulator.Config{
		Spaces: []string{"spaces/AAAA", "spaces/BBBB"}, Delegation: true,
		Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly},
	}, policyOf(callerEntry("java", javaSecret,
		"[spaces.messages.create, spaces.messages.patch, spaces.messages.list, spaces.messages.search, media.upload]", "[spaces/AAAA]",
		"[chat.bot, chat.app.messages.readonly, chat.messages.create, chat.messages.readonly]", "subjects: [alice@example.com]")))
	e.emu.AddMember("spaces/AAAA", "alice@example.com")

	// 600 KiB: three chunks of at most MediaHttpUploader.MINIMUM_CHUNK_SIZE.
	data := make([]byte, 600<<10)
	rand.Read(data)
	sum := sha256.Sum256(data)
	file := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A bound in case the client hangs; it takes about a second.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-cp", classes+string(os.PathListSeparator)+cp, "ChatCheck")
	cmd.Env = append(os.Environ(), "CHAT_BROKER_URL="+e.url, "CHAT_BROKER_TOKEN="+javaSecret, "CHAT_SPACE=spaces/AAAA",
		"CHAT_SUBJECT=alice@example.com", "CHAT_UPLOAD_FILE="+file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("java ChatCheck: %v\n%s", err, out)
	}
	t.Logf("java ChatCheck:\n%s", out)

	// What the program saw.
	msgs := e.emu.Messages("spaces/AAAA")
	if len(msgs) != 2 {
		t.Fatalf("emulator holds %+v, want the app's message and the user's", msgs)
	}
	app, user := msgs[0], msgs[1]
	for _, want := range []string{
		"created " + app.Name + "\n",
		"patched " + app.Name + " Hello, world! (edited)\n",
		"listed 1\n",
		"created-as-user " + user.Name + "\n",
		"searched 1 " + user.Name + "\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if app.Text != "Hello, world! (edited)" || app.Sender != "users/app" || user.Text != "Java report" || user.Sender != "users/alice@example.com" {
		t.Errorf("emulator holds %q by %s and %q by %s, want the app's edited post and alice's report", app.Text, app.Sender, user.Text, user.Sender)
	}

	// The upload arrived whole, in chunks, as a resumable session.
	ups := e.emu.Uploads()
	if len(ups) != 1 || ups[0].Protocol != "resumable" || ups[0].Chunks < 2 || ups[0].Size != int64(len(data)) || ups[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("uploads %+v, want one resumable upload of %d bytes in 2 or more chunks with the file's hash", ups, len(data))
	}

	// What Chat saw: each call as the Java client sent it, with the
	// broker's tokens only.
	type seen struct{ method, verb, encoding, subject string }
	var got []seen
	for _, r := range e.emu.Requests() {
		if !strings.HasPrefix(r.Authorization, "Bearer ya29.") || strings.Contains(r.Authorization, javaSecret) {
			t.Errorf("%s %s reached Chat with Authorization %q, want a broker token", r.Verb, r.Path, r.Authorization)
		}
		if r.Status/100 != 2 && r.Status != http.StatusPermanentRedirect {
			t.Errorf("%s %s: Chat answered %d", r.Verb, r.Path, r.Status)
		}
		got = append(got, seen{r.MethodID, r.Verb, r.ContentEncoding, r.Subject})
	}
	chunks := 0 // the last also finishes the upload
	if len(ups) == 1 {
		chunks = ups[0].Chunks
	}
	want := []seen{
		{"spaces.messages.create", "POST", "gzip", ""},
		{"spaces.messages.patch", "PATCH", "gzip", ""},
		{"spaces.messages.list", "GET", "", ""},
		{"media.upload", "POST", "gzip", "alice@example.com"}, // the session's start, with the metadata
	}
	for range chunks {
		want = append(want, seen{"media.upload", "PUT", "", "alice@example.com"})
	}
	want = append(want,
		seen{"spaces.messages.create", "POST", "gzip", "alice@example.com"},
		seen{"spaces.messages.search", "POST", "gzip", "alice@example.com"})
	if !slices.Equal(got, want) {
		t.Errorf("Chat saw\n%v\nwant\n%v", got, want)
	}
}
