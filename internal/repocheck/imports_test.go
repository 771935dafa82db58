package repocheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/chat-broker/chat-broker/"

// testSupport starts an emulator and a broker for tests; testLog is a
// log sink for tests. Only tests import them.
const (
	testSupport = "internal/testenv"
	testLog     = "internal/testlog"
)

// importRules say, for the production (non-test) code of a directory,
// which of the module's packages it must not import. The package layout
// in docs/architecture.md explains them: imports flow one way, from
// cmd through proxy to its parts and to policy and broker, and down to
// chatapi; the emulator is a fake of Google that only cmd's demo, its
// emulator and chaos subcommands, tests and the benchmark may run.
// internal/testenv, which starts an emulator and a broker for tests, is
// the one internal package that may import them, and only tests and the
// examples' brokertest import it.
var importRules = []struct {
	dir     string // a directory, or a prefix ending in "/"
	allowed func(imp string) bool
	why     string
}{
	{"chatapi", func(imp string) bool { return imp == "chatapi/discovery" }, "chatapi is facts about Chat and imports no package of the module but its discovery document"},
	{"chatapi/discovery", func(string) bool { return false }, "the discovery document is Google's word alone and imports no package of the module"},
	{"chatapi/discovery/gen", func(string) bool { return false }, "the generator reads Google's document, nothing of the module"},
	{"emulator", func(imp string) bool { return imp == "chatapi" || imp == "chatapi/discovery" }, "the emulator checks the broker with its own code: it imports only chatapi and Google's discovery document"},
	{"policy", notAny("broker", "proxy", "cmd/", "emulator", "bench"), "policy knows nothing of tokens, the request path or the emulator"},
	{"broker", notAny("policy", "proxy", "cmd/", "emulator", "bench"), "broker knows nothing of the policy, the request path or the emulator"},
	{"internal/", notAny("proxy", "policy", "broker", "cmd/", "emulator", "bench"), "the proxy's parts know nothing of the pipeline that calls them"},
	{"internal/testenv", notAny("proxy", "policy", "cmd/", "bench"), "testenv starts an emulator and a broker, nothing of the request path"},
	{"proxy", notAny("cmd/", "emulator", "bench"), "the request path never runs the emulator"},
}

// notAny allows every import but those named (a name ending in "/" is a
// prefix).
func notAny(names ...string) func(string) bool {
	return func(imp string) bool {
		return !slices.ContainsFunc(names, func(n string) bool {
			return imp == n || strings.HasSuffix(n, "/") && strings.HasPrefix(imp, n)
		})
	}
}

// The module's packages import one another only as the layout allows,
// and nothing imports cmd.
func TestImportRules(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, spec := range f.Imports {
			imp := strings.Trim(spec.Path.Value, `"`)
			if !strings.HasPrefix(imp, modulePath) {
				continue
			}
			imp = strings.TrimPrefix(imp, modulePath)
			file, _ := filepath.Rel(root, path)
			if strings.HasPrefix(imp, "cmd/") {
				t.Errorf("%s imports %s: nothing imports a command", file, imp)
			}
			if (imp == testSupport || imp == testLog) && rel != "examples/internal/brokertest" {
				t.Errorf("%s imports %s: only tests may", file, imp)
			}
			for _, r := range importRules {
				if rel == testSupport && r.dir == "internal/" {
					continue // the exception above
				}
				if (rel == r.dir || strings.HasSuffix(r.dir, "/") && strings.HasPrefix(rel+"/", r.dir)) && !r.allowed(imp) {
					t.Errorf("%s imports %s: %s", file, imp, r.why)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d Go files; the walk missed the module", checked)
	}
}
