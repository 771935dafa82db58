package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/emulator"
)

// Sections are the parts of a run, in the order they run.
var Sections = []string{"throughput", "allocs", "cold", "media", "startup", "policy", "pod"}

// Config bounds a Run. Quick and Full give the defaults.
type Config struct {
	// Duration is the length of one measurement (one target under one
	// load), split into Rounds interleaved slices.
	Duration time.Duration
	Rounds   int
	// Warmup is run once per target and load before measuring.
	Warmup time.Duration
	// Concurrency are the closed-loop worker counts, e.g. 1 and 32.
	Concurrency []int
	// MaxRequests bounds one measurement's request count.
	MaxRequests int
	// Sections to run; nil runs all.
	Sections []string
	// Herd is the number of concurrent first calls of the cold herd.
	Herd int
	// MediaBytes is the size of the media upload and download.
	MediaBytes int64
	// Callers is the size of the large policy.
	Callers int
	// StartupRuns fresh broker processes measure start-up and idle RSS,
	// each idle for IdleSettle before its RSS is read.
	StartupRuns int
	IdleSettle  time.Duration
	// PodIdle is how long the pod section leaves its targets idle before
	// the burst: in a full run longer than net/http's 90 s
	// IdleConnTimeout, so the burst finds its connections closed, as the
	// first calls after a quiet spell in a pod do. PodBurst is the number
	// of calls then fired at once.
	PodIdle  time.Duration
	PodBurst int
	// AllocIters are the in-process handler benchmark's iterations.
	AllocIters int
	// CPUProfile, if set, is where a CPU profile of the in-process
	// broker handler under parallel load is written.
	CPUProfile string
	// MemProfile, if set, is where the allocation profile of the same
	// load is written (with CPUProfile).
	MemProfile string
	Quick      bool

	// Self is this program's executable, re-run for the upstream and the
	// bare proxy (ChildMain). Required.
	Self string
	// BrokerBin is a built chat-broker; "" builds ./cmd/chat-broker of
	// moduleDir into a temporary directory.
	BrokerBin string
	moduleDir string
	// BrokerEnv are extra KEY=VALUE variables for the broker processes
	// only (GOGC=200, to try a setting), on top of this process's
	// environment less CHAT_BROKER_* variables.
	BrokerEnv []string
	// Nginx is the nginx binary; "" skips nginx (FindNginx finds it), and
	// the report says why: NoNginx, or "nginx not installed".
	Nginx   string
	NoNginx string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

// Full is the configuration of a real run.
func Full() Config {
	return Config{
		Duration: 5 * time.Second, Rounds: 5, Warmup: time.Second,
		Concurrency: []int{1, 32}, MaxRequests: 2_000_000,
		Herd: 1000, MediaBytes: 200 << 20, Callers: 10_000,
		StartupRuns: 10, IdleSettle: time.Second, AllocIters: 20_000,
		PodIdle: 2 * time.Minute, PodBurst: 100,
	}
}

// Quick is a configuration for tests: tiny durations and counts, the
// same sections.
func Quick() Config {
	return Config{
		Duration: 150 * time.Millisecond, Rounds: 1, Warmup: 30 * time.Millisecond,
		Concurrency: []int{1, 8}, MaxRequests: 20_000,
		Herd: 60, MediaBytes: 4 << 20, Callers: 500,
		StartupRuns: 2, IdleSettle: 50 * time.Millisecond, AllocIters: 200,
		PodIdle: 300 * time.Millisecond, PodBurst: 20,
		Quick: true,
	}
}

// env is what every section shares: the temporary directory, the
// emulator's token endpoint, the key, the policies' secrets, the fast
// upstream and the broker binary.
type env struct {
	cfg      Config
	dir      string
	emu      *emulator.Emulator
	tokenURL string
	keyFile  string
	keyJSON  []byte
	secrets  secrets
	policy   string // the realistic policy's file
	upstream string // host:port
	up       *child
	broker   string // binary
	progress *log.Logger
}

func (c *Config) check() error {
	switch {
	case c.Self == "":
		return errors.New("bench: Config.Self is required")
	case c.Duration <= 0 || c.Rounds <= 0 || c.Warmup < 0 || c.MaxRequests <= 0:
		return errors.New("bench: Duration, Rounds and MaxRequests must be positive")
	case len(c.Concurrency) == 0:
		return errors.New("bench: no concurrency")
	case c.Herd <= 0 || c.MediaBytes <= 0 || c.Callers <= 0 || c.StartupRuns <= 0 || c.AllocIters <= 0:
		return errors.New("bench: Herd, MediaBytes, Callers, StartupRuns and AllocIters must be positive")
	case c.PodIdle < 0 || c.PodBurst <= 0 || c.PodBurst > 10_000:
		return errors.New("bench: PodIdle must not be negative, PodBurst from 1 to 10000")
	}
	for _, n := range c.Concurrency {
		if n <= 0 || n > 1024 {
			return fmt.Errorf("bench: concurrency %d: want 1 to 1024", n)
		}
	}
	for _, s := range c.Sections {
		if !slices.Contains(Sections, s) {
			return fmt.Errorf("bench: unknown section %q: want one of %s", s, strings.Join(Sections, ", "))
		}
	}
	return nil
}

func (c *Config) runs(section string) bool {
	return len(c.Sections) == 0 || slices.Contains(c.Sections, section)
}

// Run measures what cfg asks for and returns the report. Failures of one
// section are recorded in the report and the others still run; the error
// is for failures of the shared set-up.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Report{Machine: machine(cfg.Nginx), Settings: Settings{
		DurationMS: ms(cfg.Duration), Rounds: cfg.Rounds, WarmupMS: ms(cfg.Warmup),
		Concurrency: cfg.Concurrency, MaxRequests: cfg.MaxRequests, Sections: cfg.Sections, Quick: cfg.Quick,
	}}
	if len(r.Settings.Sections) == 0 {
		r.Settings.Sections = Sections
	}
	e, cleanup, err := setUp(ctx, cfg)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	sections := []struct {
		name string
		run  func(context.Context, *env, *Report) error
	}{
		{"throughput", runThroughput},
		{"allocs", runAllocs},
		{"cold", runColdHerd},
		{"media", runMedia},
		{"startup", runStartup},
		{"policy", runPolicy},
		{"pod", runPod},
	}
	for _, s := range sections {
		if !cfg.runs(s.name) {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.progress.Printf("%s", s.name)
		if err := s.run(ctx, e, r); err != nil {
			r.Errors = append(r.Errors, s.name+": "+err.Error())
		}
	}
	r.Machine.LoadEnd = loadAvg()
	r.Targets = checkTargets(r, cfg)
	return r, nil
}

