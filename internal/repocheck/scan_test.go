package repocheck

import (
	"bufio"
	"bytes"
	"go/scanner"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A textLine is one line of a comment (its text only, never code or a
// string literal) or of a document.
type textLine struct {
	n    int // 1-based line number in the file
	text string
}

// A finding is one reference to report.
type finding struct {
	file string // slash-separated, from the repository root
	line int
	text string // the line, trimmed
	ref  string // what was referenced
	why  string
}

func (f finding) String() string {
	return f.file + ":" + strconv.Itoa(f.line) + ": " + f.text + "  [" + f.why + ": " + f.ref + "]"
}

// kindOf says how a file's comments are found: "go", "doc" (all of it is
// prose), "hash" (# comments), "slash" (// and /* */ comments), "xml"
// (<!-- --> comments), or "" (not checked).
func kindOf(name string, head []byte) string {
	base := path.Base(name)
	switch ext := strings.ToLower(path.Ext(base)); ext {
	case ".go":
		return "go"
	case ".md", ".txt":
		return "doc"
	case ".yaml", ".yml", ".sh", ".py", ".toml", ".bash":
		return "hash"
	case ".js", ".mjs", ".cjs", ".ts", ".java", ".tpl":
		return "slash"
	case ".xml", ".html":
		return "xml"
	case "":
		if bytes.HasPrefix(head, []byte("#!")) {
			return "hash" // a script: .ci/run
		}
	}
	if base == "Dockerfile" || strings.HasPrefix(base, "Dockerfile.") {
		return "hash"
	}
	return ""
}

// proseLines returns the comment or document lines of a file's content.
func proseLines(kind string, src []byte) []textLine {
	switch kind {
	case "go":
		return goComments(src)
	case "doc":
		return allLines(src)
	case "hash":
		return hashComments(src)
	case "slash":
		return blockComments(src, "/*", "*/", "//")
	case "xml":
		return blockComments(src, "<!--", "-->", "")
	}
	return nil
}

func allLines(src []byte) []textLine {
	var out []textLine
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		out = append(out, textLine{n, sc.Text()})
	}
	return out
}

// goComments returns the text of every comment in a Go file, line by
// line, as go/scanner finds them (so "//" inside a string is no comment).
func goComments(src []byte) []textLine {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, src, func(token.Position, string) {}, scanner.ScanComments)
	var out []textLine
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok != token.COMMENT {
			continue
		}
		start := fset.Position(pos).Line
		for i, l := range strings.Split(lit, "\n") {
			out = append(out, textLine{start + i, l})
		}
	}
}

// hashComments returns what follows a # that starts a line or follows
// white space (so $# and color values inside words are not comments).
func hashComments(src []byte) []textLine {
	var out []textLine
	for _, l := range allLines(src) {
		for i := 0; i < len(l.text); i++ {
			if l.text[i] == '#' && (i == 0 || l.text[i-1] == ' ' || l.text[i-1] == '\t') {
				out = append(out, textLine{l.n, l.text[i:]})
				break
			}
		}
	}
	return out
}

// blockComments returns the lines inside open...close comments and, if
// line is set, what follows line at the start of a line or after white
// space. It does not know string literals: good enough for the few
// scripts and templates of a repository.
func blockComments(src []byte, open, close, line string) []textLine {
	var out []textLine
	in := false
	for _, l := range allLines(src) {
		t := l.text
		var b strings.Builder
		for t != "" {
			if in {
				i := strings.Index(t, close)
				if i < 0 {
					b.WriteString(t)
					t = ""
					break
				}
				b.WriteString(t[:i])
				b.WriteByte(' ')
				t = t[i+len(close):]
				in = false
				continue
			}
			i := strings.Index(t, open)
			j := -1
			if line != "" {
				j = lineCommentStart(t, line)
			}
			if j >= 0 && (i < 0 || j < i) {
				b.WriteString(t[j:])
				break
			}
			if i < 0 {
				break
			}
			t = t[i+len(open):]
			in = true
		}
		if b.Len() > 0 {
			out = append(out, textLine{l.n, b.String()})
		}
	}
	return out
}

func lineCommentStart(t, marker string) int {
	for off := 0; ; {
		i := strings.Index(t[off:], marker)
		if i < 0 {
			return -1
		}
		i += off
		if i == 0 || t[i-1] == ' ' || t[i-1] == '\t' {
			return i
		}
		off = i + len(marker)
	}
}

