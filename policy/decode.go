package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// The file as written. Pointers mark fields whose absence matters.
// Field names come from the json tags, matched exactly (encoding/json
// would also accept "Name" or "SECRETSHA256"; a policy file should have
// one spelling per field).
type fileDoc struct {
	Version *int        `json:"version"`
	Callers []callerDoc `json:"callers"`
}

type callerDoc struct {
	Name        string       `json:"name"`
	Identify    *identifyDoc `json:"identify"`
	Allow       []ruleDoc    `json:"allow"`
	Scopes      []string     `json:"scopes"`
	Subjects    []string     `json:"subjects"`
	AdminAccess bool         `json:"adminAccess"`
	Limits      Limits       `json:"limits"`
}

type identifyDoc struct {
	SecretSHA256   *string `json:"secretSHA256"`
	SecretFile     *string `json:"secretFile"`
	UnixUID        *int    `json:"unixUID"`
	UnixGID        *int    `json:"unixGID"`
	ServiceAccount *string `json:"serviceAccount"`
}

type ruleDoc struct {
	Methods []string `json:"methods"`
	Spaces  []string `json:"spaces"`
	Prefer  []string `json:"prefer"`
}

// problems collects what is wrong with a file, in the order found.
type problems struct {
	list []Problem
	// bad holds the paths whose value could not be decoded at all (wrong
	// type, empty list entry). Validation says nothing more about them, so
	// one mistake gives one line, not a cascade of "missing".
	bad map[string]bool
}

func (ps *problems) add(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// sorted returns the problems in the order of the file's structure:
// callers by index, and within a caller its fields in the order the
// format lists them, unknown fields last. Decoding and validation find
// problems in different passes; sorting keeps each caller's together.
func (ps *problems) sorted() []Problem {
	out := append([]Problem(nil), ps.list...)
	sort.SliceStable(out, func(i, j int) bool { return pathLess(out[i].Path, out[j].Path) })
	return out
}

// fieldRank orders field names as the format lists them.
var fieldRank = func() map[string]int {
	r := map[string]int{}
	for _, t := range []reflect.Type{
		reflect.TypeFor[fileDoc](), reflect.TypeFor[callerDoc](), reflect.TypeFor[identifyDoc](),
		reflect.TypeFor[ruleDoc](), reflect.TypeFor[Limits](),
	} {
		for _, n := range fieldNames(t) {
			if _, ok := r[n]; !ok {
				r[n] = len(r)
			}
		}
	}
	return r
}()

var pathToken = regexp.MustCompile(`[^.\[\]]+|\[\d+\]`)

// pathLess compares problem paths token by token: field names by rank,
// list indexes by number, a parent before its children.
func pathLess(a, b string) bool {
	ta, tb := pathToken.FindAllString(a, -1), pathToken.FindAllString(b, -1)
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if ta[i] == tb[i] {
			continue
		}
		return tokenKey(ta[i]) < tokenKey(tb[i])
	}
	return len(ta) < len(tb)
}

func tokenKey(t string) int {
	if strings.HasPrefix(t, "[") {
		n, _ := strconv.Atoi(strings.Trim(t, "[]"))
		return n
	}
	if r, ok := fieldRank[t]; ok {
		return r
	}
	return len(fieldRank) // unknown fields after known ones; stable among themselves
}

// suppress marks path bad without a problem of its own: another line
// already explains it.
func (ps *problems) suppress(path string) {
	if ps.bad == nil {
		ps.bad = map[string]bool{}
	}
	ps.bad[path] = true
}

func (ps *problems) markBad(path, format string, args ...any) {
	if ps.bad == nil {
		ps.bad = map[string]bool{}
	}
	ps.bad[path] = true
	ps.add(path, format, args...)
}

// decodeFile turns YAML into a fileDoc. YAML errors end decoding; shape
// errors (unknown fields, wrong types) are collected and decoding goes on,
// so validation can still report everything else.
func decodeFile(data []byte, ps *problems) (*fileDoc, bool) {
	if line, ok := secondDocument(data); ok {
		ps.add(fmt.Sprintf("line %d", line), `a second YAML document starts here; a policy file holds one document, so remove this "---" and what follows, or merge the callers into the first`)
		return nil, false
	}
	// YAMLToJSONStrict refuses duplicate keys, which plain YAML decoding
	// would resolve silently in favour of the last one.
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		yamlProblems(err, ps)
		return nil, false
	}
	var root any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		// The JSON came from the YAML library; this is not expected.
		ps.add("", "cannot read the file: %v", err)
		return nil, false
	}
	var doc fileDoc
	if root == nil {
		return &doc, true // an empty file; validation says what is missing
	}
	decodeValue(root, reflect.ValueOf(&doc).Elem(), "", ps)
	return &doc, true
}

