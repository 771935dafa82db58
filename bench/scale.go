package bench

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// runPolicy compares the broker with a one-caller, one-rule policy and
// with cfg.Callers callers, each with its own secret and rule, under the
// same GET load at the highest concurrency, interleaved. With the large
// policy the secret changes on every request, so identification cannot
// ride on a warm cache line.
//
// The upstream is the TLS one, offering HTTP/2 as Google does (on
// loopback, no relay): the broker then shares its connections among all
// callers. Over HTTP/1.1 each caller would get connections of its own,
// and 10,000 callers in turn would measure connection set-up, not the
// policy.
func runPolicy(ctx context.Context, e *env, r *Report) error {
	up, certFile, _, err := e.startTLSUpstream("policy-tls")
	if err != nil {
		return err
	}
	defer up.stop()
	brokerEnv := append(slices.Clone(e.cfg.BrokerEnv), "SSL_CERT_FILE="+certFile)
	one, oneSecrets := scalePolicy(1)
	many, manySecrets := scalePolicy(e.cfg.Callers)
	type variant struct {
		callers int
		text    string
		secrets []string
		b       *brokerProc
	}
	vs := []*variant{{callers: 1, text: one, secrets: oneSecrets}, {callers: e.cfg.Callers, text: many, secrets: manySecrets}}
	var targets []*target
	for _, v := range vs {
		file, err := writePolicy(e.dir, fmt.Sprintf("policy-%d.yaml", v.callers), v.text)
		if err != nil {
			return err
		}
		if v.b, err = startBroker(e.broker, e.keyFile, file, "https://"+up.addr, brokerEnv); err != nil {
			return err
		}
		defer v.b.stop()
		if _, err := v.b.waitReadyz(ctx, 30*time.Second); err != nil {
			return err
		}
		b := v.b
		targets = append(targets, &target{name: fmt.Sprint(v.callers), addr: b.proxy, pids: func() []int { return []int{b.pid()} }})
	}
	c := slicesMax(e.cfg.Concurrency)
	e.progress.Printf("policy: 1 vs %d callers, GET c=%d", e.cfg.Callers, c)
	// A 5% difference is below this machine's noise in one slice: twice
	// the time, in twice the slices, alternating.
	cfg := e.cfg
	cfg.Duration, cfg.Rounds = 2*cfg.Duration, 2*cfg.Rounds
	res := measure(ctx, cfg, targets, func(t *target) Call {
		v := vs[0]
		if t == targets[1] {
			v = vs[1]
		}
		return Call{Method: opGet.method, URL: "http://" + t.addr + opGet.path, Bearers: v.secrets}
	}, c)
	for i, v := range vs {
		m := &res[i]
		row := PolicyRow{
			Callers: v.callers, PolicyBytes: len(v.text), ListeningMS: ms(v.b.startup), Concurrency: c,
			Requests: m.res.Requests, Errors: m.res.Errors, RPS: m.res.RPS(), Spread: m.spread(),
			P50: us(m.res.Percentile(0.5)), P99: us(m.res.Percentile(0.99)),
			CPUPer1k: cpuPer1k(m.cpu, m.res.Requests+m.res.Errors),
		}
		row.RSS, _, _ = memStatus(v.b.pid())
		if base := res[0].res.RPS(); base > 0 {
			row.VsOneRule = row.RPS / base
		}
		r.Policy = append(r.Policy, row)
	}
	if first := res[0].res.FirstErr + res[1].res.FirstErr; first != "" {
		return fmt.Errorf("errors under load: %s", first)
	}
	return nil
}
