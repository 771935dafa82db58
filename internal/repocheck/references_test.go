package repocheck

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// moduleRoot walks up from the working directory (the package's, under
// go test) to the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory: run the test from inside the module")
		}
		dir = parent
	}
}

// listFiles returns the files git lists under root: tracked ones, and
// untracked ones it does not ignore (a new file is checked before its
// first commit). It skips the test where git or the work tree is missing.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed: this test lists the repository's files with `git ls-files`; install git to run it")
	}
	cmd := exec.Command(git, "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(stderr.String(), "not a git repository") {
			t.Skipf("%s is not a git work tree (%s): this test checks the files git lists", root, strings.TrimSpace(stderr.String()))
		}
		t.Fatalf("git ls-files: %v: %s", err, stderr.Bytes())
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// newRepo returns what the checks need to know of the repository at root,
// whose files git lists as files.
func newRepo(t *testing.T, root string, files []string) repo {
	r := repo{root: root, topDirs: map[string]bool{}, outside: loadOutside(t)}
	for _, f := range files {
		if first, _, ok := strings.Cut(f, "/"); ok {
			r.topDirs[first] = true
		}
	}
	cache := map[string]bool{}
	r.ignored = func(p string) bool {
		ignored, ok := cache[p]
		if !ok {
			// Exit status 0: ignored; 1: not ignored; anything else is an
			// error, and then the path counts as not ignored.
			ignored = exec.Command("git", "-C", root, "check-ignore", "-q", "--", p).Run() == nil
			cache[p] = ignored
		}
		return ignored
	}
	return r
}

// skipped are paths whose content is data, not prose.
func skipped(file string) bool {
	for _, seg := range strings.Split(path.Dir(file), "/") {
		switch seg {
		case "testdata", "node_modules", "vendor":
			return true
		}
	}
	return false
}

// TestReferences fails on every comment or document line that names a
// file outside the repository, or a repository path that does not exist
// (see the package doc for the rules).
func TestReferences(t *testing.T) {
	root := moduleRoot(t)
	files := listFiles(t, root)
	r := newRepo(t, root, files)
	var findings []finding
	checked := 0
	for _, f := range files {
		if skipped(f) {
			continue
		}
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		head := src[:min(len(src), 512)]
		if bytes.IndexByte(head, 0) >= 0 {
			continue // binary
		}
		kind := kindOf(f, head)
		if kind == "" {
			continue
		}
		checked++
		for _, l := range proseLines(kind, src) {
			findings = append(findings, r.check(f, l)...)
		}
	}
	if checked == 0 {
		t.Fatalf("git listed %d files under %s but none was checked", len(files), root)
	}
	if len(findings) == 0 {
		return
	}
	var b strings.Builder
	for _, f := range findings {
		b.WriteString("\n\t")
		b.WriteString(f.String())
	}
	t.Errorf("%d comment or document lines name a file outside the repository or a path that does not exist:%s\n\n"+
		"Each must make sense to a reader who has only this repository. For a file outside it, say what matters in the "+
		"comment itself or in the repository's own docs (the request path is told in docs/architecture.md) and drop the "+
		"reference. For a path that does not exist, name it as it is now, from the repository root (proxy/doc.go) or from "+
		"the referring file's directory, or drop it. Run: go test ./internal/repocheck", len(findings), b.String())
}

// TestListFilesSkips: without git, or outside a work tree, the check
// skips (saying why) instead of failing.
func TestListFilesSkips(t *testing.T) {
	root := moduleRoot(t)
	t.Run("no git", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		listFiles(t, root)
		t.Error("listFiles did not skip without git")
	})
	t.Run("not a work tree", func(t *testing.T) {
		if _, err := exec.LookPath("git"); err != nil {
			t.Skip("git is not installed")
		}
		dir := t.TempDir()
		t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
		listFiles(t, dir)
		t.Error("listFiles did not skip outside a git work tree")
	})
}
