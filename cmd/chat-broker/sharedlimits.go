package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	flag "github.com/spf13/pflag"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/internal/shaping"
	"github.com/chat-broker/chat-broker/internal/sharedlimits"
	"github.com/chat-broker/chat-broker/proxy"
)

// sharedFlags are the --shared-limits flags of serve and demo: the
// per-space and per-project buckets and Chat's 429 holds on Redis,
// shared by every broker of the app (docs/shared-limits.md).
type sharedFlags struct {
	url          string
	passwordFile string
	brokers      int
	cluster      bool
	caFile       string
	prefix       string
	budget       time.Duration
	probe        time.Duration
}

func (f *sharedFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "shared-limits", "", "share the per-space and per-project limits and Chat's 429 holds with every broker of the app on Redis or Valkey at `URL` (redis://host:6379/0, rediss:// for TLS; no password in it); default off: each broker paces alone")
	fs.StringVar(&f.passwordFile, "shared-limits-password-file", "", "`file` holding the Redis password (AUTH), read at each new connection (so a rotated password needs no restart); its trailing newline is ignored")
	fs.BoolVar(&f.cluster, "shared-limits-cluster", false, "the URL is a Redis Cluster's node or discovery endpoint (Memorystore for Redis Cluster, ElastiCache in cluster mode); database 0 only")
	fs.StringVar(&f.caFile, "shared-limits-ca-file", "", "PEM `file` of the CAs that sign Redis's certificate (rediss://); default: the system's roots")
	fs.StringVar(&f.prefix, "shared-limits-app", "", "`name` that brokers sharing limits have in common, in every Redis key; default: the key's project_id (Chat's quotas are per project)")
	fs.IntVar(&f.brokers, "shared-limits-brokers", 1, "how many `brokers` share the limits (the app's replicas): while Redis is unreachable each paces at 1/N of the per-space and per-project limits; 1: each at the full limits")
	fs.DurationVar(&f.budget, "shared-limits-budget", shaping.DefaultSharedBudget, "how `long` one Redis round trip may take before the call is paced by this broker's own limits (until Redis answers again)")
	fs.DurationVar(&f.probe, "shared-limits-probe", time.Second, "how `often` a broker pacing alone after a Redis failure asks Redis again")
	setGroup(fs, groupLimits, "shared-limits", "shared-limits-cluster", "shared-limits-password-file", "shared-limits-ca-file", "shared-limits-app", "shared-limits-brokers", "shared-limits-budget", "shared-limits-probe")
}

func (f *sharedFlags) check() error {
	if f.url == "" {
		for name, set := range map[string]bool{"--shared-limits-password-file": f.passwordFile != "", "--shared-limits-ca-file": f.caFile != "", "--shared-limits-app": f.prefix != "", "--shared-limits-cluster": f.cluster, "--shared-limits-brokers": f.brokers > 1 || f.brokers < 0} {
			if set {
				return usageError("%s: needs --shared-limits URL", name)
			}
		}
		return nil
	}
	switch {
	case f.brokers < 1 || f.brokers > shaping.MaxSharedBrokers:
		return usageError("--shared-limits-brokers %d: want 1 to %d, the number of the app's replicas", f.brokers, shaping.MaxSharedBrokers)
	case strings.ContainsAny(f.prefix, "{}"):
		return usageError("--shared-limits-app %q: no { or } (the name is the hash tag that keeps an app's keys on one Redis Cluster node)", f.prefix)
	case f.budget <= 0:
		return usageError("--shared-limits-budget %v: want a duration above 0, e.g. 5ms", f.budget)
	case f.probe <= 0:
		return usageError("--shared-limits-probe %v: want a duration above 0, e.g. 1s", f.probe)
	}
	return nil
}

// open connects the shaping of pxCfg to Redis when --shared-limits is
// set, with app (the key's project) naming the keys unless
// --shared-limits-app does; close undoes it. Nothing dials yet: a
// broker starts, pacing alone, whether or not Redis is up.
func (f *sharedFlags) open(pxCfg *proxy.Config, app string, log *slog.Logger, reg prometheus.Registerer) (close func(), err error) {
	if f.url == "" {
		return func() {}, nil
	}
	if f.passwordFile != "" {
		if _, err := os.Stat(f.passwordFile); err != nil {
			return nil, usageError("--shared-limits-password-file: %v", err)
		}
	}
	if f.prefix != "" {
		app = f.prefix
	}
	sharedlimits.SetLogger(log)
	st, err := sharedlimits.Open(sharedlimits.Config{
		URL: f.url, PasswordFile: f.passwordFile, CAFile: f.caFile, Cluster: f.cluster,
		Prefix: sharedlimits.Prefix(app), Timeout: f.budget,
	})
	if err != nil {
		return nil, usageError("--shared-limits: %s", strings.TrimPrefix(err.Error(), "sharedlimits: "))
	}
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_broker_shared_limits_up",
		Help: "1 while calls are paced by the limits shared on Redis (--shared-limits), 0 while this broker paces alone after Redis failed."})
	up.Set(1)
	shared, err := shaping.NewShared(shaping.SharedConfig{
		Store: st, Budget: f.budget, Probe: f.probe, Logger: log, Brokers: f.brokers,
		OnChange: func(ok bool) {
			if ok {
				up.Set(1)
			} else {
				up.Set(0)
			}
		},
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	reg.MustRegister(up,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chat_broker_shared_limits_fallbacks_total",
			Help: "Times this broker fell back to its own limits because Redis failed or ran past --shared-limits-budget."},
			func() float64 { return float64(shared.Fallbacks()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chat_broker_shared_limits_errors_total",
			Help: "Redis calls that failed or ran past --shared-limits-budget."},
			func() float64 { return float64(shared.Errors()) }))
	pxCfg.Shaping.Shared = shared
	log.Info("shared limits: per-space and per-project limits and Chat's 429 holds are shared on Redis",
		"redis", st.Addr(), "app", app, "brokers", f.brokers, "budget", f.budget.String(), "password", f.passwordFile != "")
	return func() {
		shared.Close()
		st.Close()
	}, nil
}

// appProject names the Chat app whose quotas the brokers share: the
// key's project, or keyless, the project in the service account's email
// (NAME@PROJECT.iam.gserviceaccount.com), or the whole email where it
// names none, so that two apps never share a bucket by default.
func appProject(k *broker.Key, impersonate string) string {
	if k != nil {
		return k.ProjectID
	}
	_, domain, _ := strings.Cut(impersonate, "@")
	if project, ok := strings.CutSuffix(domain, ".iam.gserviceaccount.com"); ok && project != "" {
		return project
	}
	return impersonate
}
