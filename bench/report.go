package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Report is everything one Run measured. Latencies are in microseconds,
// memory in bytes, CPU in milliseconds; a section not run is nil or
// empty.
type Report struct {
	Machine    Machine         `json:"machine"`
	Settings   Settings        `json:"settings"`
	Throughput []ThroughputRow `json:"throughput,omitempty"`
	// ProcessAllocs are the broker process's own allocation counts per
	// request during the throughput runs (from its /metrics).
	ProcessAllocs []ProcessAllocs `json:"processAllocs,omitempty"`
	Allocs        []AllocRow      `json:"allocs,omitempty"`
	ColdHerd      *ColdHerd       `json:"coldHerd,omitempty"`
	Media         []MediaRow      `json:"media,omitempty"`
	Startup       *Startup        `json:"startup,omitempty"`
	Policy        []PolicyRow     `json:"policy,omitempty"`
	Pod           *Pod            `json:"pod,omitempty"`
	Targets       []TargetCheck   `json:"targets"`
	// Skipped says which measurements did not run, and why
	// ("nginx: skipped: nginx not installed").
	Skipped []string `json:"skipped,omitempty"`
	// Errors are failures of a section that did not stop the run.
	Errors []string `json:"errors,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpuModel"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	LoadStart  string `json:"loadAverageStart"` // /proc/loadavg's 1, 5 and 15 minute figures
	LoadEnd    string `json:"loadAverageEnd"`
	Nginx      string `json:"nginx,omitempty"` // its path, "" when not installed
}

// Settings are the bounds the run kept.
type Settings struct {
	DurationMS  float64  `json:"durationMs"` // per measurement
	Rounds      int      `json:"rounds"`     // interleaved slices per measurement
	WarmupMS    float64  `json:"warmupMs"`
	Concurrency []int    `json:"concurrency"`
	MaxRequests int      `json:"maxRequests"` // per measurement
	Sections    []string `json:"sections"`
	Quick       bool     `json:"quick"`
}

// ThroughputRow is one target under one load.
type ThroughputRow struct {
	Op          string  `json:"op"` // "GET messages.get" or "POST messages.create"
	Concurrency int     `json:"concurrency"`
	Target      string  `json:"target"` // direct, broker, bare-rp, go-rp-tuned, nginx
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	RPS         float64 `json:"rps"`
	Spread      float64 `json:"spreadPercent"` // (max-min)/mean of the slices' req/s
	P50         float64 `json:"p50Us"`
	P90         float64 `json:"p90Us"`
	P99         float64 `json:"p99Us"`
	AddedP50    float64 `json:"addedP50Us"` // over direct, same load
	AddedP99    float64 `json:"addedP99Us"`
	VsDirect    float64 `json:"vsDirect"`          // RPS / direct's RPS
	VsTuned     float64 `json:"vsTuned,omitempty"` // RPS / go-rp-tuned's: the target's baseline
	VsBare      float64 `json:"vsBare,omitempty"`  // RPS / bare-rp's: reported, no target
	VsNginx     float64 `json:"vsNginx,omitempty"`
	CPUPer1k    float64 `json:"cpuMsPer1kRequests,omitempty"` // the proxy process(es): user+system
	RSS         int64   `json:"rssBytes,omitempty"`           // the proxy process at the end of the load
}

// ProcessAllocs is the broker process's heap allocation per request under
// one load, everything included (inbound HTTP, proxy, outbound transport,
// audit log), from go_memstats_* on its /metrics.
type ProcessAllocs struct {
	Op             string  `json:"op"`
	Concurrency    int     `json:"concurrency"`
	AllocsPerReq   float64 `json:"allocsPerRequest"`
	BytesPerReq    float64 `json:"bytesPerRequest"`
	RequestsSample int     `json:"requests"`
}

// AllocRow is the in-process handler benchmark of one handler and call:
// ServeHTTP on a constructed request, net of the request's construction.
type AllocRow struct {
	Handler     string  `json:"handler"` // broker or bare-rp
	Op          string  `json:"op"`
	Iterations  int     `json:"iterations"`
	AllocsPerOp float64 `json:"allocsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	NsPerOp     float64 `json:"nsPerOp"`
}

// ColdHerd is many first calls at once on a freshly started broker.
type ColdHerd struct {
	Calls   int       `json:"calls"`
	OK      int       `json:"ok"`
	Errors  int       `json:"errors"`
	First   string    `json:"firstError,omitempty"`
	WallMS  float64   `json:"wallMs"`
	P50     float64   `json:"p50Us"`
	P99     float64   `json:"p99Us"`
	Max     float64   `json:"maxUs"`
	Keys    []HerdKey `json:"keys"`
	Unknown int       `json:"unexpectedMints"` // mints for a key no call asked for
}

