package repocheck

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fakeRepo lays out a small tree in a temporary directory.
func fakeRepo(t *testing.T) repo {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"proxy/doc.go", "deploy/Dockerfile", "deploy/kubernetes/base/deployment.yaml", "docs/architecture.md", "README.md"} {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo{
		root:    root,
		topDirs: map[string]bool{"proxy": true, "deploy": true, "docs": true, "cmd": true},
		ignored: func(p string) bool { return strings.HasPrefix(p, "dist/") || strings.Contains(p, "node_modules/") },
		outside: loadOutside(t),
	}
}

// checkCase is one line of prose and the references the check must
// report on it, in order.
type checkCase struct {
	file, line string
	want       []string
}

// outsideCases reads testdata/outside-cases.txt: lines that name what
// lived beside the repository, kept out of Go files for the same reason
// as the names themselves.
func outsideCases(t *testing.T) []checkCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "outside-cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []checkCase
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("testdata/outside-cases.txt:%d: want file, line and references separated by tabs", i+1)
		}
		c := checkCase{file: f[0], line: f[1]}
		if f[2] != "-" {
			c.want = strings.Split(f[2], ",")
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatal("testdata/outside-cases.txt has no case")
	}
	return out
}

func TestCheckLine(t *testing.T) {
	r := fakeRepo(t)
	tests := append(outsideCases(t), []checkCase{
		// Repository paths that exist, from the root or the file's directory.
		{"README.md", "see proxy/doc.go, `deploy/Dockerfile` and [docs](docs/architecture.md#layout)", nil},
		{"deploy/README.md", "[base](kubernetes/base/deployment.yaml) and ./kubernetes/base", nil},
		{"x.go", "go test ./proxy/... and proxy/doc.go:12", nil},
		// Repository paths that do not.
		{"README.md", "the policy in deploy/policy.yaml, see `docs/x.md`.", []string{"deploy/policy.yaml", "docs/x.md"}},
		{"x.go", "cmd/chat-broker/secrets_test.go scans it", []string{"cmd/chat-broker/secrets_test.go"}},
		{"deploy/README.md", "as [`base/deployment.yaml`](kubernetes/base/deployment.yaml)", []string{"base/deployment.yaml"}},
		{"docs/a.md", "[up](../../README.md) [gone](./gone)", []string{"../../README.md", "./gone"}},
		{"x.go", "see other/file.json", []string{"other/file.json"}},
		// Not repository paths.
		{"x.go", "https://github.com/x/proxy/doc.go and <https://example.com/deploy/a.yaml>", nil},
		{"x.go", "github.com/chat-broker/chat-broker/proxy, golang.org/x/oauth2/jwt, k8s.io/api/core/v1", nil},
		{"x.go", "mounted at /var/run/secrets/kubernetes.io/serviceaccount/token; POST /v1/spaces/AAAA/messages", nil},
		{"x.go", "net/http, spaces/AAAA, namespace/name, HTTP/1.1, 60/m, application/json", nil},
		{"x.go", "the files proxy/*_test.go and deploy/{a,b}", nil},
		{"x.go", `sub-benchmarks "proxy/GET" and "proxy/POST"`, nil},
		{"deploy/README.md", "kubectl logs deploy/my-chat-app -c chat-broker", nil},
		{"deploy/README.md", "kubectl apply -k deploy/kubernetes/overlays/gone", []string{"deploy/kubernetes/overlays/gone"}},
		{"x.go", "examples/node/node_modules and dist/chat-broker are build outputs", nil},
		{"x.go", "cmd/chat-broker/", []string{"cmd/chat-broker/"}},
	}...)
	for _, tc := range tests {
		t.Run(tc.file+": "+tc.line, func(t *testing.T) {
			var got []string
			for _, f := range r.check(tc.file, textLine{1, tc.line}) {
				got = append(got, f.ref)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProseLines(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // "line: text"
	}{
		{"a.go", "package a\n\n// doc on 3\nvar s = \"// not a comment\" /* block\non 5 */\n", []string{"3: // doc on 3", "4: /* block", "5: on 5 */"}},
		{"a.yaml", "a: 1 # note\nb: \"#x\" \n# whole\ncolor: x#y\n", []string{"1: # note", "3: # whole"}},
		{"Dockerfile", "FROM x\n# built as deploy/Dockerfile\n", []string{"2: # built as deploy/Dockerfile"}},
		{"run", "#!/bin/sh\necho $# # count\n", []string{"1: #!/bin/sh", "2: # count"}},
		{"a.js", "const u = 'http://x'; // note\n/* one\ntwo */ code\n", []string{"1: // note", "2:  one", "3: two  "}},
		{"pom.xml", "<a><!-- c1 --></a>\n<!-- c2\nc3 -->\n", []string{"1:  c1  ", "2:  c2", "3: c3  "}},
		{"a.md", "# T\ntext\n", []string{"1: # T", "2: text"}},
		{"a.json", "{\"a\": \"docs/x\"}\n", nil},
	}
	for _, tc := range tests {
		var got []string
		for _, l := range proseLines(kindOf(tc.name, []byte(tc.src)), []byte(tc.src)) {
			got = append(got, strconv.Itoa(l.n)+": "+l.text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
