package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// op is one Chat call under load.
type op struct {
	name, method, path string
	body               []byte
}

var (
	opGet    = op{"GET messages.get", http.MethodGet, "/v1/spaces/AAAA/messages/M1", nil}
	opCreate = op{"POST messages.create", http.MethodPost, "/v1/spaces/AAAA/messages", []byte(`{"text":"Hello from chat-broker-bench"}`)}
	opList   = op{"GET messages.list", http.MethodGet, "/v1/spaces/AAAA/messages", nil}
)

// target is something to send load to, and the processes whose CPU time
// counts as its cost.
type target struct {
	name   string
	addr   string // host:port
	pids   func() []int
	broker *brokerProc // for its /metrics; nil for others
	// client, if set, carries the load instead of a fresh newClient, and
	// measure leaves its connections open: the pod section bursts on
	// them after an idle spell.
	client *http.Client
	// counts, if set, reads the TLS upstream's counters. measure reads
	// them before and after each of the target's drives, one target at
	// a time, so that what they count is this target's doing.
	counts func() (upstreamCounts, error)
}

// measured is one target's merged slices.
type measured struct {
	res              Result
	cpu              time.Duration
	mallocs, bytes   float64
	haveAllocs       bool
	requestsForAlloc int
	sliceRPS         []float64
	// upstream is what target.counts counted over the warm-up and the
	// slices; countErr is the first failure to read them.
	upstream upstreamCounts
	countErr error
}

// drive is the package's drive, with t's upstream counts read around it into m.
func (m *measured) drive(ctx context.Context, t *target, client *http.Client, c Call, concurrency int, d time.Duration, limit int) Result {
	if t.counts == nil {
		return drive(ctx, client, c, concurrency, d, limit)
	}
	before, err0 := t.counts()
	res := drive(ctx, client, c, concurrency, d, limit)
	after, err1 := t.counts()
	if err := errors.Join(err0, err1); err != nil {
		if m.countErr == nil {
			m.countErr = err
		}
		return res
	}
	m.upstream.add(after.minus(before))
	return res
}

