package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// podLatency is what the relay adds each way: a round trip of about
// 20 ms, which is what a pod sees to Google's front end from a cloud
// region, and far more than anything on loopback. At that distance what
// counts is how many round trips a call takes, so the handshakes a
// connection needs and whether connections are kept show as they would
// in production, where on bare loopback they are lost in the noise.
const podLatency = 10 * time.Millisecond

// podRelay names the relay in the report.
const podRelay = "toxiproxy v2.5.0 (in the bench process), a latency toxic upstream and downstream"

// startRelay starts a toxiproxy TCP relay in this process, listening on
// a free loopback port and forwarding bytes to upstream (host:port), each
// chunk delayed by latency in each direction. It never parses what it
// forwards: TLS goes end to end through it. It accepts a connection at
// once and dials the upstream then, so TCP's own handshake is not
// delayed: a new connection costs its TLS round trip, not the TCP one a
// real network would add. stop closes it and every connection it holds.
func startRelay(upstream string, latency time.Duration) (addr string, stop func(), err error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "chat-upstream", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", nil, fmt.Errorf("bench: relay: %w", err)
	}
	for _, stream := range []string{"upstream", "downstream"} {
		toxic := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`,
			stream, stream, latency.Milliseconds())
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			p.Stop()
			return "", nil, fmt.Errorf("bench: relay: %s latency: %w", stream, err)
		}
	}
	return p.Listen, p.Stop, nil
}

// appTransport is the transport an app using Google's Go client
// (google.golang.org/api) calls Chat with: a clone of
// http.DefaultTransport (HTTP/2 attempted, idle connections kept for
// 90 s) with 100 idle connections per host and an HTTP/2 health ping
// after 31 s without a frame. It trusts roots only. Like that client it
// keeps no TLS session cache, so every new connection is a full
// handshake; and like any fresh net/http Transport it dials a connection
// per call when many calls find none open.
func appTransport(roots *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // loopback only
	t.MaxIdleConnsPerHost = 100
	t.TLSClientConfig = &tls.Config{RootCAs: roots}
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 31 * time.Second}
	// As newClient: the same bytes on every path.
	t.DisableCompression = true
	return t
}

// runPod measures the broker closer to a pod than the other sections:
// the upstream speaks TLS and HTTP/2 (the tls-upstream child) behind a
// relay that puts it podLatency away each way, and the broker trusts its
// certificate through SSL_CERT_FILE, as it would a private CA. The same
// GET goes from an app straight to the relay (direct) and through the
// broker over loopback, first as steady closed-loop load at the highest
// concurrency, then, after both targets have idled for cfg.PodIdle, as
// cfg.PodBurst calls fired at once, one target after the other. The
// upstream's handshake counters, read around each target's turn, say
// what each way of calling costs in TLS handshakes.
func runPod(ctx context.Context, e *env, r *Report) error {
	up, certFile, roots, err := e.startTLSUpstream("pod")
	if err != nil {
		return err
	}
	defer up.stop()
	relay, stopRelay, err := startRelay(up.addr, podLatency)
	if err != nil {
		return err
	}
	defer stopRelay()
	env := append(slices.Clone(e.cfg.BrokerEnv), "SSL_CERT_FILE="+certFile)
	b, err := startBroker(e.broker, e.keyFile, e.policy, "https://"+relay, env)
	if err != nil {
		return err
	}
	defer b.stop()
	if _, err := b.waitReadyz(ctx, 30*time.Second); err != nil {
		return err
	}

	c := slicesMax(e.cfg.Concurrency)
	direct := &http.Client{
		Transport:     appTransport(roots),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	app := newClient(max(c, e.cfg.PodBurst))
	defer direct.CloseIdleConnections()
	defer app.CloseIdleConnections()
	targets := []*target{
		{name: "direct", addr: relay, client: direct, counts: up.counts},
		{name: "broker", addr: b.proxy, pids: func() []int { return []int{b.pid()} }, client: app, counts: up.counts},
	}
	call := func(t *target) Call {
		if t.name == "direct" {
			// The app's own token; the upstream checks none.
			return Call{Method: opGet.method, URL: "https://" + t.addr + opGet.path, Bearers: []string{staticToken}}
		}
		return Call{Method: opGet.method, URL: "http://" + t.addr + opGet.path, Bearers: []string{e.secrets.notifier}}
	}

	e.progress.Printf("pod: steady %s c=%d, upstream %v away each way", opGet.name, c, podLatency)
	steady := measure(ctx, e.cfg, targets, call, c)
	pod := &Pod{RelayLatencyMS: ms(podLatency), Relay: podRelay, IdleMS: ms(e.cfg.PodIdle)}
	var errs []error
	for i, t := range targets {
		m := &steady[i]
		if m.countErr != nil {
			errs = append(errs, m.countErr)
		}
		pod.Rows = append(pod.Rows, podRow("steady", t.name, c, m.res, m.upstream))
		pod.Rows[len(pod.Rows)-1].RPS = m.res.RPS()
	}

	// Both targets idle together; the bursts follow one another, each
	// between its own reads of the counters.
	e.progress.Printf("pod: idle %v, then %d calls at once", e.cfg.PodIdle, e.cfg.PodBurst)
	wait(ctx, e.cfg.PodIdle)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, t := range targets {
		before, err := t.counts()
		if err != nil {
			return err
		}
		c := call(t)
		res := fireAtOnce(ctx, t.client, e.cfg.PodBurst, func(int) Call { return c })
		after, err := settledCounts(ctx, t.counts)
		if err != nil {
			return err
		}
		pod.Rows = append(pod.Rows, podRow("burst", t.name, e.cfg.PodBurst, res, after.minus(before)))
	}
	for i := 0; i+1 < len(pod.Rows); i += 2 {
		d, br := &pod.Rows[i], &pod.Rows[i+1]
		if d.P50 > 0 && d.P99 > 0 {
			br.P50VsDirect, br.P99VsDirect = br.P50/d.P50, br.P99/d.P99
		}
	}
	r.Pod = pod
	for _, row := range pod.Rows {
		if row.FirstError != "" {
			errs = append(errs, fmt.Errorf("%s %s: %d errors, the first: %s", row.Load, row.Target, row.Errors, row.FirstError))
		}
	}
	return errors.Join(errs...)
}

// settledCounts reads counts until two reads 100 ms apart agree (at most
// 5 s). A net/http Transport without a dial limit goes on with the dials a
// burst started after every call has an answer, on connections other
// calls opened first: those handshakes belong to the burst that started
// them, not to whatever runs next.
func settledCounts(ctx context.Context, counts func() (upstreamCounts, error)) (upstreamCounts, error) {
	last, err := counts()
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline) && ctx.Err() == nil; {
		wait(ctx, 100*time.Millisecond)
		var now upstreamCounts
		if now, err = counts(); err == nil && now == last {
			break
		}
		last = now
	}
	return last, err
}

// podRow is one target's row under one load (rows are direct, then
// broker, for each load).
func podRow(load, target string, c int, res Result, n upstreamCounts) PodRow {
	return PodRow{
		Load: load, Target: target, Concurrency: c,
		Requests: res.Requests, Errors: res.Errors, FirstError: res.FirstErr,
		P50: us(res.Percentile(0.5)), P99: us(res.Percentile(0.99)), Max: us(res.Percentile(1)),
		FullHandshakes: n.Full, ResumedHandshakes: n.Resumed, UpstreamH2: n.H2, UpstreamH1: n.H1,
	}
}

// fireAtOnce sends call(0) … call(n-1) (the i-th with bearer i of its
// Bearers) from n goroutines released together, as many callers of an
// app that wake at once, and returns what they saw; Elapsed is from the
// release to the last answer.
func fireAtOnce(ctx context.Context, client *http.Client, n int, call func(i int) Call) Result {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		c := call(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			errs[i] = once(ctx, client, c, i)
			lat[i] = time.Since(t0)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res := Result{Elapsed: time.Since(t0)}
	for i := range n {
		if errs[i] != nil {
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = errs[i].Error()
			}
			continue
		}
		res.Requests++
		res.Latencies = append(res.Latencies, lat[i])
	}
	return res
}
