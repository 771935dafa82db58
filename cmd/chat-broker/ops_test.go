package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chat-broker/chat-broker/policy"
)

const opsSecret = "ops-secret-0123456789abcdefghijk"

func opsPolicy(spaces string) string {
	return secretPolicy("app", opsSecret, "spaces.messages.create", spaces, "chat.bot")
}

// secretPolicy is a policy of one caller, name, known by its secret and
// allowed methods in spaces with scopes (each the items of a YAML list).
func secretPolicy(name, secret, methods, spaces, scopes string) string {
	return `version: 1
callers:
  - name: ` + name + `
    identify: {secretSHA256: "` + policy.HashSecret(secret) + `"}
    allow:
      - methods: [` + methods + `]
        spaces: [` + spaces + `]
    scopes: [` + scopes + `]
`
}

// startServe runs the emulator command and serve with policyFile (which
// may be a symlink), returning the proxy and admin addresses and serve's
// log lines.
func startServe(t *testing.T, dir, policyFile string, extra ...string) (listen, admin string, logs *lines, stop func() error) {
	t.Helper()
	keyFile, emuURL := startEmulator(t, dir, "spaces/AAAA,spaces/BBBB")
	return startServeWith(t, keyFile, emuURL, policyFile, extra...)
}

// serveOneCaller runs the emulator command with spaces/AAAA and serve in
// front of it, with the policy of one caller (secretPolicy) allowed
// methods in spaces/AAAA; it returns serve's addresses and stop, and the
// emulator's URL.
func serveOneCaller(t *testing.T, name, secret, methods, scopes string) (listen, admin string, stop func() error, emuURL string) {
	t.Helper()
	dir := t.TempDir()
	keyFile, emuURL := startEmulator(t, dir, "spaces/AAAA")
	policyFile := writePolicy(t, dir, secretPolicy(name, secret, methods, "spaces/AAAA", scopes))
	listen, admin, _, stop = startServeWith(t, keyFile, emuURL, policyFile)
	return listen, admin, stop, emuURL
}

