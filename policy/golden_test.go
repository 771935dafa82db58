package policy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// update makes TestParseGolden rewrite the expected errors instead of
// comparing them:
//
//	go test ./policy -run Golden -update
//
// It replaces the "error" file of every archive in testdata/invalid with
// what Parse returns now; review the diff before keeping it.
var update = flag.Bool("update", false, "rewrite the expected errors in testdata/invalid/*.txtar")

// TestParseGolden feeds Parse the policy files in testdata/invalid, one
// txtar archive per case, and compares the exact error text. In an
// archive:
//
//   - the comment says what the case is about;
//   - the one file whose name ends in ".yaml" is the policy, parsed under
//     that name (so the name is the file in every error line);
//   - "error" is the exact text Parse must return, one problem a line;
//   - "not-in-error", if present, lists strings, one a line, that the
//     error must never contain (secrets);
//   - any other file, such as a secretFile, is written to a temporary
//     folder that is the working directory while the case runs.
func TestParseGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no cases in testdata/invalid")
	}
	for _, path := range paths {
		path, _ = filepath.Abs(path) // cases change the working directory
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			runGolden(t, path)
		})
	}
}

func runGolden(t *testing.T, path string) {
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var data, want []byte
	var hasWant bool
	var hidden []string
	dir := t.TempDir()
	for _, f := range ar.Files {
		switch {
		case f.Name == "error":
			want, hasWant = f.Data, true
		case f.Name == "not-in-error":
			hidden = strings.Fields(string(f.Data))
		case strings.HasSuffix(f.Name, ".yaml"):
			if name != "" {
				t.Fatalf("two policy files, %s and %s", name, f.Name)
			}
			name, data = f.Name, f.Data
		default:
			p := filepath.Join(dir, filepath.FromSlash(f.Name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if name == "" {
		t.Fatal("no policy file (a name ending in .yaml)")
	}
	t.Chdir(dir)

	p, err := Parse(name, data)
	if err == nil {
		t.Fatalf("got a policy with %d callers, want an error", len(p.Callers()))
	}
	got := err.Error()
	var pe *Error
	if !errors.As(err, &pe) || pe.File != name || len(pe.Problems) != strings.Count(got, "\n")+1 {
		t.Errorf("got %#v, want an *Error for %s with one problem a line", err, name)
	}
	for _, s := range hidden {
		if strings.Contains(got, s) {
			t.Errorf("the error echoes %q", s)
		}
	}

	if *update {
		if t.Failed() {
			return // never record an error that breaks the checks above
		}
		setFile(ar, "error", []byte(got+"\n"))
		if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !hasWant {
		t.Fatalf("no error file; run go test ./policy -run Golden -update to write it")
	}
	if w := strings.TrimSuffix(string(want), "\n"); got != w {
		t.Errorf("got error\n%s\nwant\n%s", got, w)
	}
}

// setFile replaces the data of the named file in ar, or adds the file.
func setFile(ar *txtar.Archive, name string, data []byte) {
	for i := range ar.Files {
		if ar.Files[i].Name == name {
			ar.Files[i].Data = data
			return
		}
	}
	ar.Files = append(ar.Files, txtar.File{Name: name, Data: data})
}
