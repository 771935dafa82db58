package deploy_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/chat-broker/chat-broker/policy"
)

// brokerName is the broker container's name in every workload here.
const brokerName = "chat-broker"

// objects is one rendered set of manifests, indexed for the checks.
type objects struct {
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	serviceAccounts map[string]*corev1.ServiceAccount
	workloads       []workload
}

type workload struct {
	kind, name string
	spec       *corev1.PodSpec
	replicas   int32
}

func index(objs []runtime.Object) *objects {
	s := &objects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, serviceAccounts: map[string]*corev1.ServiceAccount{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			s.configMaps[o.Name] = o
		case *corev1.Secret:
			s.secrets[o.Name] = o
		case *corev1.ServiceAccount:
			s.serviceAccounts[o.Name] = o
		case *appsv1.Deployment:
			replicas := int32(1)
			if o.Spec.Replicas != nil {
				replicas = *o.Spec.Replicas
			}
			s.workloads = append(s.workloads, workload{"Deployment", o.Name, &o.Spec.Template.Spec, replicas})
		case *batchv1.Job:
			s.workloads = append(s.workloads, workload{"Job", o.Name, &o.Spec.Template.Spec, 1})
		}
	}
	return s
}

// checkObjects runs every check on a rendered set. known holds Secrets
// and ConfigMaps that the set references but another set ships (the Helm
// chart's example values use the base's caller Secret).
func checkObjects(t *testing.T, objs []runtime.Object, known ...runtime.Object) {
	t.Helper()
	s := index(objs)
	if len(s.workloads) == 0 {
		t.Fatal("no Deployment or Job")
	}
	for _, o := range known {
		switch o := o.(type) {
		case *corev1.Secret:
			if _, dup := s.secrets[o.Name]; !dup {
				s.secrets[o.Name] = o
			}
		case *corev1.ConfigMap:
			if _, dup := s.configMaps[o.Name]; !dup {
				s.configMaps[o.Name] = o
			}
		}
	}
	for _, w := range s.workloads {
		t.Run(w.kind+"/"+w.name, func(t *testing.T) { checkWorkload(t, s, w) })
	}
}

