package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The ConfigMaps this repository ships hold policies whose secretFiles
// exist only in the pod: a check of the manifest does not read them.
// A policy file's secretFiles are read as the broker reads them: where
// they are missing the check fails and says how to check the rest.
func TestPolicyCheckShippedConfigMaps(t *testing.T) {
	for _, file := range []string{
		"../../deploy/kubernetes/components/sidecar/policy-configmap.yaml",
		"../../deploy/kubernetes/job/policy-configmap.yaml",
	} {
		t.Run(filepath.Base(filepath.Dir(file)), func(t *testing.T) {
			err, out, errOut := runOut(t, "", "policy", "check", file)
			if err != nil || !strings.Contains(out, file+" (ConfigMap ") || !strings.HasSuffix(out, ", data.policy.yaml): ok (1 caller; 1 secretFile not read)\n") {
				t.Errorf("check: %v\n%s%s", err, out, errOut)
			}
		})
	}

	file := writePolicy(t, t.TempDir(), `version: 1
callers:
  - name: app
    identify: {secretFile: /var/run/chat-broker/callers/app/token}
    allow: [{methods: [spaces.messages.create], spaces: [spaces/AAAA]}]
    scopes: [chat.bot]
`)
	err, _, errOut := runOut(t, "", "policy", "check", file)
	if exitCode(err) != 1 || !strings.Contains(errOut, "callers[0].identify.secretFile: open /var/run/chat-broker/callers/app/token") ||
		!strings.Contains(errOut, "add --skip-secret-files to check the rest") {
		t.Errorf("check of a policy file (exit %d): %v\n%s\nwant exit 1 naming the secretFile and --skip-secret-files", exitCode(err), err, errOut)
	}
	err, out, errOut := runOut(t, "", "policy", "check", "--skip-secret-files", file)
	if err != nil || out != file+": ok (1 caller; 1 secretFile not read)\n" {
		t.Errorf("check --skip-secret-files: %v\n%s%s", err, out, errOut)
	}
}

// A stream of Kubernetes objects, as "kubectl kustomize" prints it, on
// standard input: every ConfigMap value with a top-level callers is
// checked, whatever its key; other objects and values are passed over,
// a value under a .yaml key that does not parse is checked (and fails),
// and a YAML error's line is the stream's line.
func TestPolicyCheckManifestStream(t *testing.T) {
	stream := `---
# Source: a chart's empty template
---
apiVersion: apps/v1
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
  settings.yaml: |
    version: 3
    database: {host: db}
  policy: |
    version: 1
    callers:
      - name: app
        identify: {secretFile: token}
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
	if want := "standard input (ConfigMap good, data.policy): ok (1 caller; 1 secretFile not read)\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	for _, want := range []string{
		"standard input (ConfigMap broken, data.policy.yml): line 35: ",
		"standard input (ConfigMap broken, data.flow.yaml): line 3 of the policy: ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not say %q:\n%s", want, errOut)
		}
	}
	for _, not := range []string{"notes.txt", "settings.yaml", "Deployment"} {
		if strings.Contains(out+errOut, not) {
			t.Errorf("%s, which is no policy, was checked:\n%s%s", not, out, errOut)
		}
	}

	// Objects without a ConfigMap that holds a policy: nothing was
	// checked, which is no pass.
	err, _, errOut = runOut(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "policy", "check", "-")
	if exitCode(err) != 1 || !strings.Contains(errOut, "standard input: holds Kubernetes objects but no policy") {
		t.Errorf("no policy: exit %d, %s", exitCode(err), errOut)
	}
}

// explain reads a ConfigMap manifest or standard input as check does:
// one policy, its secretFiles not read.
func TestExplainManifest(t *testing.T) {
	file := "../../deploy/kubernetes/components/sidecar/policy-configmap.yaml"
	err, out, _ := runOut(t, "", "policy", "explain", file, "--caller", "my-chat-app", "--request", "POST /v1/spaces/AAAA/messages")
	if err != nil || !strings.Contains(out, "decision: allow") {
		t.Errorf("explain: %v\n%s", err, out)
	}
	two := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a.yaml: 'callers: []', b: 'callers: []'}\n"
	err, _, _ = runOut(t, two, "policy", "explain", "-", "--caller", "a", "--request", "GET /v1/spaces")
	if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), "standard input: holds 2 policies") {
		t.Errorf("explain of two policies: exit %d, %v", exitCode(err), err)
	}
}
