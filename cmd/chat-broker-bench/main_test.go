package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/bench"
)

// TestMain lets this test binary play the bench's child processes (the
// upstream and the bare proxy), as the real binary does: the bench
// re-executes itself for them.
func TestMain(m *testing.M) {
	if child, code := bench.ChildMain(); child {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// The tool runs every section with --quick and reports sane numbers in
// each. Speed is never asserted: the targets' status is logged, not
// checked. It takes 15-25 s on 2 cores, so it runs when
// CHAT_BROKER_BENCH_TEST=1 (CI sets it); TestWithoutNginx runs the tool
// in every test run.
func TestQuickRun(t *testing.T) {
	if os.Getenv("CHAT_BROKER_BENCH_TEST") != "1" {
		t.Skip("the benchmark's quick run (every section, a dozen processes, 15-25 s): set CHAT_BROKER_BENCH_TEST=1 to run it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"--quick", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}
	var r bench.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not a report: %v\n%s", err, out.String())
	}
	if len(r.Errors) > 0 {
		t.Errorf("sections failed: %q", r.Errors)
	}
	if r.Machine.CPUs <= 0 || r.Machine.Go == "" || r.Machine.LoadStart == "" || r.Machine.LoadStart == "unknown" {
		t.Errorf("machine = %+v, want CPUs, Go version and load average", r.Machine)
	}

	quick := bench.Quick()
	nginx := bench.FindNginx() != ""
	wantTargets := []string{"direct", "broker", "bare-rp", "go-rp-tuned"}
	if nginx {
		wantTargets = append(wantTargets, "nginx")
	} else if !strings.Contains(strings.Join(r.Skipped, "\n"), "nginx: skipped: nginx not installed") {
		t.Errorf("nginx is absent but skipped = %q", r.Skipped)
	}
	for _, op := range []string{"GET messages.get", "POST messages.create"} {
		for _, c := range quick.Concurrency {
			for _, target := range wantTargets {
				row := findRow(r.Throughput, op, c, target)
				if row == nil {
					t.Errorf("throughput: no row for %s c=%d %s", op, c, target)
					continue
				}
				if row.Requests <= 0 || row.Errors != 0 || row.RPS <= 0 {
					t.Errorf("throughput %s c=%d %s: %d requests, %d errors (%s), %.0f req/s; want requests, no errors",
						op, c, target, row.Requests, row.Errors, row.FirstError, row.RPS)
				}
				if !(0 < row.P50 && row.P50 <= row.P90 && row.P90 <= row.P99) {
					t.Errorf("throughput %s c=%d %s: p50 %v p90 %v p99 %v, want 0 < p50 <= p90 <= p99", op, c, target, row.P50, row.P90, row.P99)
				}
				if target != "direct" && (row.RSS <= 0 || row.CPUPer1k < 0) {
					t.Errorf("throughput %s c=%d %s: rss %d, cpu %v: want the proxy's RSS and CPU", op, c, target, row.RSS, row.CPUPer1k)
				}
				if target == "broker" && (row.VsDirect <= 0 || row.VsTuned <= 0 || row.VsBare <= 0 || nginx && row.VsNginx <= 0) {
					t.Errorf("throughput %s c=%d broker: ratios %v ×direct, %v ×tuned, %v ×bare, %v ×nginx: want all", op, c, row.VsDirect, row.VsTuned, row.VsBare, row.VsNginx)
				}
			}
		}
	}

	if len(r.ProcessAllocs) != 2*len(quick.Concurrency) {
		t.Errorf("process allocations: %d rows, want %d", len(r.ProcessAllocs), 2*len(quick.Concurrency))
	}
	for _, a := range r.ProcessAllocs {
		if a.AllocsPerReq <= 0 || a.BytesPerReq <= 0 {
			t.Errorf("process allocations %+v: want positive", a)
		}
	}
	if len(r.Allocs) != 4 {
		t.Errorf("in-process allocations: %d rows, want 4 (broker and bare-rp, GET and POST)", len(r.Allocs))
	}
	for _, a := range r.Allocs {
		if a.Handler == "broker" && a.AllocsPerOp <= 0 {
			t.Errorf("in-process allocations %+v: want positive", a)
		}
	}

	if h := r.ColdHerd; h == nil {
		t.Error("no cold herd")
	} else {
		if h.Calls != quick.Herd || h.OK != h.Calls || len(h.Keys) != 5 {
			t.Errorf("cold herd: %d calls, %d ok (%s), %d keys; want %d calls all ok over 5 keys", h.Calls, h.OK, h.First, len(h.Keys), quick.Herd)
		}
		for _, k := range h.Keys {
			if k.Calls <= 0 || k.Mints <= 0 {
				t.Errorf("cold herd key %+v: want calls and at least one mint", k)
			}
		}
	}

	if len(r.Media) != 2 {
		t.Errorf("media: %d rows, want upload and download", len(r.Media))
	}
	for _, m := range r.Media {
		if m.Error != "" || m.Bytes != quick.MediaBytes || m.BrokerMBps <= 0 || m.DirectMBps <= 0 || m.RSSBefore <= 0 || m.PeakRSS <= 0 || m.Growth < 0 {
			t.Errorf("media %+v: want both transfers, RSS figures", m)
		}
	}

	if s := r.Startup; s == nil {
		t.Error("no start-up figures")
	} else if s.Runs != quick.StartupRuns || s.ListeningMedian <= 0 || s.ReadyMedian < s.ListeningMedian || s.IdleRSSMedian <= 0 {
		t.Errorf("start-up %+v: want %d runs, listening before ready, idle RSS", s, quick.StartupRuns)
	}

	if len(r.Policy) != 2 || r.Policy[0].Callers != 1 || r.Policy[1].Callers != quick.Callers {
		t.Errorf("policy rows %+v: want 1 caller and %d callers", r.Policy, quick.Callers)
	}
	for _, p := range r.Policy {
		if p.Requests <= 0 || p.Errors != 0 || p.RPS <= 0 {
			t.Errorf("policy %d callers: %d requests, %d errors: want requests, no errors", p.Callers, p.Requests, p.Errors)
		}
	}

	checkPod(t, r.Pod, quick)

	if len(r.Targets) != 14 {
		t.Errorf("%d targets checked, want 14", len(r.Targets))
	}
	for _, tc := range r.Targets {
		switch tc.Status {
		case "met", "missed":
		case "skipped":
			if nginx || !strings.Contains(tc.Name, "nginx") {
				t.Errorf("target %q skipped: every section ran", tc.Name)
			}
		default:
			t.Errorf("target %q: status %q", tc.Name, tc.Status)
		}
		t.Logf("target %-50s want %-12s got %s: %s (quick run: not a measurement)", tc.Name, tc.Want, tc.Got, tc.Status)
	}

	// The tables name every section.
	var text bytes.Buffer
	r.WriteText(&text)
	for _, head := range []string{"== throughput", "== allocations per request", "== cold herd", "== media", "== start-up and idle", "== policy size", "== pod", "== targets", "load average"} {
		if !strings.Contains(text.String(), head) {
			t.Errorf("table has no %q:\n%s", head, text.String())
		}
	}
}

// checkPod checks the pod section's rows: both targets under both loads,
// every call answered, and the broker on one HTTP/2 connection to the
// upstream (at most 2 handshakes in the steady load), on which the
// upstream saw every one of its requests arrive.
func checkPod(t *testing.T, p *bench.Pod, quick bench.Config) {
	t.Helper()
	if p == nil {
		t.Error("no pod section")
		return
	}
	if p.RelayLatencyMS <= 0 || p.IdleMS != float64(quick.PodIdle/time.Millisecond) {
		t.Errorf("pod: relay latency %v ms, idle %v ms: want a latency and the quick idle %v", p.RelayLatencyMS, p.IdleMS, quick.PodIdle)
	}
	want := []struct {
		load, target string
		c            int
	}{
		{"steady", "direct", slices.Max(quick.Concurrency)}, {"steady", "broker", slices.Max(quick.Concurrency)},
		{"burst", "direct", quick.PodBurst}, {"burst", "broker", quick.PodBurst},
	}
	if len(p.Rows) != len(want) {
		t.Fatalf("pod: %d rows, want %d: %+v", len(p.Rows), len(want), p.Rows)
	}
	for i, w := range want {
		row := p.Rows[i]
		if row.Load != w.load || row.Target != w.target || row.Concurrency != w.c {
			t.Errorf("pod row %d: %s %s c=%d, want %s %s c=%d", i, row.Load, row.Target, row.Concurrency, w.load, w.target, w.c)
		}
		if row.Requests <= 0 || row.Errors != 0 || !(0 < row.P50 && row.P50 <= row.P99 && row.P99 <= row.Max) {
			t.Errorf("pod %s %s: %d requests, %d errors (%s), p50 %v p99 %v max %v: want requests, no errors, ordered latencies",
				row.Load, row.Target, row.Requests, row.Errors, row.FirstError, row.P50, row.P99, row.Max)
		}
		if (w.load == "steady") != (row.RPS > 0) {
			t.Errorf("pod %s %s: %v req/s, want req/s for the steady load only", row.Load, row.Target, row.RPS)
		}
		// The steady load's counts include its warm-up's requests.
		if row.UpstreamH2 < row.Requests || row.UpstreamH1 != 0 {
			t.Errorf("pod %s %s: the upstream saw %d requests over HTTP/2 and %d over HTTP/1.x, want all (at least %d) over HTTP/2",
				row.Load, row.Target, row.UpstreamH2, row.UpstreamH1, row.Requests)
		}
		if w.target == "broker" && (row.P50VsDirect <= 0 || row.P99VsDirect <= 0) {
			t.Errorf("pod %s broker: ×p50 %v, ×p99 %v: want both ratios", row.Load, row.P50VsDirect, row.P99VsDirect)
		}
		t.Logf("pod %-6s %-6s handshakes: %d full, %d resumed", row.Load, row.Target, row.FullHandshakes, row.ResumedHandshakes)
	}
	if st := p.Rows[1]; st.FullHandshakes+st.ResumedHandshakes > 2 {
		t.Errorf("pod steady broker: %d full and %d resumed handshakes, want at most 2 in all: one HTTP/2 connection carries its load",
			st.FullHandshakes, st.ResumedHandshakes)
	}
	if st := p.Rows[0]; st.FullHandshakes < 1 {
		t.Errorf("pod steady direct: %d full handshakes, want at least the first connection's", st.FullHandshakes)
	}
}

func findRow(rows []bench.ThroughputRow, op string, c int, target string) *bench.ThroughputRow {
	for i := range rows {
		if rows[i].Op == op && rows[i].Concurrency == c && rows[i].Target == target {
			return &rows[i]
		}
	}
	return nil
}

// Bad flags are usage errors (exit code 2) that name the flag, before
// anything starts.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"unknown section", []string{"--only", "throughput,bogus"}, `unknown section "bogus"`},
		{"negative duration", []string{"--duration", "-1s"}, "--duration"},
		{"bad concurrency", []string{"--concurrency", "1,x"}, "--concurrency"},
		{"huge media", []string{"--media-mb", "5000"}, "--media-mb"},
		{"argument", []string{"extra"}, `unexpected argument "extra"`},
		{"negative pod idle", []string{"--pod-idle", "-1s"}, "--pod-idle"},
		{"huge pod burst", []string{"--pod-burst", "20000"}, "--pod-burst"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v (exit %d), want a usage error containing %q", tc.args, err, exitCode(err), tc.want)
			}
		})
	}
}

// Without nginx the nginx rows and targets are skipped, and the report
// says why.
func TestWithoutNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("builds chat-broker; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"--quick", "--only", "throughput", "--concurrency", "2", "--nginx", "off", "--quiet"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"nginx: skipped: --nginx off", "skipped  GET messages.get c=2 req/s vs nginx", "broker", "bare-rp"} {
		if !strings.Contains(text, want) {
			t.Errorf("output has no %q:\n%s", want, text)
		}
	}
	if regexp.MustCompile(`\snginx\s+\d+\s`).MatchString(text) {
		t.Errorf("output has an nginx row:\n%s", text)
	}
}