// HerdKey is one (subject, scope set) of the herd.
type HerdKey struct {
	Subject string `json:"subject"` // "" for the app
	Scopes  string `json:"scopes"`
	Calls   int    `json:"calls"`
	Mints   int    `json:"mints"`
}

// MediaRow is one large body through the broker, and directly.
type MediaRow struct {
	Direction  string  `json:"direction"` // upload or download
	Method     string  `json:"method"`    // the Chat method used
	Bytes      int64   `json:"bytes"`
	DirectMBps float64 `json:"directMBps"`
	BrokerMBps float64 `json:"brokerMBps"`
	RSSBefore  int64   `json:"rssBeforeBytes"`
	PeakRSS    int64   `json:"peakRssBytes"` // VmHWM, reset just before
	RSSAfter   int64   `json:"rssAfterBytes"`
	Growth     int64   `json:"growthBytes"` // PeakRSS - RSSBefore
	Error      string  `json:"error,omitempty"`
}

// Startup is the broker's start-up and idle footprint over several
// fresh processes.
type Startup struct {
	Runs            int     `json:"runs"`
	ListeningMedian float64 `json:"listeningMedianMs"` // exec to the "serving" log line
	ListeningMax    float64 `json:"listeningMaxMs"`
	ReadyMedian     float64 `json:"readyMedianMs"` // exec to /readyz 200 (the first token minted)
	ReadyMax        float64 `json:"readyMaxMs"`
	IdleRSSMedian   int64   `json:"idleRssMedianBytes"`
	IdleRSSMax      int64   `json:"idleRssMaxBytes"`
	IdleSettleMS    float64 `json:"idleSettleMs"`
}

