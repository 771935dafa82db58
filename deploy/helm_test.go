package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// helmVersion is the Helm built with `go run` when no helm is installed
// and CHAT_BROKER_HELM_TEST=1.
const helmVersion = "v3.22.0"

const (
	chart         = "helm/chat-broker"
	exampleValues = "helm/chat-broker/ci/example-values.yaml"
	// kubeVersion is what the chart is rendered for: it requires 1.29 or
	// later (native sidecars), and a helm built with go run believes it
	// talks to 1.20.
	kubeVersion = "1.33.0"
)

// helm returns the command that runs Helm: helm from PATH, else, with
// CHAT_BROKER_HELM_TEST=1, the pinned version from the Go module proxy
// (built once, about a minute on two cores, then cached). Otherwise the
// test skips: Helm's dependency tree is too large to build in every
// `go test ./...`, and the module itself does not depend on it.
func helm(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return []string{p}
	}
	if os.Getenv("CHAT_BROKER_HELM_TEST") != "1" {
		t.Skip("helm not installed: skipping the Helm chart test; set CHAT_BROKER_HELM_TEST=1 to build helm " + helmVersion +
			" with go run (about a minute the first time), as .ci/run does")
	}
	return []string{"go", "run", "helm.sh/helm/v3/cmd/helm@" + helmVersion}
}

func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	h := helm(t)
	cmd := exec.Command(h[0], append(h[1:], args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &helmError{err, stderr.String()}
	}
	return out, nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// The chart lints clean, and renders with its example values into a set
// that decodes strictly and passes every check the kustomize manifests
// pass.
func TestHelmChart(t *testing.T) {
	if out, err := runHelm(t, "lint", "--strict", "--kube-version", kubeVersion, chart, "-f", exampleValues); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	// The example values name a caller Secret, which a chart user creates
	// beside the release: here, one with a throwaway secret. The
	// existing-ConfigMap case uses the base's policy, which reads it at
	// the same path.
	known := append(kustomizeBuild(t, "kubernetes/base"), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "my-chat-app-caller"},
		Data:       map[string][]byte{"token": []byte(throwawaySecret())},
	})

	for _, tc := range []struct {
		desc          string
		args          []string
		wantConfigMap bool
	}{
		{"inline policy", nil, true},
		{"existing ConfigMap", []string{"--set", "policy.inline=", "--set", "policy.existingConfigMap=chat-broker-policy"}, false},
		{"shared limits", []string{"--set", "sharedLimits.url=rediss://redis.redis.svc:6380/0", "--set", "sharedLimits.passwordSecret.name=chat-broker-redis"}, true},
		{"shared limits on a cluster", []string{"--set", "sharedLimits.url=redis://10.0.0.5:6379/0", "--set", "sharedLimits.cluster=true", "--set", "replicaCount=3"}, true},
		{"shared limits, scaled to zero", []string{"--set", "sharedLimits.url=redis://10.0.0.5:6379/0", "--set", "replicaCount=0"}, true},
		{"keyless", []string{"--set", "keyless.impersonate=chat-app@my-project.iam.gserviceaccount.com", "--set", "keyless.gcpServiceAccount=chat-broker@my-project.iam.gserviceaccount.com"}, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			args := append([]string{"template", "my-app", chart, "-f", exampleValues, "--namespace", "demo", "--kube-version", kubeVersion}, tc.args...)
			out, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
			}
			objs, err := decodeAll("helm template", out, false)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var cms int
			for _, o := range objs {
				if _, ok := o.(*corev1.ConfigMap); ok {
					cms++
				}
			}
			if got := cms > 0; got != tc.wantConfigMap {
				t.Errorf("the chart rendered %d ConfigMaps; want one only for an inline policy", cms)
			}
			checkObjects(t, objs, known...)
			if tc.wantConfigMap {
				// As values.yaml suggests: the rendered policy passes the
				// broker's own check.
				check := exec.Command(broker(t), "policy", "check", "-")
				check.Stdin = bytes.NewReader(out)
				if got, err := check.CombinedOutput(); err != nil || !bytes.Contains(got, []byte("): ok (")) {
					t.Errorf("helm template | chat-broker policy check -: %v\n%s", err, got)
				}
			}
			if shared := strings.Contains(string(out), "--shared-limits-password-file\n"); shared != (tc.desc == "shared limits") {
				t.Errorf("--shared-limits-password-file rendered: %v", shared)
			}
			if cluster := strings.Contains(string(out), "--shared-limits-cluster\n"); cluster != (tc.desc == "shared limits on a cluster") {
				t.Errorf("--shared-limits-cluster rendered: %v", cluster)
			}
		})
	}
}

// Without the values it cannot guess, the chart refuses to render and
// says which value to set.
func TestHelmChartRequiredValues(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"no app containers", []string{"--set", "image.repository=b", "--set", "policy.inline=version: 1"}, "app.containers: give your app's containers"},
		{"no policy", []string{"--set", "image.repository=b", "--set", "app.containers[0].name=app", "--set", "app.containers[0].image=app"}, "policy: set policy.inline"},
		{"no broker image", []string{"-f", exampleValues, "--set", "image.repository="}, "image.repository: no chat-broker image is published; build deploy/Dockerfile"},
		{"no app image", []string{"--set", "image.repository=b", "--set", "policy.inline=version: 1", "--set", "app.containers[0].name=app"}, "app.containers[0] (app): set its image"},
		{"caller Secret not a name", []string{"-f", exampleValues, "--set", "callerSecrets[0].name=x"}, "callerSecrets[0]: want a Secret's name"},
		{"two policies", []string{"-f", exampleValues, "--set", "policy.existingConfigMap=x"}, "not both"},
		{"password in the Redis URL", []string{"-f", exampleValues, "--set", "sharedLimits.url=redis://u:pw@redis:6379/0"}, "sharedLimits.url: holds a password"},
		{"password Secret without a URL", []string{"-f", exampleValues, "--set", "sharedLimits.passwordSecret.name=chat-broker-redis"}, "needs sharedLimits.url"},
		{"GKE service account without keyless", []string{"-f", exampleValues, "--set", "keyless.gcpServiceAccount=x@p.iam.gserviceaccount.com"}, "keyless.gcpServiceAccount: only with keyless.impersonate"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			args := append([]string{"template", "x", chart, "--kube-version", kubeVersion}, tc.args...)
			_, err := runHelm(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm %s: %v, want an error saying %q", strings.Join(args, " "), err, tc.want)
			}
		})
	}
}
