package deploy_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizations are the folders under kubernetes/ that kubectl apply -k
// takes, each a complete set.
var kustomizations = []string{
	"kubernetes/base",
	"kubernetes/overlays/unix-socket",
	"kubernetes/overlays/shared-limits",
	"kubernetes/overlays/keyless",
	"kubernetes/job",
}

// Every YAML file under kubernetes/ is a kustomization, or a resource or
// patch that one names, and decodes strictly into the Kubernetes types.
func TestManifestsDecodeStrictly(t *testing.T) {
	role := map[string]string{} // file → "resource" or "patch"
	var dirs []string
	err := filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		dir := filepath.Dir(p)
		dirs = append(dirs, dir)
		k := readKustomization(t, p)
		for _, r := range k.Resources {
			if fi, err := os.Stat(filepath.Join(dir, r)); err == nil && !fi.IsDir() {
				role[filepath.Join(dir, r)] = "resource"
			}
		}
		for _, ptch := range k.Patches {
			if ptch.Path == "" {
				t.Errorf("%s: inline patches cannot be checked here; put them in a file", p)
			}
			role[filepath.Join(dir, ptch.Path)] = "patch"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range kustomizations {
		if !slices.Contains(dirs, filepath.FromSlash(want)) {
			t.Errorf("%s/kustomization.yaml is missing", want)
		}
	}
	err = filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "kustomization.yaml" || d.Name() == ".gitignore" {
			return err
		}
		if isGeneratorSource(t, p) {
			return nil // a caller secret of yours, never committed
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			t.Errorf("%s: only YAML belongs under kubernetes/", p)
			return nil
		}
		r, ok := role[p]
		if !ok {
			t.Errorf("%s: no kustomization.yaml names it as a resource or patch", p)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		objs, err := decodeAll(p, data, r == "patch")
		if err != nil {
			t.Error(err)
		} else if len(objs) == 0 {
			t.Errorf("%s: no object", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readKustomization decodes a kustomization.yaml strictly into kustomize's
// own type.
func readKustomization(t *testing.T, p string) *types.Kustomization {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	isComponent := k.Kind == "Component" && k.APIVersion == "kustomize.config.k8s.io/v1alpha1"
	if !isComponent && (k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1") {
		t.Errorf("%s: kind %q, apiVersion %q", p, k.Kind, k.APIVersion)
	}
	return &k
}

// Each kustomization renders (with kustomize's Go library, the code
// kubectl kustomize embeds) into a set that decodes strictly and passes
// every check, once the caller secrets it needs exist, as a user makes
// them (kustomizeTree).
func TestKustomizeRender(t *testing.T) {
	root := kustomizeTree(t, true)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			checkObjects(t, kustomizeBuildIn(t, root, dir))
		})
	}
}

// kustomizeBuild renders dir from a copy of kubernetes/ holding throwaway
// caller secrets.
func kustomizeBuild(t *testing.T, dir string) []runtime.Object {
	t.Helper()
	return kustomizeBuildIn(t, kustomizeTree(t, true), dir)
}

// kustomizeBuildIn renders dir (kubernetes/...) from the copy at root.
func kustomizeBuildIn(t *testing.T, root, dir string) []runtime.Object {
	t.Helper()
	out := kustomizeYAML(t, root, dir)
	objs, err := decodeAll("kustomize build "+dir, out, false)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return objs
}

// kubectl kustomize, where kubectl is installed, renders the same objects
// as the library, and they pass the same checks.
func TestKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: skipping the kubectl kustomize check (TestKustomizeRender renders with kustomize's Go library all the same)")
	}
	root := kustomizeTree(t, true)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, dir)).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderrOf(err))
			}
			objs, err := decodeAll("kubectl kustomize "+dir, out, false)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkObjects(t, objs)
			if got, want := byName(t, objs), byName(t, kustomizeBuildIn(t, root, dir)); !equalJSON(got, want) {
				t.Errorf("kubectl kustomize %s differs from kustomize's library:\nkubectl: %s\nlibrary: %s", dir, got, want)
			}
		})
	}
}

// kustomizeYAML renders dir (kubernetes/...) from the copy at root, as
// "kubectl kustomize" prints it.
func kustomizeYAML(t *testing.T, root, dir string) []byte {
	t.Helper()
	res, err := kustomizeRun(filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kustomizeRun(dir string) (resmap.ResMap, error) {
	return krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// byName maps kind/name to each object's JSON.
func byName(t *testing.T, objs []runtime.Object) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, o := range objs {
		data, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Kind     string
			Metadata struct{ Name string }
		}
		json.Unmarshal(data, &meta)
		m[meta.Kind+"/"+meta.Metadata.Name] = string(data)
	}
	return m
}

func equalJSON(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.TrimSpace(b[k]) != strings.TrimSpace(v) {
			return false
		}
	}
	return true
}

// What deploy/README.md tells an operator to run before applying:
// every kustomization's output, piped into the broker's policy check,
// holds a valid policy (its secretFiles exist only in the pod).
func TestKustomizePolicyCheck(t *testing.T) {
	root := kustomizeTree(t, true)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			cmd := exec.Command(broker(t), "policy", "check", "-")
			cmd.Stdin = bytes.NewReader(kustomizeYAML(t, root, dir))
			got, err := cmd.CombinedOutput()
			if err != nil || !bytes.Contains(got, []byte("standard input (ConfigMap ")) || !bytes.Contains(got, []byte("): ok (")) {
				t.Errorf("kustomize build %s | chat-broker policy check -: %v\n%s", dir, err, got)
			}
		})
	}
}
