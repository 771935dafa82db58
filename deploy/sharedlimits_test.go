package deploy_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// checkSharedLimits: where the broker shares its limits on Redis
// (--shared-limits, or CHAT_BROKER_SHARED_LIMITS), the URL holds no
// password, every CHAT_BROKER_* variable names a real serve flag, and
// the password file is on a Secret volume that only the broker mounts,
// read-only, and --shared-limits-brokers is the workload's replicas (each
// paces at that share while Redis is down). It reports whether the
// workload shares its limits.
func checkSharedLimits(t *testing.T, w workload, b *corev1.Container, flags map[string]string) bool {
	t.Helper()
	spec := w.spec
	known, err := serveFlags()
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{}
	for _, e := range b.Env {
		name, ok := strings.CutPrefix(e.Name, "CHAT_BROKER_")
		if !ok {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if _, ok := known[flag]; !ok {
			t.Errorf("env %s: --%s is not a chat-broker serve flag", e.Name, flag)
		}
		all[flag] = e.Value
	}
	for k, v := range flags {
		all[k] = v
	}
	raw := all["shared-limits"]
	if raw == "" {
		if all["shared-limits-password-file"] != "" {
			t.Error("--shared-limits-password-file without --shared-limits")
		}
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		t.Errorf("--shared-limits: not a redis:// or rediss:// URL")
	} else if _, has := u.User.Password(); has {
		t.Error("--shared-limits holds a password: it belongs in a Secret (--shared-limits-password-file)")
	}
	if got, want := all["shared-limits-brokers"], strconv.Itoa(max(1, int(w.replicas))); got != want {
		t.Errorf("--shared-limits-brokers %q, want %s, the replicas (at least 1): while Redis is down each replica paces at that share", got, want)
	}
	file := all["shared-limits-password-file"]
	if file == "" {
		return true // a Redis without AUTH
	}
	vol, mount := volumeFor(t, spec, b, file, "--shared-limits-password-file")
	if vol == nil {
		return true
	}
	if vol.Secret == nil {
		t.Errorf("--shared-limits-password-file %s is on volume %q, which is not a Secret", file, vol.Name)
	}
	if !mount.ReadOnly {
		t.Errorf("the Redis password volume %q is mounted writable", vol.Name)
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if c.Name == b.Name {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == vol.Name {
				t.Errorf("container %s mounts the Redis password volume %q: only the broker may", c.Name, vol.Name)
			}
		}
	}
	return true
}

// The shared-limits overlay (the base plus components/shared-limits)
// turns sharing on, with the password from its Secret.
func TestKustomizeSharedLimits(t *testing.T) {
	tests := []struct {
		dir  string
		want bool
	}{
		{"kubernetes/base", false},
		{"kubernetes/overlays/shared-limits", true},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			got := false
			for _, w := range index(kustomizeBuild(t, tc.dir)).workloads {
				b, _ := findContainer(w.spec.InitContainers, brokerName)
				if b == nil {
					t.Fatalf("%s: no broker", w.name)
				}
				got = got || checkSharedLimits(t, w, b, serveArgs(t, b.Args))
				if e := envOf(b, "CHAT_BROKER_SHARED_LIMITS_PASSWORD_FILE"); tc.want && (e == nil || !strings.HasPrefix(e.Value, "/var/run/chat-broker/redis/")) {
					t.Errorf("no password file from the Secret: %v", b.Env)
				}
			}
			if got != tc.want {
				t.Errorf("shares its limits: %v, want %v", got, tc.want)
			}
		})
	}
}