var (
	// urlRE matches URLs, which are blanked out before paths are looked
	// for: their paths are the server's, not the repository's.
	urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s<>()\[\]"'` + "`" + `]*`)
	// pathRE matches path-like words: segments of letters, digits and
	// _.- joined by slashes, maybe led by ./ or ../, maybe ending in a
	// slash. Whether one is a path is decided after (candidate).
	pathRE = regexp.MustCompile(`(?:\.\.?/)*[A-Za-z0-9_.][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)*/?`)
)

// knownExt are the extensions that make a relative path with a slash a
// file path.
var knownExt = map[string]bool{
	".go": true, ".md": true, ".yaml": true, ".yml": true, ".json": true,
	".sh": true, ".txt": true, ".py": true, ".js": true, ".mjs": true,
	".cjs": true, ".ts": true, ".java": true, ".xml": true, ".toml": true,
	".tpl": true, ".mod": true, ".sum": true, ".html": true, ".proto": true,
	".pem": true, ".csv": true, ".tsv": true,
}

// partOfWord reports whether b, just before a match, makes the match part of
// a longer word (an import path, a URL, an absolute path, a flag value
// written key:path, a template).
func partOfWord(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte(`_./-:@~$%+\*{`, b) >= 0
}

// glob reports whether b, just after a match, makes it a pattern or a
// template rather than a path.
func glob(b byte) bool {
	return strings.IndexByte(`*{<$%@\[?`, b) >= 0
}

// repo is what the checks know of the repository.
type repo struct {
	root    string          // absolute directory of go.mod
	topDirs map[string]bool // first components of the listed files' paths
	// ignored, if set, reports whether git ignores a root-relative path:
	// such a path is a build output (node_modules, the binary), named
	// where it will be, not a missing file.
	ignored func(p string) bool
	outside outside
}

// exists reports whether ref names something inside the repository, from
// the root or from dir (the referring file's directory, slash-separated).
func (r repo) exists(dir, ref string) bool {
	for _, base := range []string{"", dir} {
		p := path.Clean(path.Join(base, ref))
		if p == ".." || strings.HasPrefix(p, "../") {
			continue
		}
		if _, err := os.Stat(filepath.Join(r.root, filepath.FromSlash(p))); err == nil {
			return true
		}
		if r.ignored != nil && p != "." && (r.ignored(p) || r.ignored(p+"/")) {
			return true
		}
	}
	return false
}

// candidate reports whether a path-like word is a repository path the
// checks should find: a relative path with a slash ending in a known
// extension, or one starting with a top-level directory.
func (r repo) candidate(ref string) bool {
	rest := ref
	dotted := false
	for {
		if s, ok := strings.CutPrefix(rest, "./"); ok {
			rest, dotted = s, true
		} else if s, ok := strings.CutPrefix(rest, "../"); ok {
			rest, dotted = s, true
		} else {
			break
		}
	}
	if dotted {
		return true // led by a dot segment: a relative path by its form
	}
	first, _, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	if strings.Contains(first, ".") && !strings.HasPrefix(first, ".") {
		return false // a host: github.com/..., golang.org/x/...
	}
	return r.topDirs[first] || hasKnownExt(rest)
}

func hasKnownExt(p string) bool {
	return knownExt[strings.ToLower(path.Ext(p))]
}

// notAPath reports the path-like words that are names of something else
// even though they start with a top-level directory: a kubectl resource
// (kubectl logs deploy/my-app) and a quoted value with no file extension
// (a sub-benchmark "broker/GET", a header value).
func notAPath(line, ref string, prev, next byte) bool {
	if hasKnownExt(ref) {
		return false
	}
	if prev == '"' && next == '"' {
		return true
	}
	if strings.Contains(line, "kubectl ") {
		if kind, name, ok := strings.Cut(ref, "/"); ok && kind == "deploy" && name != "" && !strings.Contains(name, "/") {
			return true
		}
	}
	return false
}

// check returns the findings on one line of prose in file.
func (r repo) check(file string, l textLine) []finding {
	text := urlRE.ReplaceAllStringFunc(l.text, func(s string) string { return strings.Repeat(" ", len(s)) })
	dir := path.Dir(file)
	var out []finding
	seen := map[string]bool{}
	for _, m := range pathRE.FindAllStringIndex(text, -1) {
		s, e := m[0], m[1]
		ref := strings.TrimRight(text[s:e], ".")
		e = s + len(ref)
		if ref == "" || seen[ref] {
			continue
		}
		var prev, next byte = ' ', ' '
		if s > 0 {
			prev = text[s-1]
		}
		if e < len(text) {
			next = text[e]
		}
		why := ""
		switch {
		case isWordByte(prev):
			// Inside a longer word (pre-shared).
		case r.outside.names(ref):
			// Named from anywhere but inside a word: the file is not in
			// the repository even as part of an absolute path.
			if !r.exists(dir, ref) {
				why = "outside the repository"
			}
		case partOfWord(prev) || glob(next):
			// Part of an import path, URL or absolute path; a glob or
			// template.
		case notAPath(text, ref, prev, next):
		case r.candidate(ref) && !r.exists(dir, ref):
			why = "no such path in the repository"
		}
		if why != "" {
			seen[ref] = true
			out = append(out, finding{file: file, line: l.n, text: strings.TrimSpace(l.text), ref: ref, why: why})
		}
	}
	return out
}

// outside is what lived beside the repository while it was written:
// files that must not be named in it, wherever a path points, and
// folders next to it. testdata/outside.txt lists them, so that the
// names themselves appear in no Go file of the repository.
type outside struct {
	files map[string]bool
	dirs  []string
}

// loadOutside reads testdata/outside.txt.
func loadOutside(t testing.TB) outside {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "outside.txt"))
	if err != nil {
		t.Fatal(err)
	}
	o := outside{files: map[string]bool{}}
	for i, line := range strings.Split(string(b), "\n") {
		kind, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case kind == "" || strings.HasPrefix(kind, "#"):
		case kind == "file" && name != "":
			o.files[name] = true
		case kind == "dir" && name != "":
			o.dirs = append(o.dirs, name)
		default:
			t.Fatalf("testdata/outside.txt:%d: %q: want \"file NAME\" or \"dir NAME\"", i+1, line)
		}
	}
	if len(o.files) == 0 || len(o.dirs) == 0 {
		t.Fatal("testdata/outside.txt names no file or no folder")
	}
	return o
}

// names reports whether ref names a file kept outside the repository, or
// a path into a folder next to it.
func (o outside) names(ref string) bool {
	if o.files[path.Base(strings.TrimSuffix(ref, "/"))] {
		return true
	}
	rest, up := ref, false
	for {
		s, ok := strings.CutPrefix(rest, "../")
		if !ok {
			break
		}
		rest, up = s, true
	}
	rest = strings.TrimPrefix(rest, "./")
	for _, d := range o.dirs {
		if strings.HasPrefix(rest, d+"/") || (up && rest == d) {
			return true
		}
	}
	return false
}

func isWordByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return b == '_' || b == '-'
}
