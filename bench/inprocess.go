package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// discardWriter is the least a ResponseWriter can be: it keeps the
// status and drops the body, so a handler's own allocations are what
// is counted.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Flush() {}

// newInProcessBroker wires the broker's request path in this process as
// cmd/chat-broker serve does: a real token broker (tokens from the
// emulator), the realistic policy, JSON audit records (to io.Discard)
// and Prometheus metrics, in front of the fast upstream.
func newInProcessBroker(e *env) (*proxy.Proxy, func(), error) {
	key, err := broker.ParseKey(e.keyJSON)
	if err != nil {
		return nil, nil, err
	}
	b, err := broker.New(broker.Config{Key: key})
	if err != nil {
		return nil, nil, err
	}
	pol, err := policy.Load(e.policy)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	up, _ := url.Parse("http://" + e.upstream)
	px, err := proxy.New(proxy.Config{
		Upstream: up,
		Policy:   policy.NewStore(pol),
		Tokens:   b.Source(),
		Audit:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics:  proxy.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return px, b.Close, nil
}

// request builds o as a server would hand it to a handler.
func (o op) request(bearer string) *http.Request {
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	req := httptest.NewRequest(o.method, o.path, body)
	req.Header.Set("Authorization", "Bearer "+bearer)
	if o.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// allocBench serves o n times through h and returns allocations and time
// per call, net of building the request and writer (measured the same
// way with a handler that does nothing).
func allocBench(h http.Handler, o op, bearer string, n int) (allocs, bytes, ns float64, err error) {
	serve := func(h http.Handler) int {
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, o.request(bearer))
		return w.code
	}
	for range min(n, 100) { // warm: tokens, connections, pools
		if code := serve(h); code != http.StatusOK {
			return 0, 0, 0, fmt.Errorf("%s: status %d", o.name, code)
		}
	}
	count := func(h http.Handler) (mallocs, total uint64, d time.Duration) {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		for range n {
			serve(h)
		}
		d = time.Since(t0)
		runtime.ReadMemStats(&m1)
		return m1.Mallocs - m0.Mallocs, m1.TotalAlloc - m0.TotalAlloc, d
	}
	baseM, baseB, baseD := count(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			io.Copy(io.Discard, r.Body)
		}
		w.WriteHeader(http.StatusOK)
	}))
	m, b, d := count(h)
	per := func(x, base float64) float64 { return max(0, x-base) / float64(n) }
	return per(float64(m), float64(baseM)), per(float64(b), float64(baseB)), per(float64(d), float64(baseD)), nil
}

// runAllocs measures allocations per request of the broker's handler and
// of the bare reverse proxy, in this process; with Config.CPUProfile it
// then profiles the broker's handler under parallel load.
func runAllocs(ctx context.Context, e *env, r *Report) error {
	px, closeBroker, err := newInProcessBroker(e)
	if err != nil {
		return err
	}
	defer closeBroker()
	up, _ := url.Parse("http://" + e.upstream)
	handlers := []struct {
		name string
		h    http.Handler
	}{{"broker", px}, {"bare-rp", bareProxy(up)}}
	for _, o := range []op{opGet, opCreate} {
		for _, h := range handlers {
			a, b, ns, err := allocBench(h.h, o, e.secrets.notifier, e.cfg.AllocIters)
			if err != nil {
				return fmt.Errorf("%s handler: %w", h.name, err)
			}
			r.Allocs = append(r.Allocs, AllocRow{Handler: h.name, Op: o.name, Iterations: e.cfg.AllocIters, AllocsPerOp: a, BytesPerOp: b, NsPerOp: ns})
		}
	}
	if e.cfg.CPUProfile != "" {
		e.progress.Printf("CPU profile of the in-process broker handler -> %s", e.cfg.CPUProfile)
		if err := profileHandler(ctx, px, e.secrets.notifier, e.cfg.CPUProfile, 2*e.cfg.Duration, slicesMax(e.cfg.Concurrency)); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if e.cfg.MemProfile != "" {
			if err := writeAllocProfile(e.cfg.MemProfile); err != nil {
				return fmt.Errorf("allocation profile: %w", err)
			}
		}
	}
	return nil
}

// profileHandler serves GETs and POSTs alternately through h from
// workers goroutines for d, under the CPU profiler.
func profileHandler(ctx context.Context, h http.Handler, bearer, path string, d time.Duration, workers int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				o := opGet
				if i%2 == 1 {
					o = opCreate
				}
				h.ServeHTTP(&discardWriter{h: http.Header{}}, o.request(bearer))
			}
		}()
	}
	wg.Wait()
	pprof.StopCPUProfile()
	return f.Close()
}

// writeAllocProfile writes the allocations sampled since the program
// started; the profiled load dominates them.
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func slicesMax(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
