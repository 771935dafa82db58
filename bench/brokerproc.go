package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// buildBroker builds ./cmd/chat-broker of the module in moduleDir into
// dir, as deploy/Dockerfile builds the image's binary (static, trimmed,
// no symbol table), and returns the binary's path: the bench measures
// what ships.
func buildBroker(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "chat-broker")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/chat-broker")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = moduleDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: go build ./cmd/chat-broker: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleDir returns the root of the Go module the current directory is
// in, from go env GOMOD.
func moduleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("bench: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("bench: not inside the chat-broker module: run from its checkout, or pass --broker-bin")
	}
	return filepath.Dir(mod), nil
}

// brokerProc is a running "chat-broker serve".
type brokerProc struct {
	*child
	proxy, admin string        // host:port
	startup      time.Duration // from exec to its "serving" log line
}

// startBroker runs bin serve with the key and policy files, in front of
// upstream (http://host:port), listening on loopback ports it picks.
// Audit lines (stdout) are discarded, as a log pipe nobody reads quickly
// would not be: they still cost the broker their encoding and write.
func startBroker(bin, keyFile, policyFile, upstream string, extraEnv []string) (*brokerProc, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close() // the child has its own copy once started
	args := []string{"serve",
		"--key", keyFile, "--policy", policyFile, "--upstream", upstream,
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain", "2s"}
	isServing := func(line string) bool { return strings.Contains(line, `"msg":"serving"`) }
	c, err := startChild("chat-broker", bin, args, append(cleanEnv(), extraEnv...), devnull, isServing)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(30 * time.Second); err != nil {
		c.stop()
		return nil, err
	}
	var line struct{ Listen, Admin string }
	if err := json.Unmarshal([]byte(c.readyLine), &line); err != nil || line.Listen == "" || line.Admin == "" {
		c.stop()
		return nil, fmt.Errorf("bench: chat-broker's serving line has no listen and admin addresses: %s", c.readyLine)
	}
	return &brokerProc{child: c, proxy: line.Listen, admin: line.Admin, startup: c.readyAt.Sub(c.startedAt)}, nil
}

// waitReadyz polls the admin /readyz until it answers 200 (the startup
// token is minted), and returns how long after exec that was.
func (b *brokerProc) waitReadyz(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + b.admin + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(b.startedAt), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: chat-broker not ready after %v (%v): %s", timeout, err, b.lastLines())
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// goMemstats reads go_memstats_mallocs_total and
// go_memstats_alloc_bytes_total from the broker's /metrics: the whole
// process's heap allocations so far. ok is false when the series are not
// exported.
func (b *brokerProc) goMemstats() (mallocs, bytes float64, ok bool) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + b.admin + "/metrics")
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0, false
	}
	var haveM, haveB bool
	for _, line := range strings.Split(string(body), "\n") {
		name, val, found := strings.Cut(line, " ")
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_memstats_mallocs_total":
			mallocs, haveM = v, true
		case "go_memstats_alloc_bytes_total":
			bytes, haveB = v, true
		}
	}
	return mallocs, bytes, haveM && haveB
}
