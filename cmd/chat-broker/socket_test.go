package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/chat-broker/chat-broker/policy"
)

// unixClient speaks HTTP over the Unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// mePolicy is a policy whose first caller, me, is known by this
// process's uid and may create messages in spaces/AAAA; others holds the
// YAML of the callers that follow.
func mePolicy(others string) string {
	return `version: 1
callers:
  - name: me
    identify: {unixUID: ` + strconv.Itoa(os.Getuid()) + `}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/AAAA]}]
    scopes: [chat.bot]
` + others
}

// On the Unix socket the kernel's peer credentials identify the caller:
// no secret needed, and none can be forged. Another uid is another
// caller (tested where the test runs as root and can become it).
func TestUnixSocketIdentity(t *testing.T) {
	dir := t.TempDir()
	// Let another uid reach the socket: t.TempDir and its parent are 0700.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	keyFile, emuURL := startEmulator(t, dir, "spaces/AAAA")

	const otherUID = 4242
	policyFile := writePolicy(t, dir, mePolicy(`  - name: other
    identify: {unixUID: `+strconv.Itoa(otherUID)+`}
    allow: [{methods: [spaces.messages.get], spaces: [spaces/AAAA]}]
    scopes: [chat.bot]
  - name: by-secret
    identify: {secretSHA256: "`+policy.HashSecret("by-secret-0123456789abcdef")+`"}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/AAAA]}]
    scopes: [chat.bot]
`))
	sock := filepath.Join(dir, "broker.sock")
	_, _, _, stop := startServeWith(t, keyFile, emuURL, policyFile, "--socket", sock, "--socket-mode", "0666")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket file: %v %v, want mode 0666", fi, err)
	}

	post := func(auth string) int {
		req, _ := http.NewRequest("POST", "http://localhost/v1/spaces/AAAA/messages", strings.NewReader(`{"text":"hi"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := unixClient(sock).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != 200 {
		t.Errorf("create over the socket as uid %d, no secret: %d, want 200", os.Getuid(), got)
	}
	if got := post("Bearer not-a-caller-0123456789"); got != 200 {
		t.Errorf("a bearer that names no caller is ignored beside the peer identity: got %d, want 200", got)
	}
	if got := post("Bearer by-secret-0123456789abcdef"); got != 401 {
		t.Errorf("a secret of another caller on an identified connection: %d, want 401 CALLER_AMBIGUOUS", got)
	}

	// Another uid is another caller, whatever it claims.
	if os.Getuid() != 0 {
		t.Log("not root: skipping the other-uid half of the test")
	} else if curl, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not installed: skipping the other-uid half of the test")
	} else {
		cmd := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", sock,
			"-H", "Content-Type: application/json", "-d", `{"text":"hi"}`, "http://localhost/v1/spaces/AAAA/messages")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl as uid %d: %v %s", otherUID, err, out)
		}
		if string(out) != "403" {
			t.Errorf("uid %d (caller other, which may only get) creating: %s, want 403", otherUID, out)
		}
	}

	// The socket file is removed on shutdown.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

// Over TCP the same uid identifies nobody: peer credentials exist only
// on the socket.
func TestTCPHasNoPeerIdentity(t *testing.T) {
	dir := t.TempDir()
	keyFile, emuURL := startEmulator(t, dir, "")
	listen, _, _, _ := startServeWith(t, keyFile, emuURL, writePolicy(t, dir, mePolicy("")))
	code, err := postMessage(listen, "spaces/AAAA", "")
	if err != nil {
		t.Fatal(err)
	}
	if code != 401 {
		t.Errorf("TCP call without a credential: %d, want 401", code)
	}

	// The Host header must name the broker itself.
	req, _ := http.NewRequest("GET", "http://"+listen+"/v1/spaces/AAAA/messages", nil)
	req.Host = "attacker.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("foreign Host: %d, want 400 HOST_NOT_ALLOWED", resp.StatusCode)
	}
}