// setUp starts the emulator and the upstream, writes the key and the
// policy, and builds the broker. cleanup undoes whatever was done, even
// on error.
func setUp(ctx context.Context, cfg Config) (*env, func(), error) {
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	e := &env{cfg: cfg, progress: log.New(io.Discard, "", 0)}
	if cfg.Progress != nil {
		e.progress = log.New(cfg.Progress, "bench: ", log.Ltime|log.Lmicroseconds)
	}
	dir, err := os.MkdirTemp("", "chat-broker-bench-")
	if err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	e.dir = dir

	// The emulator serves tokens only. Delegation is on for the cold
	// herd's and the media upload's user tokens.
	e.emu, err = emulator.New(emulator.Config{Delegation: true})
	if err != nil {
		return nil, cleanup, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, cleanup, err
	}
	emuSrv := &http.Server{Handler: e.emu, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go emuSrv.Serve(l)
	undo = append(undo, func() { emuSrv.Close() })
	e.tokenURL = "http://" + l.Addr().String() + "/token"
	e.keyJSON = e.emu.ServiceAccountJSON(e.tokenURL)
	e.keyFile = filepath.Join(dir, "key.json")
	if err := os.WriteFile(e.keyFile, e.keyJSON, 0o600); err != nil {
		return nil, cleanup, err
	}
	e.secrets = newSecrets()
	if e.policy, err = writePolicy(dir, "policy.yaml", realisticPolicy(e.secrets)); err != nil {
		return nil, cleanup, err
	}

	e.progress.Printf("starting the fast upstream")
	up, addr, err := startServerChild(cfg.Self, roleUpstream, "")
	if err != nil {
		return nil, cleanup, fmt.Errorf("bench: upstream: %w", err)
	}
	undo = append(undo, up.stop)
	e.up, e.upstream = up, addr

	e.broker = cfg.BrokerBin
	if e.broker == "" {
		e.progress.Printf("building ./cmd/chat-broker")
		mod := cfg.moduleDir
		if mod == "" {
			if mod, err = moduleDir(ctx); err != nil {
				return nil, cleanup, err
			}
		}
		if e.broker, err = buildBroker(ctx, mod, dir); err != nil {
			return nil, cleanup, err
		}
	}
	return e, cleanup, nil
}

// startBroker starts the chat-broker binary with the realistic policy (or
// policyFile) in front of the fast upstream.
func (e *env) startBroker(policyFile string) (*brokerProc, error) {
	if policyFile == "" {
		policyFile = e.policy
	}
	return startBroker(e.broker, e.keyFile, policyFile, "http://"+e.upstream, e.cfg.BrokerEnv)
}

// startReadyBroker is startBroker with the realistic policy, waiting
// until the broker is ready; the caller stops it.
func (e *env) startReadyBroker(ctx context.Context) (*brokerProc, error) {
	b, err := e.startBroker("")
	if err != nil {
		return nil, err
	}
	if _, err := b.waitReadyz(ctx, 30*time.Second); err != nil {
		b.stop()
		return nil, err
	}
	return b, nil
}

// startTLSUpstream starts the fast upstream over TLS and HTTP/2, with a
// certificate made for it in a directory of its own under the run's, and
// returns it with the certificate's file (for the broker's SSL_CERT_FILE)
// and roots (for a client's).
func (e *env) startTLSUpstream(name string) (up *tlsUpstreamProc, certFile string, roots *x509.CertPool, err error) {
	dir := filepath.Join(e.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, "", nil, err
	}
	certFile, keyFile, roots, err := writeSelfSigned(dir)
	if err != nil {
		return nil, "", nil, fmt.Errorf("certificate: %w", err)
	}
	if up, err = startTLSUpstream(e.cfg.Self, certFile, keyFile); err != nil {
		return nil, "", nil, fmt.Errorf("tls upstream: %w", err)
	}
	return up, certFile, roots, nil
}

// wait returns after d or when ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func machine(nginx string) Machine {
	m := Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		CPUModel: "unknown", LoadStart: loadAvg(), Nginx: nginx,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
