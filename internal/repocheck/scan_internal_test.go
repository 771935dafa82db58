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
	}
}

func TestCheckLine(t *testing.T) {
	r := fakeRepo(t)
	tests := []struct {
		file, line string
		want       []string // the references reported, in order
	}{
		// Files kept outside the repository.
		{"proxy/proxy.go", "Shape (DESIGN.md step 6): the caller's bucket", []string{"DESIGN.md"}},
		{"x.go", "see STYLE.md and chat-api.md §C.1", []string{"STYLE.md", "chat-api.md"}},
		{"x.go", "facts in shared/chat-api.md.", []string{"shared/chat-api.md"}},
		{"docs/a.md", "[notes](../shared/notes.md) and ../shared", []string{"../shared/notes.md", "../shared"}},
		{"x.go", "the key is shared/ with nobody", []string{"shared/"}},
		{"x.go", "a pre-shared key, shared by callers, not-DESIGN.md", nil},
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
	}
	for _, tc := range tests {
		var got []string
		for _, f := range r.check(tc.file, textLine{1, tc.line}) {
			got = append(got, f.ref)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q\n got %q\nwant %q", tc.file, tc.line, got, tc.want)
		}
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
		{"a.json", "{\"a\": \"shared/x\"}\n", nil},
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
