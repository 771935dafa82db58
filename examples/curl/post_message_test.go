package curl_test

import (
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/chat-broker/chat-broker/examples/internal/brokertest"
)

// post_message.sh, run with bash and curl against a real broker in front
// of the emulator: over TCP with the caller secret, and over the Unix
// socket with no secret at all, where the broker knows the caller by the
// uid the kernel reports.
func TestPostMessage(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: skipping the curl example test", tool)
		}
	}
	for _, tc := range []struct {
		desc   string
		socket bool
	}{
		{"tcp with the caller secret", false},
		{"unix socket, identified by uid", true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			env := brokertest.Start(t, tc.socket)
			cmd := exec.Command("bash", "post_message.sh")
			cmd.Env = append(os.Environ(), "CHAT_SPACE="+brokertest.Space)
			if tc.socket {
				cmd.Env = append(cmd.Env, "CHAT_BROKER_SOCKET="+env.Socket, "CHAT_BROKER_URL=", "CHAT_BROKER_TOKEN=")
			} else {
				cmd.Env = append(cmd.Env, "CHAT_BROKER_URL="+env.URL, "CHAT_BROKER_TOKEN="+brokertest.Secret)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("post_message.sh: %v\n%s", err, out)
			}
			if !regexp.MustCompile(`^created spaces/DEMO/messages/\S+\nlisted 1\n$`).Match(out) {
				t.Errorf("output %q, want a created message and a list of one", out)
			}
			env.CheckPosted(t)
		})
	}
}

// A refusal shows the broker's error and fails the script.
func TestPostMessageRefused(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: skipping the curl example test", tool)
		}
	}
	env := brokertest.Start(t, false)
	cmd := exec.Command("bash", "post_message.sh")
	cmd.Env = append(os.Environ(), "CHAT_BROKER_URL="+env.URL, "CHAT_BROKER_TOKEN=not-the-secret-0123456789abcdef", "CHAT_SPACE="+brokertest.Space)
	out, err := cmd.CombinedOutput()
	if err == nil || !regexp.MustCompile(`CALLER_UNKNOWN`).Match(out) {
		t.Errorf("post_message.sh with a wrong secret: %v\n%s\nwant a failure showing CALLER_UNKNOWN", err, out)
	}
	if reqs := env.Emu.Requests(); len(reqs) != 0 {
		t.Errorf("emulator saw %+v, want nothing", reqs)
	}
}