// startServeWith runs serve with keyFile and policyFile in front of the
// upstream at upstreamURL, on loopback ports, with extra flags, and
// returns the proxy and admin addresses and serve's log lines once it
// serves.
func startServeWith(t *testing.T, keyFile, upstreamURL, policyFile string, extra ...string) (listen, admin string, logs *lines, stop func() error) {
	t.Helper()
	args := append([]string{"serve", "--key", keyFile, "--policy", policyFile, "--upstream", upstreamURL, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extra...)
	_, logs, stop = start(t, args...)
	m := logs.waitFor(t, regexp.MustCompile(`"msg":"serving","listen":"([^"]+)","admin":"([^"]+)"`))
	return m[1], m[2], logs, stop
}

// create posts a message to space through the broker at listen as the
// caller of opsPolicy.
func create(listen, space string) (int, error) {
	return postMessage(listen, space, "Bearer "+opsSecret)
}

// postMessage posts a message to space through the broker at listen,
// with auth as the Authorization header ("" for none), and returns the
// status.
func postMessage(listen, space, auth string) (int, error) {
	req, _ := http.NewRequest("POST", "http://"+listen+"/v1/"+space+"/messages", strings.NewReader(`{"text":"hi"}`))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A good policy takes effect and a broken one is rejected, while 16
// goroutines call the broker: no call fails. The policy is mounted the
// way Kubernetes mounts a ConfigMap, through a ..data symlink that is
// swapped, so only a watch on the folder sees the change.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	cm := filepath.Join(dir, "config")
	os.MkdirAll(filepath.Join(cm, "..v1"), 0o755)
	writeFile(t, filepath.Join(cm, "..v1", "policy.yaml"), opsPolicy("spaces/AAAA"))
	os.Symlink("..v1", filepath.Join(cm, "..data"))
	os.Symlink(filepath.Join("..data", "policy.yaml"), filepath.Join(cm, "policy.yaml"))
	swap := func(version, content string) {
		t.Helper()
		os.MkdirAll(filepath.Join(cm, version), 0o755)
		writeFile(t, filepath.Join(cm, version, "policy.yaml"), content)
		tmp := filepath.Join(cm, "..data_tmp")
		os.Symlink(version, tmp)
		if err := os.Rename(tmp, filepath.Join(cm, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	listen, _, logs, _ := startServe(t, dir, filepath.Join(cm, "policy.yaml"))

	var calls, failures atomic.Int64
	stopLoad := make(chan struct{})
	var wg, started sync.WaitGroup
	for range 16 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ { // bounded, whatever happens
				if i == 1 {
					started.Done() // every goroutine is calling before the first swap
				}
				select {
				case <-stopLoad:
					return
				default:
				}
				code, err := create(listen, "spaces/AAAA")
				calls.Add(1)
				if err != nil || code != 200 {
					failures.Add(1)
				}
			}
		}()
	}

	started.Wait()
	if code, _ := create(listen, "spaces/BBBB"); code != 403 {
		t.Fatalf("spaces/BBBB before reload: %d, want 403", code)
	}
	swap("..v2", opsPolicy("spaces/AAAA, spaces/BBBB"))
	logs.waitFor(t, regexp.MustCompile(`"msg":"policy reloaded"`))
	if code, _ := create(listen, "spaces/BBBB"); code != 200 {
		t.Errorf("spaces/BBBB after the good reload: %d, want 200", code)
	}

	swap("..v3", "version: 1\ncallers: [{name: app, scopes: [chat.bott]}]\n")
	logs.waitFor(t, regexp.MustCompile(`"msg":"policy: reload rejected, keeping the previous one"`))
	if code, _ := create(listen, "spaces/BBBB"); code != 200 {
		t.Errorf("spaces/BBBB after the broken reload: %d, want 200 (the previous policy stays)", code)
	}
	close(stopLoad)
	wg.Wait()
	if calls.Load() == 0 || failures.Load() != 0 {
		t.Errorf("%d of %d calls failed during reloads, want 0 of >0", failures.Load(), calls.Load())
	}
	t.Logf("%d calls during the reloads, %d failed", calls.Load(), failures.Load())
}

// A rewritten key file is reloaded; a broken one is rejected and the old
// key keeps minting.
func TestKeyReload(t *testing.T) {
	dir := t.TempDir()
	policyFile := writePolicy(t, dir, opsPolicy("spaces/AAAA"))
	listen, _, logs, _ := startServe(t, dir, policyFile)
	keyFile := filepath.Join(dir, "sa.json")
	good, _ := os.ReadFile(keyFile)

	writeFile(t, keyFile, string(good)+"\n")
	logs.waitFor(t, regexp.MustCompile(`"msg":"key reloaded"`))
	writeFile(t, keyFile, `{"type":"service_account","client_email":"x@y"}`)
	logs.waitFor(t, regexp.MustCompile(`"msg":"key: reload rejected, keeping the previous one"`))
	if code, err := create(listen, "spaces/AAAA"); err != nil || code != 200 {
		t.Errorf("create after a broken key: %d %v, want 200", code, err)
	}
}

// /startupz and /readyz say ready once a token is minted; POST
// /quitquitquit shuts the broker down cleanly (exit 0).
func TestProbesAndQuit(t *testing.T) {
	dir := t.TempDir()
	policyFile := writePolicy(t, dir, opsPolicy("spaces/AAAA"))
	listen, admin, _, stop := startServe(t, dir, policyFile)
	if code, _ := create(listen, "spaces/AAAA"); code != 200 {
		t.Fatalf("create: %d", code)
	}
	for _, p := range []string{"/healthz", "/readyz", "/startupz"} {
		t.Run(strings.TrimPrefix(p, "/"), func(t *testing.T) {
			if code, _ := fetch(t, "http://"+admin+p); code != 200 {
				t.Errorf("%s = %d after a mint, want 200", p, code)
			}
		})
	}
	if resp, err := http.Get("http://" + admin + "/quitquitquit"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /quitquitquit = %d, want 405 (POST only)", resp.StatusCode)
		}
	}
	resp, err := http.Post("http://"+admin+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Errorf("after /quitquitquit serve returned %v, want nil", err)
	}
}

func TestWait(t *testing.T) {
	// Nothing listens: wait gives up with the reason.
	err := run(context.Background(), []string{"wait", "--admin", "127.0.0.1:1", "--timeout", "300ms", "--interval", "50ms"}, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not ready after 300ms") {
		t.Errorf("wait on nothing: %v", err)
	}
	dir := t.TempDir()
	policyFile := writePolicy(t, dir, opsPolicy("spaces/AAAA"))
	_, admin, _, _ := startServe(t, dir, policyFile)
	var out strings.Builder
	if err := run(context.Background(), []string{"wait", "--admin", admin, "--timeout", "30s", "--interval", "20ms"}, nil, &out, io.Discard); err != nil {
		t.Fatalf("wait on a running broker: %v", err)
	}
	if !strings.Contains(out.String(), "ready") {
		t.Errorf("wait printed %q", out.String())
	}
}

// Flags come from CHAT_BROKER_* variables; the command line wins.
func TestEnvFlags(t *testing.T) {
	t.Setenv("CHAT_BROKER_LISTEN", "0.0.0.0:8080")
	err := run(context.Background(), []string{"serve", "--key", "k", "--policy", "p"}, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `--listen "0.0.0.0:8080": non-loopback`) {
		t.Errorf("CHAT_BROKER_LISTEN was not applied: %v", err)
	}
	t.Setenv("CHAT_BROKER_DRAIN", "soon")
	err = run(context.Background(), []string{"serve", "--key", "k", "--policy", "p", "--listen", "127.0.0.1:0"}, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `CHAT_BROKER_DRAIN="soon" (for --drain)`) {
		t.Errorf("a bad variable: %v", err)
	}
	var help strings.Builder
	run(context.Background(), []string{"serve", "-h"}, nil, &help, io.Discard)
	if !strings.Contains(help.String(), "[CHAT_BROKER_SOCKET_MODE]") {
		t.Errorf("--help does not name the variables:\n%s", help.String())
	}
}

// /metrics parses with Prometheus' own parser and has the series an
// operator needs, with bounded labels.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	policyFile := writePolicy(t, dir, opsPolicy("spaces/AAAA"))
	listen, admin, _, _ := startServe(t, dir, policyFile)
	for range 2 { // the second is a token cache hit
		if code, _ := create(listen, "spaces/AAAA"); code != 200 {
			t.Fatalf("create: %d", code)
		}
	}
	if code, _ := create(listen, "spaces/BBBB"); code != 403 {
		t.Fatalf("create in spaces/BBBB: %d", code)
	}
	_, body := fetch(t, "http://"+admin+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		fam, ok := families[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range fam.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
		return 0, false
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"chat_broker_requests_total", map[string]string{"caller": "app", "method": "spaces.messages.create", "code": "2xx"}, 2},
		{"chat_broker_requests_total", map[string]string{"caller": "app", "method": "spaces.messages.create", "code": "4xx"}, 1},
		{"chat_broker_refusals_total", map[string]string{"reason": "SPACE_NOT_ALLOWED"}, 1},
		{"chat_broker_upstream_latency_seconds", map[string]string{"method": "spaces.messages.create"}, 1},
		{"chat_broker_request_duration_seconds", map[string]string{"method": "spaces.messages.create"}, 3},
		{"chat_broker_token_mints_total", map[string]string{"outcome": "ok"}, 1},
		{"chat_broker_token_cache_total", map[string]string{"result": "hit"}, 1},
		{"chat_broker_token_expiry_seconds", nil, 60},
		{"chat_broker_reloads_total", map[string]string{"result": "rejected"}, 0},
		{"chat_broker_key_info", nil, 1},
	} {
		t.Run(fmt.Sprintf("%s%v", tc.name, tc.labels), func(t *testing.T) {
			v, ok := value(tc.name, tc.labels)
			if !ok || v < tc.min {
				t.Errorf("%s%v = %v (present %v), want >= %v", tc.name, tc.labels, v, ok, tc.min)
			}
		})
	}
}

