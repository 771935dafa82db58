package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/testenv"
)

// The real binary, SIGTERM while 100 slow calls are in flight: it turns
// not-ready, every call completes, and it exits 0.
func TestSIGTERMDrainsInFlightCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chat-broker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// Tokens from the emulator; Chat calls to an upstream that holds every
	// call until released.
	emu, emuURL := testenv.Emulator(t, emulator.Config{})
	const inFlight = 100
	var arrived atomic.Int64
	allArrived := make(chan struct{})
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == inFlight {
			close(allArrived)
		}
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"spaces/AAAA/messages/M1"}`)
	}))
	defer slow.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	keyFile := testenv.KeyFile(t, emu, emuURL, dir)
	policyFile := writePolicy(t, dir, opsPolicy("spaces/AAAA"))
	cmd := exec.Command(bin, "serve", "--key", keyFile, "--policy", policyFile, "--upstream", slow.URL,
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain", "60s")
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := bufio.NewScanner(stderr)
	serving := regexp.MustCompile(`"msg":"serving","listen":"([^"]+)","admin":"([^"]+)"`)
	var listen, admin string
	for logs.Scan() {
		if m := serving.FindStringSubmatch(logs.Text()); m != nil {
			listen, admin = m[1], m[2]
			break
		}
	}
	if listen == "" {
		t.Fatal("the broker never said it was serving")
	}
	go io.Copy(io.Discard, stderr)

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: inFlight}}
	var wg sync.WaitGroup
	codes := make(chan string, inFlight)
	for range inFlight {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+listen+"/v1/spaces/AAAA/messages", strings.NewReader(`{"text":"hi"}`))
			req.Header.Set("Authorization", "Bearer "+opsSecret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				codes <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- fmt.Sprint(resp.StatusCode)
		})
	}
	select {
	case <-allArrived:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d of %d calls reached the upstream", arrived.Load(), inFlight)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Not ready while draining (the admin listener answers until the end).
	notReady := false
	for i := 0; i < 200 && !notReady; i++ {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			break
		}
		resp.Body.Close()
		notReady = resp.StatusCode == http.StatusServiceUnavailable
	}
	if !notReady {
		t.Error("/readyz never turned 503 after SIGTERM")
	}
	close(release)
	wg.Wait()
	close(codes)
	bad := 0
	for c := range codes {
		if c != "200" {
			bad++
			t.Logf("in-flight call ended with %s", c)
		}
	}
	if bad != 0 {
		t.Errorf("%d of %d in-flight calls failed during the drain", bad, inFlight)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want 0", err)
	}
}