// PolicyRow is the broker under the same load with a policy of Callers
// callers.
type PolicyRow struct {
	Callers     int     `json:"callers"`
	PolicyBytes int     `json:"policyBytes"`
	ListeningMS float64 `json:"listeningMs"`
	Concurrency int     `json:"concurrency"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RPS         float64 `json:"rps"`
	Spread      float64 `json:"spreadPercent"`
	P50         float64 `json:"p50Us"`
	P99         float64 `json:"p99Us"`
	CPUPer1k    float64 `json:"cpuMsPer1kRequests"`
	RSS         int64   `json:"rssBytes"`
	VsOneRule   float64 `json:"vsOneRule"`
}

// Pod is the pod section: GET messages.get to an https upstream offering
// HTTP/2, put RelayLatencyMS away each way by a relay, from an app calling
// it directly and through the broker.
type Pod struct {
	RelayLatencyMS float64  `json:"relayLatencyMsEachWay"`
	Relay          string   `json:"relay"`
	IdleMS         float64  `json:"idleMs"` // before the burst
	Rows           []PodRow `json:"rows"`   // steady direct, broker; burst direct, broker
}

// PodRow is one target under one load of the pod section.
type PodRow struct {
	Load        string `json:"load"`   // steady (closed loop) or burst (calls at once after the idle)
	Target      string `json:"target"` // direct or broker
	Concurrency int    `json:"concurrency"`
	Requests    int    `json:"requests"`
	Errors      int    `json:"errors"`
	FirstError  string `json:"firstError,omitempty"`
	// RPS is for the steady load only.
	RPS float64 `json:"rps,omitempty"`
	P50 float64 `json:"p50Us"`
	P99 float64 `json:"p99Us"`
	Max float64 `json:"maxUs"`
	// P50VsDirect and P99VsDirect are the broker's over direct's, same
	// load (broker rows only).
	P50VsDirect float64 `json:"p50VsDirect,omitempty"`
	P99VsDirect float64 `json:"p99VsDirect,omitempty"`
	// What the upstream counted during the load, the steady load's
	// warm-up included: the TLS handshakes it completed, and the requests
	// it received over HTTP/2 and over HTTP/1.x.
	FullHandshakes    int `json:"fullHandshakes"`
	ResumedHandshakes int `json:"resumedHandshakes"`
	UpstreamH2        int `json:"upstreamHttp2Requests"`
	UpstreamH1        int `json:"upstreamHttp1Requests"`
}

// TargetCheck is one target of the issue and how this run did.
type TargetCheck struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Status string `json:"status"` // met, missed or skipped
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtUs(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v >= 10000 || v <= -10000:
		return fmt.Sprintf("%.1fms", v/1000)
	default:
		return fmt.Sprintf("%.0fµs", v)
	}
}

func fmtSignedUs(v float64) string {
	if v >= 0 {
		return "+" + fmtUs(v)
	}
	return "-" + fmtUs(-v)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

func fmtPct(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", v)
}

func fmtMiB(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// WriteText prints the report as tables.
func (r *Report) WriteText(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "chat-broker bench: %d CPUs (GOMAXPROCS %d), %s, %s %s\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.Go, m.OS)
	fmt.Fprintf(w, "load average (1/5/15 min): %s at start, %s at end; every process shares these CPUs\n", m.LoadStart, m.LoadEnd)
	s := r.Settings
	fmt.Fprintf(w, "settings: %v per measurement in %d interleaved slices, warm-up %v, concurrency %v, at most %d requests per measurement%s\n",
		time.Duration(s.DurationMS*float64(time.Millisecond)), s.Rounds, time.Duration(s.WarmupMS*float64(time.Millisecond)),
		s.Concurrency, s.MaxRequests, map[bool]string{true: " (--quick)"}[s.Quick])

	if len(r.Throughput) > 0 {
		fmt.Fprintln(w, "\n== throughput: closed loop, loopback; spread is the slices' req/s range over their mean; +p50/+p99 over direct; ×tuned, ×bare and ×nginx are the broker's req/s over theirs; cpu is the proxy process's user+system per 1,000 requests ==")
		fmt.Fprintln(w, "   go-rp-tuned: httputil.ReverseProxy + static header, 128 idle conns/host and a BufferPool (the baseline of the target); bare-rp: the same on http.DefaultTransport, which churns connections at c=32 (reported, no target)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "op\tc\ttarget\treq/s\tspread\tp50\tp90\tp99\t+p50\t+p99\t×direct\t×tuned\t×bare\t×nginx\tcpu/1k req\trss\terrors\t")
		for _, t := range r.Throughput {
			added50, added99 := "-", "-"
			if t.Target != "direct" {
				added50, added99 = fmtSignedUs(t.AddedP50), fmtSignedUs(t.AddedP99)
			}
			cpu := "-"
			if t.CPUPer1k > 0 {
				cpu = fmt.Sprintf("%.0f ms", t.CPUPer1k)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
				t.Op, t.Concurrency, t.Target, t.RPS, fmtPct(t.Spread), fmtUs(t.P50), fmtUs(t.P90), fmtUs(t.P99), added50, added99,
				fmtRatio(t.VsDirect), fmtRatio(t.VsTuned), fmtRatio(t.VsBare), fmtRatio(t.VsNginx), cpu, fmtMiB(t.RSS), t.Errors)
		}
		tw.Flush()
		for _, t := range r.Throughput {
			if t.FirstError != "" {
				fmt.Fprintf(w, "  %s c=%d %s: first error: %s\n", t.Op, t.Concurrency, t.Target, t.FirstError)
			}
		}
	}

	if len(r.ProcessAllocs) > 0 || len(r.Allocs) > 0 {
		fmt.Fprintln(w, "\n== allocations per request: the broker process as a whole (its /metrics, during the throughput runs), and ServeHTTP alone in this process net of building the request (ns/op includes the upstream round trip) ==")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "what\top\tallocs/req\tB/req\tns/op\tsample\t")
		for _, a := range r.ProcessAllocs {
			fmt.Fprintf(tw, "broker process (c=%d, /metrics)\t%s\t%.0f\t%.0f\t-\t%d req\t\n", a.Concurrency, a.Op, a.AllocsPerReq, a.BytesPerReq, a.RequestsSample)
		}
		for _, a := range r.Allocs {
			fmt.Fprintf(tw, "%s handler (in-process)\t%s\t%.1f\t%.0f\t%.0f\t%d ops\t\n", a.Handler, a.Op, a.AllocsPerOp, a.BytesPerOp, a.NsPerOp, a.Iterations)
		}
		tw.Flush()
	}

	if h := r.ColdHerd; h != nil {
		fmt.Fprintf(w, "\n== cold herd: %d concurrent first calls on a fresh broker process ==\n", h.Calls)
		fmt.Fprintf(w, "ok %d, errors %d, wall %.0f ms, latency p50 %s p99 %s max %s, unexpected mints %d\n",
			h.OK, h.Errors, h.WallMS, fmtUs(h.P50), fmtUs(h.P99), fmtUs(h.Max), h.Unknown)
		if h.First != "" {
			fmt.Fprintf(w, "  first error: %s\n", h.First)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "subject\tscopes\tcalls\tmints\t")
		for _, k := range h.Keys {
			sub := k.Subject
			if sub == "" {
				sub = "(app)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", sub, k.Scopes, k.Calls, k.Mints)
		}
		tw.Flush()
	}

	if len(r.Media) > 0 {
		fmt.Fprintln(w, "\n== media: one large body through a fresh broker process (RSS of the broker; peak is VmHWM reset before the transfer) ==")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "direction\tmethod\tsize\tdirect MB/s\tbroker MB/s\trss before\tpeak\tafter\tgrowth\t")
		for _, m := range r.Media {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n", m.Direction, m.Method, fmtMiB(m.Bytes),
				m.DirectMBps, m.BrokerMBps, fmtMiB(m.RSSBefore), fmtMiB(m.PeakRSS), fmtMiB(m.RSSAfter), fmtMiB(m.Growth))
		}
		tw.Flush()
		for _, m := range r.Media {
			if m.Error != "" {
				fmt.Fprintf(w, "  %s: %s\n", m.Direction, m.Error)
			}
		}
	}

	if st := r.Startup; st != nil {
		fmt.Fprintf(w, "\n== start-up and idle: %d fresh broker processes ==\n", st.Runs)
		fmt.Fprintf(w, "exec to listening: median %.1f ms, max %.1f ms; exec to ready (first token minted): median %.1f ms, max %.1f ms\n",
			st.ListeningMedian, st.ListeningMax, st.ReadyMedian, st.ReadyMax)
		fmt.Fprintf(w, "idle RSS %v after ready: median %s, max %s\n",
			time.Duration(st.IdleSettleMS*float64(time.Millisecond)), fmtMiB(st.IdleRSSMedian), fmtMiB(st.IdleRSSMax))
	}

	if len(r.Policy) > 0 {
		fmt.Fprintln(w, "\n== policy size: the same GET load, one caller and rule vs many callers each with its own secret and rule (secrets rotate per request), to a TLS upstream on loopback offering HTTP/2 ==")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "callers\tpolicy\tlistening\tc\treq/s\tspread\tp50\tp99\tcpu/1k req\trss\t×1-rule\terrors\t")
		for _, p := range r.Policy {
			fmt.Fprintf(tw, "%d\t%s\t%.1f ms\t%d\t%.0f\t%s\t%s\t%s\t%.0f ms\t%s\t%s\t%d\t\n", p.Callers, fmtMiB(int64(p.PolicyBytes)),
				p.ListeningMS, p.Concurrency, p.RPS, fmtPct(p.Spread), fmtUs(p.P50), fmtUs(p.P99), p.CPUPer1k, fmtMiB(p.RSS), fmtRatio(p.VsOneRule), p.Errors)
		}
		tw.Flush()
	}

	if p := r.Pod; p != nil {
		fmt.Fprintf(w, "\n== pod: GET messages.get to an https upstream offering HTTP/2, %.0f ms away each way through a relay; direct: the app with Google's Go client's transport; broker: the app over loopback HTTP/1.1 to chat-broker ==\n", p.RelayLatencyMS)
		fmt.Fprintf(w, "   steady: closed loop from fresh clients, handshakes counted from the warm-up; burst: calls fired at once after %v idle (net/http closes idle connections after 90s); ×p50/×p99: broker over direct; relay: %s\n",
			time.Duration(p.IdleMS*float64(time.Millisecond)), p.Relay)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "load\ttarget\tc\treq/s\tp50\tp99\tmax\t×p50\t×p99\tfull handshakes\tresumed\tupstream h2/h1 req\terrors\t")
		for _, row := range p.Rows {
			rps := "-"
			if row.RPS > 0 {
				rps = fmt.Sprintf("%.0f", row.RPS)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d/%d\t%d\t\n", row.Load, row.Target, row.Concurrency, rps,
				fmtUs(row.P50), fmtUs(row.P99), fmtUs(row.Max), fmtRatio(row.P50VsDirect), fmtRatio(row.P99VsDirect),
				row.FullHandshakes, row.ResumedHandshakes, row.UpstreamH2, row.UpstreamH1, row.Errors)
		}
		tw.Flush()
		for _, row := range p.Rows {
			if row.FirstError != "" {
				fmt.Fprintf(w, "  %s %s: first error: %s\n", row.Load, row.Target, row.FirstError)
			}
		}
	}

	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\n== targets ==")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\ttarget\twant\tgot")
		for _, t := range r.Targets {
			mark := map[string]string{"met": "ok", "missed": "MISSED", "skipped": "skipped"}[t.Status]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mark, t.Name, t.Want, t.Got)
		}
		tw.Flush()
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "%s\n", s)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}