func checkWorkload(t *testing.T, s *objects, w workload) {
	spec := w.spec
	b, native := findContainer(spec.InitContainers, brokerName)
	if b == nil {
		b, _ = findContainer(spec.Containers, brokerName)
	}
	if b == nil {
		t.Fatalf("no %s container", brokerName)
	}
	if native && (b.RestartPolicy == nil || *b.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
		t.Errorf("%s is an init container without restartPolicy: Always: it would have to exit before the app starts", brokerName)
	}
	// A Deployment runs the broker as a native sidecar, so that it starts
	// before the app and stops after it. A Job may run it as a regular
	// container, and then must stop it with /quitquitquit (below).
	if w.kind == "Deployment" && !native {
		t.Errorf("%s is not a native sidecar (an initContainers entry with restartPolicy: Always)", brokerName)
	}

	flags := serveArgs(t, b.Args)
	// Loopback only: anyone who reaches the proxy spends the app's
	// identity, and the admin port can shut the broker down.
	for _, l := range []struct{ flag, addr string }{{"--listen", flags["listen"]}, {"--admin", adminAddr(flags)}} {
		if l.addr != "" && !isLoopback(l.addr) {
			t.Errorf("%s %s: not loopback; every listener here stays inside the pod", l.flag, l.addr)
		}
	}
	checkSecurity(t, spec, b)
	checkResources(t, b)
	checkProbes(t, b, flags, native)

	// The key: a Secret volume, mounted read-only into the broker alone;
	// or keyless, no key anywhere.
	var keyVol *corev1.Volume
	var keyMount *corev1.VolumeMount
	if flags["impersonate"] != "" {
		checkKeyless(t, s, spec, b, flags, policyText(t, s, spec, b, flags["policy"]))
	} else {
		keyVol, keyMount = volumeFor(t, spec, b, flags["key"], "--key")
	}
	if keyVol != nil {
		if keyVol.Secret == nil {
			t.Errorf("--key %s is on volume %q, which is not a Secret", flags["key"], keyVol.Name)
		} else {
			checkKeyIsolated(t, spec, keyVol.Name, keyVol.Secret.SecretName)
		}
		if !keyMount.ReadOnly {
			t.Errorf("the key volume %q is mounted read-write", keyVol.Name)
		}
	}

	// The policy: from a ConfigMap of the set, mounted as a folder (a
	// subPath mount never sees an update, so reload would not work), and
	// valid by the broker's own parser.
	checkSharedLimits(t, w, b, flags)
	pol := checkPolicy(t, s, spec, b, flags["policy"])

	apps := slices.DeleteFunc(slices.Clone(spec.Containers), func(c corev1.Container) bool { return c.Name == brokerName })
	if len(apps) == 0 {
		t.Fatal("no app container beside the broker")
	}
	socket := flags["socket"]
	if socket != "" {
		// The socket belongs to the broker's uid; the apps, each another
		// uid, reach it through the group: the pod's fsGroup, which every
		// container has as a supplementary group.
		mode, _ := strconv.ParseUint(flags["socket-mode"], 8, 32)
		if flags["socket-mode"] == "" {
			mode = 0o660
		}
		if mode&0o060 != 0o060 || mode&0o007 != 0 {
			t.Errorf("--socket-mode %s: want 0660, group read-write and nothing for others", flags["socket-mode"])
		}
		if spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil {
			t.Error("no pod fsGroup: the app containers could not open the socket")
		}
	}
	uids := map[int64]string{}
	for i := range apps {
		app := &apps[i]
		if socket != "" {
			checkSocketApp(t, spec, b, app, socket, pol, uids)
		} else {
			checkTCPApp(t, s, app, flags, pol)
		}
	}

	if w.kind == "Job" && !native {
		// A regular container would keep the pod alive after the work is
		// done: some container must POST /quitquitquit to the admin port.
		want := regexp.MustCompile(`curl\b[^\n]*-X POST[^\n]*http://` + regexp.QuoteMeta(adminAddr(flags)) + `/quitquitquit`)
		called := false
		for _, app := range apps {
			if want.MatchString(strings.Join(append(slices.Clone(app.Command), app.Args...), " ")) {
				called = true
			}
		}
		if !called {
			t.Errorf("the broker is a regular container of a Job, and no container calls POST http://%s/quitquitquit: the Job would never complete", adminAddr(flags))
		}
	}
}

func findContainer(cs []corev1.Container, name string) (*corev1.Container, bool) {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i], true
		}
	}
	return nil, false
}

// serveFlags are the flags of `chat-broker serve`, read from its -h:
// name → whether it is a boolean flag.
var serveFlags = sync.OnceValues(func() (map[string]bool, error) {
	if buildErr != nil {
		return nil, buildErr
	}
	out, err := exec.Command(brokerBin, "serve", "-h").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("chat-broker serve -h: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+) (\S*)\s*\[`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = m[2] == ""
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("no flags in chat-broker serve -h:\n%s", out)
	}
	return flags, nil
})

// serveArgs checks that args are a `chat-broker serve` command line that
// the binary accepts, and returns its flags (name → value).
func serveArgs(t *testing.T, args []string) map[string]string {
	t.Helper()
	known, err := serveFlags()
	if err != nil {
		t.Fatal(err)
	}
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("broker args %q: want serve and its flags", args)
	}
	flags := map[string]string{}
	for i := 1; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		isBool, ok := known[name]
		switch {
		case !strings.HasPrefix(args[i], "--"):
			t.Errorf("broker args %q: %q is not a --flag", args, args[i])
			continue
		case !ok:
			t.Errorf("broker args: --%s is not a chat-broker serve flag", name)
			continue
		case isBool && !hasValue:
			value = "true"
		case !hasValue && i+1 < len(args):
			i++
			value = args[i]
		}
		flags[name] = value
	}
	// The binary's own parser has the last word: it parses every flag
	// (values included) before it reaches the trailing -h, which then
	// prints help and exits 0. Any bad flag or value exits 2.
	if out, err := exec.Command(broker(t), append(slices.Clone(args), "-h")...).CombinedOutput(); err != nil {
		t.Errorf("chat-broker %s -h: %v\n%s", strings.Join(args, " "), err, out)
	}
	return flags
}

