package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The ConfigMaps this repository ships hold policies whose secretFiles
// exist only in the pod: a check reads them as the broker would, fails
// and says how to check the rest; with --skip-secret-files it passes.
func TestPolicyCheckShippedConfigMaps(t *testing.T) {
	for _, file := range []string{
		"../../deploy/kubernetes/components/sidecar/policy-configmap.yaml",
		"../../deploy/kubernetes/job/policy-configmap.yaml",
	} {
		t.Run(filepath.Base(filepath.Dir(file)), func(t *testing.T) {
			err, _, errOut := runOut(t, "", "policy", "check", file)
			if exitCode(err) != 1 || !strings.Contains(errOut, ".identify.secretFile: open /var/run/chat-broker/callers/") ||
				!strings.Contains(errOut, "add --skip-secret-files to check the rest") {
				t.Errorf("check (exit %d): %v\n%s\nwant exit 1 naming the secretFile and --skip-secret-files", exitCode(err), err, errOut)
			}
			err, out, errOut := runOut(t, "", "policy", "check", "--skip-secret-files", file)
			if err != nil || !strings.Contains(out, file+" (ConfigMap ") || !strings.HasSuffix(out, ", data.policy.yaml): ok (1 caller; 1 secretFile not read)\n") {
				t.Errorf("check --skip-secret-files: %v\n%s%s", err, out, errOut)
			}
		})
	}
}

// A stream of Kubernetes objects, as "kubectl kustomize" prints it, on
// standard input: every ConfigMap key ending in .yaml or .yml is checked,
// other objects and keys are passed over, and a YAML error's line is the
// stream's line.
func TestPolicyCheckManifestStream(t *testing.T) {
	stream := `apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: good
data:
  notes.txt: not a policy
  policy.yaml: |
    version: 1
    callers:
      - name: app
        identify: {secretSHA256: ` + strings.Repeat("ab", 32) + `}
        allow: [{methods: [spaces.messages.create], spaces: [spaces/AAAA]}]
        scopes: [chat.bot]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
data:
  policy.yml: |
    version: 1
    callers:
      - name: app
         identify: {}
  flow.yaml: "version: 1\ncallers:\n  - name: [\n"
`
	err, out, errOut := runOut(t, stream, "policy", "check", "-")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "2 of 3 policies invalid") {
		t.Errorf("exit %d (%v), want 1 and 2 of 3 policies invalid", exitCode(err), err)
	}
	if want := "standard input (ConfigMap good, data.policy.yaml): ok (1 caller)\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	for _, want := range []string{
		"standard input (ConfigMap broken, data.policy.yml): line 29: ",
		"standard input (ConfigMap broken, data.flow.yaml): line 3 of the policy: ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "notes.txt") || strings.Contains(errOut, "Deployment") {
		t.Errorf("a key or object that is no policy was checked:\n%s", errOut)
	}

	// Objects without a ConfigMap that holds a policy: nothing was
	// checked, which is no pass.
	err, _, errOut = runOut(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "policy", "check", "-")
	if exitCode(err) != 1 || !strings.Contains(errOut, "standard input: holds Kubernetes objects but no policy") {
		t.Errorf("no policy: exit %d, %s", exitCode(err), errOut)
	}
}

// explain reads a ConfigMap manifest or standard input as check does:
// one policy, secretFiles skipped on request, and a hint when they are
// not there.
func TestExplainManifest(t *testing.T) {
	file := "../../deploy/kubernetes/components/sidecar/policy-configmap.yaml"
	args := []string{"policy", "explain", file, "--caller", "my-chat-app", "--request", "POST /v1/spaces/AAAA/messages"}
	err, out, _ := runOut(t, "", append(args, "--skip-secret-files")...)
	if err != nil || !strings.Contains(out, "decision: allow") {
		t.Errorf("explain --skip-secret-files: %v\n%s", err, out)
	}
	err, _, _ = runOut(t, "", args...)
	if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), "add --skip-secret-files") {
		t.Errorf("explain: exit %d, %v; want 2 and the hint", exitCode(err), err)
	}
	two := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a.yaml: 'version: 1', b.yaml: 'version: 1'}\n"
	err, _, _ = runOut(t, two, "policy", "explain", "-", "--caller", "a", "--request", "GET /v1/spaces")
	if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), "standard input: holds 2 policies") {
		t.Errorf("explain of two policies: exit %d, %v", exitCode(err), err)
	}
}
