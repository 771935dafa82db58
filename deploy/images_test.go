package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Both images (the broker's and the app's) are set in one place: the
// images: of the kustomization applied, or of the base it builds on. The
// workloads hold names, not images. The test points every images: entry
// at a recognisable image and renders each kustomization: every container
// must run one of those, and every entry must name a container's image.
func TestKustomizeImages(t *testing.T) {
	const registry, tag = "images.test/", "set-in-images"
	root := kustomizeTree(t, true)
	entries := map[string][]string{} // kustomization folder → its images: names
	err := filepath.WalkDir(filepath.Join(root, "kubernetes"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var k map[string]any
		if err := yaml.Unmarshal(data, &k); err != nil {
			return err
		}
		images, _ := k["images"].([]any)
		if len(images) == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, e := range images {
			img := e.(map[string]any)
			name := img["name"].(string)
			entries[filepath.ToSlash(rel)] = append(entries[filepath.ToSlash(rel)], name)
			img["newName"] = registry + strings.ReplaceAll(name, "/", "-")
			img["newTag"] = tag
			delete(img, "digest")
		}
		if data, err = yaml.Marshal(k); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			var used []string
			for _, w := range index(kustomizeBuildIn(t, root, dir)).workloads {
				for _, c := range append(slices.Clone(w.spec.InitContainers), w.spec.Containers...) {
					name, ok := strings.CutPrefix(c.Image, registry)
					name, ok2 := strings.CutSuffix(name, ":"+tag)
					if !ok || !ok2 {
						t.Errorf("%s/%s, container %q: image %q is not set by an images: entry", w.kind, w.name, c.Name, c.Image)
					}
					used = append(used, name)
				}
			}
			for _, name := range entries[dir] {
				if !slices.Contains(used, strings.ReplaceAll(name, "/", "-")) {
					t.Errorf("images: names %q, which no container uses", name)
				}
			}
		})
	}
	for _, dir := range []string{"kubernetes/base", "kubernetes/overlays/unix-socket", "kubernetes/job"} {
		if len(entries[dir]) < 2 {
			t.Errorf("%s/kustomization.yaml: images: names %q; want the broker and the app", dir, entries[dir])
		}
	}
}