func adminAddr(flags map[string]string) string {
	if a, ok := flags["admin"]; ok {
		return a
	}
	return "127.0.0.1:9090"
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func checkSecurity(t *testing.T, spec *corev1.PodSpec, b *corev1.Container) {
	t.Helper()
	sc, psc := b.SecurityContext, spec.SecurityContext
	if sc == nil {
		t.Fatalf("%s has no securityContext", brokerName)
	}
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	isTrue := func(p *bool) bool { return p != nil && *p }
	if !isTrue(sc.RunAsNonRoot) && !isTrue(psc.RunAsNonRoot) {
		t.Error("securityContext: runAsNonRoot is not true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Error("securityContext: runAsUser is not 65532 (distroless nonroot)")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("securityContext: allowPrivilegeEscalation is not false")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Error("securityContext: readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Error("securityContext: capabilities do not drop ALL (and add none)")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("securityContext: seccompProfile is not RuntimeDefault")
	}
}

func checkResources(t *testing.T, b *corev1.Container) {
	t.Helper()
	r := b.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", r)
	}
}

// checkProbes: each probe runs the broker's own `wait` against its admin address (an
// httpGet probe only where the admin listener is not on loopback).
func checkProbes(t *testing.T, b *corev1.Container, flags map[string]string, native bool) {
	t.Helper()
	admin := adminAddr(flags)
	if native && (b.StartupProbe == nil || b.ReadinessProbe == nil) {
		t.Error("the sidecar needs a startupProbe (the app starts once it passes) and a readinessProbe")
	}
	if !native && b.ReadinessProbe == nil {
		t.Error("no readinessProbe")
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"startupProbe", b.StartupProbe}, {"readinessProbe", b.ReadinessProbe}, {"livenessProbe", b.LivenessProbe}} {
		if p.probe == nil {
			continue
		}
		h := p.probe.ProbeHandler
		switch {
		case h.Exec != nil:
			cmd := h.Exec.Command
			if len(cmd) < 2 || cmd[0] != "/chat-broker" || cmd[1] != "wait" {
				t.Errorf("%s runs %q; want /chat-broker wait --admin %s (the image has no shell or curl)", p.name, cmd, admin)
				continue
			}
			got, timeout := "127.0.0.1:9090", 30*time.Second
			for i := 2; i+1 < len(cmd); i++ {
				switch cmd[i] {
				case "--admin":
					got = cmd[i+1]
				case "--timeout":
					d, err := time.ParseDuration(cmd[i+1])
					if err != nil {
						t.Errorf("%s: --timeout %q: %v", p.name, cmd[i+1], err)
					}
					timeout = d
				}
			}
			if got != admin {
				t.Errorf("%s asks %s; the admin listener is %s", p.name, got, admin)
			}
			// The kubelet kills an exec probe after timeoutSeconds (default
			// 1): wait must give up before that, to report its reason.
			if limit := time.Duration(max(p.probe.TimeoutSeconds, 1)) * time.Second; timeout >= limit {
				t.Errorf("%s: wait --timeout %v is not below timeoutSeconds %v", p.name, timeout, limit)
			}
			if out, err := exec.Command(broker(t), append(slices.Clone(cmd[1:]), "-h")...).CombinedOutput(); err != nil {
				t.Errorf("%s: chat-broker %s -h: %v\n%s", p.name, strings.Join(cmd[1:], " "), err, out)
			}
		case h.HTTPGet != nil:
			// The kubelet sends httpGet probes to the pod IP: the admin
			// listener must bind it (which takes --unsafe-listen).
			if !slices.Contains([]string{"/healthz", "/readyz", "/startupz"}, h.HTTPGet.Path) {
				t.Errorf("%s: httpGet %s is not an admin health path", p.name, h.HTTPGet.Path)
			}
			if isLoopback(admin) {
				t.Errorf("%s: httpGet cannot reach an admin listener on loopback (%s): the kubelet probes the pod IP", p.name, admin)
			}
		default:
			t.Errorf("%s: want an exec probe running chat-broker wait", p.name)
		}
	}
}

