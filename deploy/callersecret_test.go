package deploy_test

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// A caller secret in this repository would be public: anyone who applied
// the manifests as shipped would run with a token everyone can read. So
// no manifest holds one; a secretGenerator reads each from a file the
// user creates beside its kustomization.yaml, which git ignores, and the
// build fails until it exists.

// generatorSource is a file a secretGenerator reads.
type generatorSource struct {
	kustomization string // the folder, kubernetes/...
	file          string // kubernetes/.../caller.env
	env           bool   // an env file (key=value lines), else the value itself
}

// generatorSources lists the files the secretGenerators under kubernetes/
// read; literals, which would put the value in the repository, fail the
// test.
var generatorSources = sync.OnceValues(func() ([]generatorSource, error) {
	var srcs []generatorSource
	err := filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var k struct {
			SecretGenerator []struct {
				Name     string
				Literals []string
				Files    []string
				Envs     []string
				Env      string
			} `json:"secretGenerator"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return err
		}
		dir := filepath.Dir(p)
		for _, g := range k.SecretGenerator {
			if len(g.Literals) > 0 {
				srcs = append(srcs, generatorSource{kustomization: dir, file: "literals of " + g.Name})
			}
			for _, f := range g.Files {
				if _, path, ok := strings.Cut(f, "="); ok { // key=path
					f = path
				}
				srcs = append(srcs, generatorSource{dir, filepath.Join(dir, f), false})
			}
			for _, f := range append(g.Envs, g.Env) {
				if f != "" {
					srcs = append(srcs, generatorSource{dir, filepath.Join(dir, f), true})
				}
			}
		}
		return nil
	})
	return srcs, err
})

func sources(t *testing.T) []generatorSource {
	t.Helper()
	srcs, err := generatorSources()
	if err != nil {
		t.Fatal(err)
	}
	return srcs
}

// isGeneratorSource: p (kubernetes/...) is a caller secret a user makes.
func isGeneratorSource(t *testing.T, p string) bool {
	return slices.ContainsFunc(sources(t), func(s generatorSource) bool { return s.file == p })
}

// kustomizeTree copies kubernetes/ into a temporary folder, leaving out
// any caller secret a developer made here, and returns the folder that
// holds the copy. With secrets, it then writes a throwaway caller secret
// into every file a secretGenerator reads, as a user does before
// applying.
func kustomizeTree(t *testing.T, secrets bool) string {
	t.Helper()
	root := t.TempDir()
	err := filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(root, p)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if isGeneratorSource(t, p) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !secrets {
		return root
	}
	for _, s := range sources(t) {
		value := throwawaySecret()
		if s.env {
			value = "token=" + value + "\n"
		}
		if err := os.WriteFile(filepath.Join(root, s.file), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Without the caller secret a user creates, kustomize refuses to build,
// naming the missing file; the Unix-socket overlay, whose callers are
// uids, needs none and renders without it.
func TestKustomizeNeedsCallerSecret(t *testing.T) {
	root := kustomizeTree(t, false)
	tests := []struct {
		dir     string
		missing string // the file the error names; "" builds
	}{
		{"kubernetes/base", "kubernetes/base/caller.env"},
		{"kubernetes/overlays/shared-limits", "kubernetes/base/caller.env"},
		{"kubernetes/overlays/keyless", "kubernetes/base/caller.env"},
		{"kubernetes/job", "kubernetes/job/caller.env"},
		{"kubernetes/overlays/unix-socket", ""},
	}
	for _, dir := range kustomizations {
		if !slices.ContainsFunc(tests, func(tc struct{ dir, missing string }) bool { return tc.dir == dir }) {
			t.Errorf("%s: add it to this test", dir)
		}
	}
	kubectl, _ := exec.LookPath("kubectl")
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			check := func(t *testing.T, out []byte, err error) {
				t.Helper()
				switch {
				case tc.missing == "" && err != nil:
					t.Fatalf("no caller secret needed, yet: %v", err)
				case tc.missing == "":
					objs, err := decodeAll(tc.dir, out, false)
					if err != nil {
						t.Fatal(err)
					}
					if n := len(index(objs).secrets); n != 0 {
						t.Errorf("renders %d Secrets; want none", n)
					}
				case err == nil:
					t.Fatalf("built without %s; want an error naming it", tc.missing)
				case !strings.Contains(err.Error(), filepath.Join(root, tc.missing)) || !strings.Contains(err.Error(), "no such file"):
					t.Errorf("error %q; want it to say %s does not exist", err, tc.missing)
				default:
					t.Logf("as a user sees it: %v", err)
				}
			}
			t.Run("library", func(t *testing.T) {
				res, err := kustomizeRun(filepath.Join(root, tc.dir))
				var out []byte
				if err == nil {
					out, err = res.AsYaml()
				}
				check(t, out, err)
			})
			t.Run("kubectl", func(t *testing.T) {
				if kubectl == "" {
					t.Skip("kubectl not installed")
				}
				out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, tc.dir)).Output()
				if err != nil {
					err = &kubectlError{err, stderrOf(err)}
				}
				check(t, out, err)
			})
		})
	}
}

type kubectlError struct {
	err    error
	stderr string
}

func (e *kubectlError) Error() string { return e.err.Error() + ": " + e.stderr }

// No file here holds a secret a caller could use: no Secret carries data
// or stringData, no secretGenerator has literals, the Helm chart renders
// no Secret, and each file a secretGenerator reads is git-ignored in its
// folder.
func TestNoCallerSecretShipped(t *testing.T) {
	t.Run("secretGenerator sources", func(t *testing.T) {
		srcs := sources(t)
		if len(srcs) == 0 {
			t.Fatal("no secretGenerator under kubernetes/: where do the callers' secrets come from?")
		}
		for _, s := range srcs {
			if strings.HasPrefix(s.file, "literals of ") {
				t.Errorf("%s/kustomization.yaml: secretGenerator %s: a literal is a secret in the repository; read a git-ignored file", s.kustomization, s.file)
				continue
			}
			if filepath.Dir(s.file) != s.kustomization {
				t.Errorf("%s: outside its kustomization's folder %s", s.file, s.kustomization)
			}
			ignore, err := os.ReadFile(filepath.Join(s.kustomization, ".gitignore"))
			if err != nil || !slices.Contains(strings.Split(string(ignore), "\n"), filepath.Base(s.file)) {
				t.Errorf("%s/.gitignore does not list %s: a caller secret made there could be committed", s.kustomization, filepath.Base(s.file))
			}
		}
	})
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); (ext != ".yaml" && ext != ".yml") || isGeneratorSource(t, p) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		t.Run(p, func(t *testing.T) {
			if filepath.Base(filepath.Dir(p)) == "templates" {
				// Helm templates are not YAML until rendered.
				if strings.Contains(string(data), "kind: Secret") {
					t.Error("the chart would create a Secret: caller secrets and the key are the user's, created beside the release")
				}
				return
			}
			for i, doc := range strings.Split(string(data), "\n---") {
				var v any
				if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
					t.Fatalf("document %d: %v", i, err)
				}
				for _, sec := range secretsIn(v) {
					t.Errorf("document %d holds Secret %v with data or stringData: a secret in the repository is public", i, sec)
				}
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// secretsIn returns the names of Secrets with content anywhere in v (a
// Secret may hide in Helm values, or in a List).
func secretsIn(v any) []any {
	var found []any
	switch v := v.(type) {
	case map[string]any:
		if v["kind"] == "Secret" {
			if v["data"] != nil || v["stringData"] != nil {
				meta, _ := v["metadata"].(map[string]any)
				found = append(found, meta["name"])
			}
		}
		for _, e := range v {
			found = append(found, secretsIn(e)...)
		}
	case []any:
		for _, e := range v {
			found = append(found, secretsIn(e)...)
		}
	}
	return found
}

// throwawaySecret is a random caller secret for a test's Secret.
func throwawaySecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}
