package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/testenv"
)

// The Job's main container script, run with sh and curl against the real
// binary in front of the emulator: it posts the message, and its
// POST /quitquitquit makes the broker exit 0, so the pod (and the Job)
// would complete. When the script fails, the broker stops all the same.
func TestJobScript(t *testing.T) {
	for _, tool := range []string{"sh", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: skipping the Job script test", tool)
		}
	}
	objs := kustomizeBuild(t, "kubernetes/job")
	s := index(objs)
	var job *batchv1.Job
	for _, o := range objs {
		if j, ok := o.(*batchv1.Job); ok {
			job = j
		}
	}
	if job == nil {
		t.Fatal("no Job in kubernetes/job")
	}
	spec := &job.Spec.Template.Spec
	b, _ := findContainer(spec.Containers, brokerName)
	hello, _ := findContainer(spec.Containers, "hello")
	if b == nil || hello == nil {
		t.Fatalf("want containers %s and hello", brokerName)
	}
	flags := serveArgs(t, b.Args)
	pvol, _ := volumeFor(t, spec, b, flags["policy"], "--policy")
	// The policy as the broker reads it in the pod: its secretFile is
	// the Job's caller Secret, mounted into the broker.
	policyText := inBrokerFiles(t, s, spec, b, s.configMaps[pvol.ConfigMap.Name].Data[filepath.Base(flags["policy"])])
	ref := envOf(hello, "CHAT_BROKER_TOKEN").ValueFrom.SecretKeyRef
	secret := string(secretData(s.secrets[ref.Name])[ref.Key])
	if policyText == "" || secret == "" {
		t.Fatal("the Job's policy or caller secret is empty")
	}

	for _, tc := range []struct {
		desc     string
		token    string
		wantExit bool // the script succeeds
		wantMsgs int
	}{
		{"the work succeeds", secret, true, 1},
		{"the work fails", "not-the-secret-0123456789abcdef", false, 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			emu, emuURL := testenv.Emulator(t, emulator.Config{Spaces: []string{"spaces/AAAA"}})
			dir := t.TempDir()
			keyFile, policyFile := testenv.KeyFile(t, emu, emuURL, dir), filepath.Join(dir, "policy.yaml")
			os.WriteFile(policyFile, []byte(policyText), 0o600)

			// The Job's broker, on free ports instead of 8080 and 9090.
			listen, admin, exited := startBroker(t, "serve", "--key", keyFile, "--policy", policyFile,
				"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--upstream", emuURL)
			script := strings.ReplaceAll(hello.Args[0], adminAddr(flags), admin)
			sh := exec.Command(hello.Command[0], append(hello.Command[1:], script)...)
			sh.Env = append(os.Environ(),
				"CHAT_BROKER_URL="+strings.Replace(envOf(hello, "CHAT_BROKER_URL").Value, flags["listen"], listen, 1),
				"CHAT_BROKER_TOKEN="+tc.token,
				"CHAT_SPACE="+envOf(hello, "CHAT_SPACE").Value)
			out, err := sh.CombinedOutput()
			if (err == nil) != tc.wantExit {
				t.Errorf("the Job's script: %v, want success %v\n%s", err, tc.wantExit, out)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("the broker exited with %v after /quitquitquit, want 0", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the broker still runs 30s after the script ended: the Job would never complete\n%s", out)
			}
			msgs := emu.Messages("spaces/AAAA")
			if len(msgs) != tc.wantMsgs || (tc.wantMsgs > 0 && msgs[0].Text != "Hello, world!") {
				t.Errorf("emulator holds %+v, want %d \"Hello, world!\"", msgs, tc.wantMsgs)
			}
		})
	}
}

// startBroker runs the binary built from the Dockerfile and returns the
// addresses it serves on, from its "serving" log line, and a channel that
// delivers its exit. It is killed at the end of the test if still running.
func startBroker(t *testing.T, args ...string) (listen, admin string, exited <-chan error) {
	t.Helper()
	cmd := exec.Command(broker(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	serving := make(chan [2]string, 1)
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Listen, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				serving <- [2]string{line.Listen, line.Admin}
			}
			select {
			case logs <- sc.Text():
			default:
			}
		}
		close(logs)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for l := range logs { // closed once the killed broker's stderr ends
			if t.Failed() {
				t.Log("broker: " + l)
			}
		}
	})
	select {
	case a := <-serving:
		return a[0], a[1], done
	case err := <-done:
		t.Fatalf("chat-broker %s exited: %v", strings.Join(args, " "), err)
	case <-time.After(30 * time.Second):
		t.Fatalf("chat-broker %s: no serving line in 30s", strings.Join(args, " "))
	}
	return "", "", nil
}
