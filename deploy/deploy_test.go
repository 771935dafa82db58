// Package deploy_test checks the deployment artifacts in this folder: the
// Dockerfile's build, the Kubernetes manifests (raw, rendered by kustomize
// and by kubectl), the Helm chart, and the Job's script against a real
// broker. Every manifest is decoded strictly into the Kubernetes API's Go
// types, so a misspelt or misplaced field fails here, not in a cluster.
package deploy_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// brokerBin is the chat-broker binary, built by TestMain with the
// Dockerfile's own `go build` line; buildErr says why there is none.
var (
	brokerBin string
	buildErr  error
)

// testVersion is the VERSION build argument given to the Dockerfile's
// build line.
const testVersion = "v0.0.0-deploy-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chat-broker-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	brokerBin, buildErr = buildFromDockerfile(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// broker returns the binary built from the Dockerfile's build line.
func broker(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building chat-broker with the Dockerfile's go build line: %v", buildErr)
	}
	return brokerBin
}

// dockerBuildLine finds the Dockerfile's `RUN ... go build ...` line.
var dockerBuildLine = regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*)$`)

// buildFromDockerfile runs the Dockerfile's go build command, as the
// builder stage would, from the repository root, writing the binary into
// dir instead of /out. Docker itself cannot run here; this checks that the
// command the image relies on builds a working binary.
func buildFromDockerfile(dir string) (string, error) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		return "", err
	}
	m := dockerBuildLine.FindSubmatch(df)
	if m == nil {
		return "", fmt.Errorf("Dockerfile: no line `RUN CGO_ENABLED=0 go build ...`")
	}
	bin := filepath.Join(dir, "chat-broker")
	line := strings.Replace(string(m[1]), "/out/chat-broker", bin, 1)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION="+testVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", line, err, out)
	}
	return bin, nil
}

// The Dockerfile builds a static binary on golang:1.26, copies it alone
// onto distroless nonroot, runs it as uid 65532, and starts `serve`.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	var user, entrypoint, cmd string
	sc := bufio.NewScanner(bytes.NewReader(df))
	for sc.Scan() {
		instr, rest, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch instr {
		case "FROM":
			from = append(from, rest)
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entrypoint = rest
		case "CMD":
			cmd = rest
		}
	}
	for _, c := range []struct{ desc, got, want string }{
		{"builder", strings.Join(from, " | "), "golang:1.26 AS build | gcr.io/distroless/static-debian12:nonroot"},
		{"USER", user, "65532:65532"},
		{"ENTRYPOINT", entrypoint, `["/chat-broker"]`},
		{"CMD", cmd, `["serve"]`},
	} {
		t.Run("Dockerfile "+c.desc, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
	line := string(dockerBuildLine.Find(df))
	for _, want := range []string{"-trimpath", "-X main.version=${VERSION}", "./cmd/chat-broker"} {
		if !strings.Contains(line, want) {
			t.Errorf("Dockerfile build line %q lacks %q", line, want)
		}
	}

	bin := broker(t)
	// Static: no dynamic loader and no shared libraries, so it runs on
	// distroless/static, which has no libc.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v segment: not static (CGO_ENABLED=0?)", p.Type)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "chat-broker "+testVersion {
		t.Errorf("chat-broker version: %q, %v; want %q (the VERSION build argument)", out, err, "chat-broker "+testVersion)
	}
}