// volumeFor returns the volume, and the broker's mount of it, holding the
// file at file.
func volumeFor(t *testing.T, spec *corev1.PodSpec, b *corev1.Container, file, flag string) (*corev1.Volume, *corev1.VolumeMount) {
	t.Helper()
	if file == "" {
		t.Errorf("%s is not set", flag)
		return nil, nil
	}
	var best *corev1.VolumeMount
	for i, m := range b.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &b.VolumeMounts[i]
		}
	}
	if best == nil {
		t.Errorf("%s %s: no volume is mounted there in %s", flag, file, brokerName)
		return nil, nil
	}
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == best.Name {
			return &spec.Volumes[i], best
		}
	}
	t.Errorf("%s %s: volume %q is not in the pod", flag, file, best.Name)
	return nil, nil
}

// checkKeyless checks a keyless broker (--impersonate): no --key, no
// Secret mounted into it (it needs none), and the pod runs as a
// Kubernetes service account of the set that GKE Workload Identity maps
// to a Google service account.
func checkKeyless(t *testing.T, s *objects, spec *corev1.PodSpec, b *corev1.Container, flags map[string]string, policyText string) {
	t.Helper()
	if flags["key"] != "" {
		t.Errorf("--impersonate with --key %s: serve refuses both; keyless has no key", flags["key"])
	}
	if sa := flags["impersonate"]; !strings.HasSuffix(sa, ".iam.gserviceaccount.com") || !strings.Contains(sa, "@") {
		t.Errorf("--impersonate %q: want the Chat app's service-account email", sa)
	}
	// The Secrets the broker still reads: its callers' secrets.
	holdsCallerSecret := func(m corev1.VolumeMount) bool {
		return slices.ContainsFunc(secretFiles(policyText), func(f string) bool {
			return strings.HasPrefix(f, strings.TrimSuffix(m.MountPath, "/")+"/")
		})
	}
	for _, m := range b.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && !holdsCallerSecret(m) {
				t.Errorf("keyless, %s still mounts Secret %q at %s", brokerName, v.Secret.SecretName, m.MountPath)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && strings.Contains(v.Secret.SecretName, "key") {
			t.Errorf("keyless, the pod still has the key Secret %q as volume %q", v.Secret.SecretName, v.Name)
		}
	}
	if spec.ServiceAccountName == "" {
		t.Fatal("keyless, the pod runs as the default Kubernetes service account: give it one annotated for Workload Identity")
	}
	ksa, ok := s.serviceAccounts[spec.ServiceAccountName]
	if !ok {
		t.Fatalf("keyless, the pod runs as Kubernetes service account %q, which the set does not ship", spec.ServiceAccountName)
	}
	if gsa := ksa.Annotations["iam.gke.io/gcp-service-account"]; !strings.HasSuffix(gsa, ".iam.gserviceaccount.com") {
		t.Errorf("service account %q: annotation iam.gke.io/gcp-service-account is %q, want the pod's Google service account", ksa.Name, gsa)
	}
}