var docMarker = regexp.MustCompile(`^---(\s|$)`)

// secondDocument reports the line of a "---" that starts a second YAML
// document. The YAML library reads only the first one and drops the rest
// without a word; a policy split that way would lose callers silently.
func secondDocument(data []byte) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	content := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch t := strings.TrimSpace(line); {
		case docMarker.MatchString(line):
			if content {
				return n, true
			}
			rest := strings.TrimSpace(strings.TrimPrefix(t, "---"))
			content = rest != "" && !strings.HasPrefix(rest, "#")
		case t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, "%"):
			content = true
		}
	}
	return 0, false
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlProblems turns a YAML library error into one problem per line,
// keeping the line number as the path.
func yamlProblems(err error, ps *problems) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		path := ""
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			path, l = "line "+m[1], m[2]
		}
		if strings.HasPrefix(l, "key ") && strings.HasSuffix(l, " already set in map") {
			ps.add(path, "%s is set twice in the same mapping; keep one", strings.TrimSuffix(l, " already set in map"))
			continue
		}
		ps.add(path, "invalid YAML: %s", l)
	}
}

// decodeValue stores v (from encoding/json with UseNumber) into rv,
// reporting values of the wrong shape and fields the format does not have.
func decodeValue(v any, rv reflect.Value, path string, ps *problems) {
	switch rv.Kind() {
	case reflect.Pointer:
		if v == nil {
			return
		}
		p := reflect.New(rv.Type().Elem())
		decodeValue(v, p.Elem(), path, ps)
		rv.Set(p)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			if v != nil {
				ps.markBad(path, "got %s, want a mapping of %s", shape(v), strings.Join(fieldNames(rv.Type()), ", "))
			}
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			i, ok := fieldIndex(rv.Type(), k)
			if !ok {
				names := fieldNames(rv.Type())
				if s, ok := nearest(k, names); ok {
					ps.add(join(path, k), "unknown field; did you mean %q?", s)
					// A misspelt field is also a missing one: mark it, so
					// validation does not add "no methods" for a "method:".
					if _, given := m[s]; !given {
						ps.suppress(join(path, s))
					}
				} else {
					ps.add(join(path, k), "unknown field; the fields here are %s", strings.Join(names, ", "))
				}
				continue
			}
			decodeValue(m[k], rv.Field(i), join(path, k), ps)
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			if v != nil {
				ps.markBad(path, "got %s, want a list; write it as [ … ] or as lines starting with \"- \"", shape(v))
			}
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(l), len(l))
		for i, e := range l {
			ep := fmt.Sprintf("%s[%d]", path, i)
			if e == nil {
				ps.markBad(ep, "empty entry; remove it")
				continue
			}
			decodeValue(e, s.Index(i), ep, ps)
		}
		rv.Set(s)
	case reflect.String:
		switch v := v.(type) {
		case string:
			rv.SetString(v)
		case nil:
		case json.Number, bool:
			// YAML reads 0123 as 83 and yes as true; a quoted value is
			// never reinterpreted.
			ps.markBad(path, "got %s, want a string; put the value in quotes", shape(v))
		default:
			ps.markBad(path, "got %s, want a string", shape(v))
		}
	case reflect.Int:
		switch v := v.(type) {
		case json.Number:
			n, err := strconv.ParseInt(v.String(), 10, 0)
			if err != nil {
				ps.markBad(path, "got %s, want a whole number", v)
				return
			}
			rv.SetInt(n)
		case nil:
		default:
			ps.markBad(path, "got %s, want a whole number", shape(v))
		}
	case reflect.Bool:
		switch v := v.(type) {
		case bool:
			rv.SetBool(v)
		case nil:
		default:
			// "yes" in quotes, 1: ambiguous, so refused.
			ps.markBad(path, "got %s, want true or false", shape(v))
		}
	default:
		panic("policy: decodeValue: unhandled kind " + rv.Kind().String())
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// join appends a field to a path. A key the format could never have
// (spaces, dots, newlines) is quoted, so an error line stays one line and
// its path stays readable.
func join(path, key string) string {
	if !plainKey.MatchString(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// shape names the YAML shape of a decoded value for error messages.
func shape(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "true/false"
	}
	return "nothing"
}

func fieldNames(t reflect.Type) []string {
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = jsonName(t.Field(i))
	}
	return names
}

func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := 0; i < t.NumField(); i++ {
		if jsonName(t.Field(i)) == name {
			return i, true
		}
	}
	return 0, false
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}