// spread is the range of the slices' req/s over their mean, in percent:
// how much the machine moved under this measurement.
func (m *measured) spread() float64 {
	if len(m.sliceRPS) < 2 {
		return 0
	}
	lo, hi, sum := m.sliceRPS[0], m.sliceRPS[0], 0.0
	for _, x := range m.sliceRPS {
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	if sum == 0 {
		return 0
	}
	return (hi - lo) / (sum / float64(len(m.sliceRPS))) * 100
}

// measure drives call(t) at concurrency c against every target: a
// warm-up each, then cfg.Rounds slices of cfg.Duration/cfg.Rounds, the
// targets taking turns in an order that rotates each round.
func measure(ctx context.Context, cfg Config, targets []*target, call func(*target) Call, c int) []measured {
	out := make([]measured, len(targets))
	clients := make([]*http.Client, len(targets))
	var own []*http.Client
	defer func() {
		for _, cl := range own {
			cl.CloseIdleConnections()
		}
	}()
	for i, t := range targets {
		clients[i] = t.client
		if clients[i] == nil {
			clients[i] = newClient(c)
			own = append(own, clients[i])
		}
		out[i].drive(ctx, t, clients[i], call(t), c, cfg.Warmup, cfg.MaxRequests)
	}
	before := make([][2]float64, len(targets))
	for i, t := range targets {
		if t.broker != nil {
			m, b, ok := t.broker.goMemstats()
			before[i], out[i].haveAllocs = [2]float64{m, b}, ok
		}
	}
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	for round := range cfg.Rounds {
		for k := range targets {
			i := (k + round) % len(targets)
			t := targets[i]
			var pids []int
			if t.pids != nil {
				pids = t.pids()
			}
			cpu0 := cpuTimeAll(pids)
			res := out[i].drive(ctx, t, clients[i], call(t), c, slice, cfg.MaxRequests/cfg.Rounds)
			out[i].cpu += cpuTimeAll(pids) - cpu0
			out[i].res.Add(res)
			out[i].sliceRPS = append(out[i].sliceRPS, res.RPS())
		}
	}
	for i, t := range targets {
		if t.broker != nil && out[i].haveAllocs {
			m, b, ok := t.broker.goMemstats()
			out[i].mallocs, out[i].bytes, out[i].haveAllocs = m-before[i][0], b-before[i][1], ok
			out[i].requestsForAlloc = out[i].res.Requests + out[i].res.Errors
		}
	}
	return out
}

func cpuPer1k(cpu time.Duration, requests int) float64 {
	if requests == 0 {
		return 0
	}
	return ms(cpu) / (float64(requests) / 1000)
}

// runThroughput measures GET and POST at each concurrency against the
// upstream directly, through the broker and through the baselines.
func runThroughput(ctx context.Context, e *env, r *Report) error {
	b, err := e.startReadyBroker(ctx)
	if err != nil {
		return err
	}
	defer b.stop()
	targets := []*target{
		{name: "direct", addr: e.upstream},
		{name: "broker", addr: b.proxy, pids: func() []int { return []int{b.pid()} }, broker: b},
	}
	bare, bareAddr, err := startServerChild(e.cfg.Self, roleBareProxy, "http://"+e.upstream)
	if err != nil {
		return fmt.Errorf("bare reverse proxy: %w", err)
	}
	defer bare.stop()
	targets = append(targets, &target{name: "bare-rp", addr: bareAddr, pids: func() []int { return []int{bare.pid()} }})
	tuned, tunedAddr, err := startServerChild(e.cfg.Self, roleTuned, "http://"+e.upstream)
	if err != nil {
		return fmt.Errorf("tuned reverse proxy: %w", err)
	}
	defer tuned.stop()
	targets = append(targets, &target{name: "go-rp-tuned", addr: tunedAddr, pids: func() []int { return []int{tuned.pid()} }})
	if e.cfg.Nginx == "" {
		why := e.cfg.NoNginx
		if why == "" {
			why = "nginx not installed"
		}
		r.Skipped = append(r.Skipped, "nginx: skipped: "+why)
	} else {
		n, err := startNginx(e.cfg.Nginx, e.upstream)
		if err != nil {
			r.Errors = append(r.Errors, "nginx: "+err.Error())
		} else {
			defer n.stop()
			targets = append(targets, &target{name: "nginx", addr: n.addr, pids: n.pids})
		}
	}

	for _, o := range []op{opGet, opCreate} {
		for _, c := range e.cfg.Concurrency {
			e.progress.Printf("throughput %s c=%d", o.name, c)
			res := measure(ctx, e.cfg, targets, func(t *target) Call {
				return Call{Method: o.method, URL: "http://" + t.addr + o.path, Body: o.body, Bearers: []string{e.secrets.notifier}}
			}, c)
			rows := make([]ThroughputRow, len(targets))
			byName := map[string]*ThroughputRow{}
			for i, t := range targets {
				m := &res[i]
				rows[i] = ThroughputRow{
					Op: o.name, Concurrency: c, Target: t.name,
					Requests: m.res.Requests, Errors: m.res.Errors, FirstError: m.res.FirstErr,
					RPS: m.res.RPS(), Spread: m.spread(),
					P50: us(m.res.Percentile(0.50)), P90: us(m.res.Percentile(0.90)), P99: us(m.res.Percentile(0.99)),
					CPUPer1k: cpuPer1k(m.cpu, m.res.Requests+m.res.Errors),
				}
				if t.pids != nil {
					rows[i].RSS, _, _ = memStatus(t.pids()[0])
					if t.name == "nginx" {
						// The worker does the work; the master idles.
						var rss int64
						for _, p := range t.pids() {
							x, _, _ := memStatus(p)
							rss += x
						}
						rows[i].RSS = rss
					}
				}
				byName[t.name] = &rows[i]
				if m.haveAllocs && m.requestsForAlloc > 0 {
					r.ProcessAllocs = append(r.ProcessAllocs, ProcessAllocs{
						Op: o.name, Concurrency: c, RequestsSample: m.requestsForAlloc,
						AllocsPerReq: m.mallocs / float64(m.requestsForAlloc),
						BytesPerReq:  m.bytes / float64(m.requestsForAlloc),
					})
				}
			}
			direct := byName["direct"]
			for i := range rows {
				row := &rows[i]
				if direct.RPS > 0 {
					row.VsDirect = row.RPS / direct.RPS
				}
				row.AddedP50, row.AddedP99 = row.P50-direct.P50, row.P99-direct.P99
			}
			if br := byName["broker"]; br != nil {
				if x := byName["go-rp-tuned"]; x != nil && x.RPS > 0 {
					br.VsTuned = br.RPS / x.RPS
				}
				if x := byName["bare-rp"]; x != nil && x.RPS > 0 {
					br.VsBare = br.RPS / x.RPS
				}
				if x := byName["nginx"]; x != nil && x.RPS > 0 {
					br.VsNginx = br.RPS / x.RPS
				}
			}
			r.Throughput = append(r.Throughput, rows...)
		}
	}
	return nil
}