// checkKeyIsolated: only the broker may mount the key's volume or read
// its Secret, in any way.
func checkKeyIsolated(t *testing.T, spec *corev1.PodSpec, volume, secret string) {
	t.Helper()
	var all []corev1.Container
	all = append(all, spec.InitContainers...)
	all = append(all, spec.Containers...)
	for _, e := range spec.EphemeralContainers {
		all = append(all, corev1.Container(e.EphemeralContainerCommon))
	}
	for _, c := range all {
		if c.Name == brokerName {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == volume {
				t.Errorf("container %q mounts the key volume %q: only %s may", c.Name, volume, brokerName)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == secret {
				t.Errorf("container %q reads the key Secret %q into $%s", c.Name, secret, e.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && e.SecretRef.Name == secret {
				t.Errorf("container %q reads the key Secret %q with envFrom", c.Name, secret)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == volume {
			continue
		}
		if v.Secret != nil && v.Secret.SecretName == secret {
			t.Errorf("volume %q holds the key Secret %q too", v.Name, secret)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == secret {
					t.Errorf("projected volume %q holds the key Secret %q too", v.Name, secret)
				}
			}
		}
	}
}

func checkPolicy(t *testing.T, s *objects, spec *corev1.PodSpec, b *corev1.Container, file string) *policy.Policy {
	t.Helper()
	text := policyText(t, s, spec, b, file)
	// A caller's secretFile: a file of a Secret, mounted read-only into
	// the broker.
	for _, f := range secretFiles(text) {
		if vol, m := volumeFor(t, spec, b, f, "identify.secretFile"); vol != nil {
			if vol.Secret == nil {
				t.Errorf("identify.secretFile %s is on volume %q, which is not a Secret", f, vol.Name)
			}
			if !m.ReadOnly {
				t.Errorf("identify.secretFile %s is on volume %q, mounted read-write", f, vol.Name)
			}
		}
	}
	pol, err := policy.Parse(path.Base(file), []byte(inBrokerFiles(t, s, spec, b, text)))
	if err != nil {
		t.Fatalf("the policy (--policy %s) does not parse:\n%v", file, err)
	}
	return pol
}

// policyText is the policy at file, from its ConfigMap volume, mounted as
// a folder.
func policyText(t *testing.T, s *objects, spec *corev1.PodSpec, b *corev1.Container, file string) string {
	t.Helper()
	vol, mount := volumeFor(t, spec, b, file, "--policy")
	if vol == nil {
		t.FailNow()
	}
	if mount.SubPath != "" || mount.SubPathExpr != "" {
		t.Errorf("the policy volume is mounted with a subPath, which never sees updates: the broker could not reload it")
	}
	if vol.ConfigMap == nil {
		t.Fatalf("--policy %s is on volume %q, which is not a ConfigMap", file, vol.Name)
	}
	cm, ok := s.configMaps[vol.ConfigMap.Name]
	if !ok {
		t.Fatalf("the policy ConfigMap %q is not among the manifests", vol.ConfigMap.Name)
	}
	key := strings.TrimPrefix(file, strings.TrimSuffix(mount.MountPath, "/")+"/")
	for _, item := range vol.ConfigMap.Items {
		if item.Path == key {
			key = item.Key
		}
	}
	text, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %q has no key %q for --policy %s", cm.Name, key, file)
	}
	return text
}

func envOf(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// checkTCPApp: the app calls the broker's loopback listener with its own
// caller secret, from its own Secret, which the policy knows.
func checkTCPApp(t *testing.T, s *objects, app *corev1.Container, flags map[string]string, pol *policy.Policy) {
	t.Helper()
	listen, ok := flags["listen"]
	if !ok {
		listen = "127.0.0.1:8080"
	}
	if u := envOf(app, "CHAT_BROKER_URL"); u == nil || u.Value != "http://"+listen {
		t.Errorf("container %q: CHAT_BROKER_URL %+v, want http://%s", app.Name, u, listen)
	}
	tok := envOf(app, "CHAT_BROKER_TOKEN")
	if tok == nil || tok.ValueFrom == nil || tok.ValueFrom.SecretKeyRef == nil {
		t.Errorf("container %q: CHAT_BROKER_TOKEN %+v; want it from the container's own Secret (secretKeyRef), never a literal", app.Name, tok)
		return
	}
	ref := tok.ValueFrom.SecretKeyRef
	sec, ok := s.secrets[ref.Name]
	if !ok {
		t.Errorf("container %q: CHAT_BROKER_TOKEN comes from Secret %q, which is not among the manifests", app.Name, ref.Name)
		return
	}
	value, ok := secretData(sec)[ref.Key]
	if !ok {
		t.Errorf("Secret %q has no key %q", sec.Name, ref.Key)
		return
	}
	c, ok := pol.CallerBySecret(string(value))
	if !ok {
		t.Errorf("container %q: the secret in Secret %q is no caller's: neither a secretFile the broker mounts nor a secretSHA256 in the policy", app.Name, sec.Name)
		return
	}
	t.Logf("container %q is caller %q", app.Name, c.Name)
}

// checkSocketApp: on the Unix socket each app is its own uid, which the
// policy names; it reaches the socket through the shared emptyDir.
func checkSocketApp(t *testing.T, spec *corev1.PodSpec, b *corev1.Container, app *corev1.Container, socket string, pol *policy.Policy, uids map[int64]string) {
	t.Helper()
	if e := envOf(app, "CHAT_BROKER_SOCKET"); e == nil || e.Value != socket {
		t.Errorf("container %q: CHAT_BROKER_SOCKET %+v, want %s", app.Name, e, socket)
	}
	if tok := envOf(app, "CHAT_BROKER_TOKEN"); tok != nil {
		t.Errorf("container %q has CHAT_BROKER_TOKEN: on the socket its uid identifies it", app.Name)
	}
	vol, _ := volumeFor(t, spec, b, socket, "--socket")
	if vol != nil {
		if vol.EmptyDir == nil {
			t.Errorf("the socket's volume %q is not an emptyDir", vol.Name)
		}
		mounted := false
		for _, m := range app.VolumeMounts {
			mounted = mounted || (m.Name == vol.Name && strings.HasPrefix(socket, strings.TrimSuffix(m.MountPath, "/")+"/"))
		}
		if !mounted {
			t.Errorf("container %q does not mount the socket's volume %q at the socket's folder", app.Name, vol.Name)
		}
	}
	sc := app.SecurityContext
	if sc == nil || sc.RunAsUser == nil {
		t.Errorf("container %q has no runAsUser: its uid is its identity on the socket", app.Name)
		return
	}
	uid := *sc.RunAsUser
	if other, dup := uids[uid]; dup {
		t.Errorf("containers %q and %q both run as uid %d: the broker could not tell them apart", other, app.Name, uid)
	}
	uids[uid] = app.Name
	if uid == *b.SecurityContext.RunAsUser {
		t.Errorf("container %q runs as the broker's uid %d", app.Name, uid)
	}
	var gid int64
	if sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	c, ok := pol.CallerByPeer(uint32(uid), uint32(gid))
	if !ok {
		t.Errorf("container %q runs as uid %d, which no caller's identify.unixUID names", app.Name, uid)
		return
	}
	t.Logf("container %q (uid %d) is caller %q", app.Name, uid, c.Name)
}

// secretFileRE finds the files a policy names in identify.secretFile.
var secretFileRE = regexp.MustCompile(`(\bsecretFile:\s*["']?)([^"'\s,}]+)`)

func secretFiles(policyText string) []string {
	var files []string
	for _, m := range secretFileRE.FindAllStringSubmatch(policyText, -1) {
		files = append(files, m[2])
	}
	return files
}

// inBrokerFiles lays out the broker's Secret volumes under a temporary
// root, from the set's Secrets, as the kubelet would mount them in its
// container, and returns policyText with each absolute secretFile moved
// under that root: the policy then parses here as it would in the pod.
// A secretFile on no mounted Secret of the set stays missing, and the
// parse says so.
func inBrokerFiles(t *testing.T, s *objects, spec *corev1.PodSpec, b *corev1.Container, policyText string) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range b.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || spec.Volumes[i].Secret == nil {
			continue
		}
		src := spec.Volumes[i].Secret
		sec, ok := s.secrets[src.SecretName]
		if !ok {
			continue
		}
		data := secretData(sec)
		files := data
		if len(src.Items) > 0 {
			files = map[string][]byte{}
			for _, it := range src.Items {
				files[it.Path] = data[it.Key]
			}
		}
		for name, v := range files {
			p := filepath.Join(root, m.MountPath, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, v, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return secretFileRE.ReplaceAllStringFunc(policyText, func(m string) string {
		sub := secretFileRE.FindStringSubmatch(m)
		if !path.IsAbs(sub[2]) {
			return m
		}
		return sub[1] + filepath.Join(root, sub[2])
	})
}

// secretData is a Secret's content: data, with stringData over it, as
// the API server merges them.
func secretData(sec *corev1.Secret) map[string][]byte {
	d := map[string][]byte{}
	for k, v := range sec.Data {
		d[k] = v
	}
	for k, v := range sec.StringData {
		d[k] = []byte(v)
	}
	return d
}