// Not ready until a token is minted: with the token endpoint down at
// start, /readyz and /startupz say why; once it is back, the self-test
// mint succeeds and both turn ready.
func TestNotReadyBeforeFirstMint(t *testing.T) {
	dir := t.TempDir()
	keyFile, emuURL := startEmulator(t, dir, "spaces/AAAA")
	control := func(body string) {
		resp, err := http.Post(emuURL+"/emulator/token-endpoint", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	control(`{"down":true}`)
	_, admin, logs, _ := startServeWith(t, keyFile, emuURL, writePolicy(t, dir, opsPolicy("spaces/AAAA")))
	logs.waitFor(t, regexp.MustCompile(`"msg":"startup token mint failed; retrying"`))
	for _, p := range []string{"/readyz", "/startupz"} {
		t.Run(strings.TrimPrefix(p, "/"), func(t *testing.T) {
			if code, body := fetch(t, "http://"+admin+p); code != 503 || !strings.Contains(body, "no") {
				t.Errorf("%s with the token endpoint down: %d %q, want 503 with the reason", p, code, body)
			}
		})
	}
	control(`{"down":false}`)
	if err := run(context.Background(), []string{"wait", "--admin", admin, "--timeout", "30s", "--interval", "50ms"}, nil, io.Discard, io.Discard); err != nil {
		t.Fatalf("never ready after the token endpoint came back: %v", err)
	}
}
