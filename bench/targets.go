package bench

import (
	"fmt"
	"slices"
	"strings"
)

// checkTargets compares the report with the targets. A target
// whose section did not run, or whose baseline is missing, is skipped.
func checkTargets(r *Report, cfg Config) []TargetCheck {
	var out []TargetCheck
	add := func(name, want, got string, ok, skip bool) {
		st := "missed"
		switch {
		case skip:
			st = "skipped"
		case ok:
			st = "met"
		}
		out = append(out, TargetCheck{Name: name, Want: want, Got: got, Status: st})
	}
	find := func(op string, c int, target string) *ThroughputRow {
		for i := range r.Throughput {
			t := &r.Throughput[i]
			if t.Op == op && t.Concurrency == c && t.Target == target {
				return t
			}
		}
		return nil
	}
	high := slicesMax(cfg.Concurrency)
	for _, o := range []op{opGet, opCreate} {
		br := find(o.name, high, "broker")
		for _, base := range []struct {
			name string
			min  float64
		}{{"go-rp-tuned", 0.9}, {"nginx", 0.6}} {
			name := fmt.Sprintf("%s c=%d req/s vs %s", o.name, high, base.name)
			want := fmt.Sprintf(">= %.1f×", base.min)
			b := find(o.name, high, base.name)
			if br == nil || b == nil || b.RPS == 0 {
				add(name, want, "not measured", false, true)
				continue
			}
			ratio := br.RPS / b.RPS
			add(name, want, fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", ratio, br.RPS, b.RPS), ratio >= base.min, false)
		}
		if !slices.Contains(cfg.Concurrency, 1) {
			continue
		}
		one := find(o.name, 1, "broker")
		if one == nil {
			add(o.name+" c=1 added latency", "p50 <= 150µs, p99 <= 1ms", "not measured", false, true)
			continue
		}
		add(o.name+" c=1 added p50 over direct", "<= 150µs", fmtSignedUs(one.AddedP50), one.AddedP50 <= 150, false)
		add(o.name+" c=1 added p99 over direct", "<= 1ms", fmtSignedUs(one.AddedP99), one.AddedP99 <= 1000, false)
	}

	if h := r.ColdHerd; h == nil {
		add("cold herd mints", "1 per (subject, scope set)", "not measured", false, true)
	} else {
		var got []string
		ok := h.Unknown == 0 && h.Errors == 0
		for _, k := range h.Keys {
			sub := k.Subject
			if sub == "" {
				sub = "app"
			}
			got = append(got, fmt.Sprintf("%s/%s: %d", sub, k.Scopes, k.Mints))
			ok = ok && k.Mints == 1
		}
		note := ""
		if h.Errors > 0 {
			note = fmt.Sprintf("; %d calls failed", h.Errors)
		}
		add(fmt.Sprintf("cold herd (%d calls) mints", h.Calls), "1 per (subject, scope set)", strings.Join(got, ", ")+note, ok, false)
	}

	const mediaMax = 16 << 20
	if len(r.Media) == 0 {
		add("media RSS growth", "<= 16 MiB", "not measured", false, true)
	}
	for _, m := range r.Media {
		add(fmt.Sprintf("media %s %s RSS growth", fmtMiB(m.Bytes), m.Direction), "<= 16 MiB", fmtMiB(m.Growth),
			m.Growth <= mediaMax && m.Error == "", m.BrokerMBps == 0 && m.Error == "")
	}

	if st := r.Startup; st == nil {
		add("idle RSS", "<= 20 MiB", "not measured", false, true)
		add("start to listening", "<= 100 ms", "not measured", false, true)
	} else {
		add("idle RSS (max of runs)", "<= 20 MiB", fmt.Sprintf("%s (median %s)", fmtMiB(st.IdleRSSMax), fmtMiB(st.IdleRSSMedian)), st.IdleRSSMax <= 20<<20, false)
		add("start to listening (median of runs)", "<= 100 ms", fmt.Sprintf("%.1f ms (max %.1f ms)", st.ListeningMedian, st.ListeningMax), st.ListeningMedian <= 100, false)
	}

	if len(r.Policy) < 2 {
		add("large policy throughput", "within 5% of 1 rule", "not measured", false, true)
	} else {
		p := r.Policy[1]
		add(fmt.Sprintf("%d-rule policy req/s vs 1 rule", p.Callers), ">= 0.95×", fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", p.VsOneRule, p.RPS, r.Policy[0].RPS), p.VsOneRule >= 0.95, false)
	}
	return out
}
