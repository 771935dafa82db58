package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/bench"
)

// usageError is a bad flag: exit code 2, as flag.ExitOnError would.
type usageError struct{ error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat-broker-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		quick       = fs.Bool("quick", false, "short run with tiny durations and counts (for tests); numbers are rough")
		duration    = fs.Duration("duration", 0, "length of one measurement, split into --rounds interleaved slices (default 5s, 150ms with --quick)")
		rounds      = fs.Int("rounds", 0, "slices per measurement, the targets taking turns (default 5, 1 with --quick)")
		only        = fs.String("only", "", "comma-separated `sections` to run: "+strings.Join(bench.Sections, ","))
		asJSON      = fs.Bool("json", false, "print the report as JSON instead of tables")
		conc        = fs.String("concurrency", "", "comma-separated closed-loop worker `counts` (default 1,32; 1,8 with --quick)")
		herd        = fs.Int("herd", 0, "concurrent first calls of the cold herd (default 1000)")
		mediaMB     = fs.Int("media-mb", 0, "size of the media upload and download in MiB (default 200)")
		callers     = fs.Int("callers", 0, "callers of the large policy (default 10000)")
		startupRuns = fs.Int("startup-runs", 0, "fresh broker processes for start-up and idle RSS (default 10)")
		podIdle     = fs.Duration("pod-idle", 0, "how long the pod section idles before its burst; 0s bursts at once (default 2m, longer than net/http's 90s idle connection timeout; 300ms with --quick)")
		podBurst    = fs.Int("pod-burst", 0, "calls the pod section fires at once after the idle (default 100, 20 with --quick)")
		brokerBin   = fs.String("broker-bin", "", "a built chat-broker `binary`; default: ./cmd/chat-broker of the module in the current directory, built as deploy/Dockerfile builds it (CGO_ENABLED=0, -trimpath, -ldflags \"-s -w\")")
		nginx       = fs.String("nginx", "", "nginx `binary`, or \"off\"; default: nginx on PATH or /usr/sbin/nginx")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the in-process broker handler under load to `file` (allocs section)")
		memProfile  = fs.String("memprofile", "", "with --cpuprofile, also write the allocation profile of that load to `file`")
		brokerEnv   = fs.String("broker-env", "", "comma-separated `KEY=VALUE` variables for the broker processes only, e.g. GOGC=200, to try a setting")
		timeout     = fs.Duration("timeout", 15*time.Minute, "stop the whole run after this long")
		quiet       = fs.Bool("quiet", false, "no progress lines on stderr")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg := bench.Full()
	if *quick {
		cfg = bench.Quick()
	}
	setInt := func(name string, v int, dst *int) error {
		if v < 0 {
			return usageError{fmt.Errorf("--%s %d: want a positive number", name, v)}
		}
		if v > 0 {
			*dst = v
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    int
		dst  *int
	}{{"rounds", *rounds, &cfg.Rounds}, {"herd", *herd, &cfg.Herd}, {"callers", *callers, &cfg.Callers}, {"startup-runs", *startupRuns, &cfg.StartupRuns}, {"pod-burst", *podBurst, &cfg.PodBurst}} {
		if err := setInt(f.name, f.v, f.dst); err != nil {
			return err
		}
	}
	switch {
	case *duration < 0:
		return usageError{fmt.Errorf("--duration %v: want a positive duration", *duration)}
	case *duration > 0:
		cfg.Duration = *duration
		cfg.Warmup = min(cfg.Warmup, *duration/5)
	}
	if cfg.PodBurst > 10_000 {
		return usageError{fmt.Errorf("--pod-burst %d: want 1 to 10000", cfg.PodBurst)}
	}
	// --pod-idle 0s is a burst on warm connections: tell it from unset.
	podIdleSet := false
	fs.Visit(func(f *flag.Flag) { podIdleSet = podIdleSet || f.Name == "pod-idle" })
	switch {
	case *podIdle < 0:
		return usageError{fmt.Errorf("--pod-idle %v: want a duration of 0 or more", *podIdle)}
	case podIdleSet:
		cfg.PodIdle = *podIdle
	}
	if *mediaMB < 0 || *mediaMB > 1024 {
		return usageError{fmt.Errorf("--media-mb %d: want 1 to 1024", *mediaMB)}
	} else if *mediaMB > 0 {
		cfg.MediaBytes = int64(*mediaMB) << 20
	}
	if *conc != "" {
		cfg.Concurrency = nil
		for _, s := range strings.Split(*conc, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 || n > 1024 {
				return usageError{fmt.Errorf("--concurrency %q: want comma-separated counts from 1 to 1024", *conc)}
			}
			cfg.Concurrency = append(cfg.Concurrency, n)
		}
	}
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(bench.Sections, s) {
				return usageError{fmt.Errorf("--only %q: unknown section %q; want some of %s", *only, s, strings.Join(bench.Sections, ","))}
			}
			cfg.Sections = append(cfg.Sections, s)
		}
	}
	switch *nginx {
	case "":
		cfg.Nginx = bench.FindNginx()
	case "off":
		cfg.NoNginx = "--nginx off"
	default:
		cfg.Nginx = *nginx
	}
	cfg.BrokerBin, cfg.CPUProfile, cfg.MemProfile = *brokerBin, *cpuProfile, *memProfile
	if cfg.MemProfile != "" && cfg.CPUProfile == "" {
		return usageError{errors.New("--memprofile: needs --cpuprofile (it profiles the same load)")}
	}
	if *brokerEnv != "" {
		for _, kv := range strings.Split(*brokerEnv, ",") {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return usageError{fmt.Errorf("--broker-env %q: want KEY=VALUE pairs separated by commas", *brokerEnv)}
			}
			cfg.BrokerEnv = append(cfg.BrokerEnv, kv)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program's executable (it re-runs itself for the upstream and the bare proxy): %w", err)
	}
	cfg.Self = self
	if !*quiet {
		cfg.Progress = stderr
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: want a positive duration", *timeout)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	report, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	report.WriteText(stdout)
	fmt.Fprintf(stdout, "(run took %v)\n", time.Since(start).Round(time.Second))
	return nil
}
