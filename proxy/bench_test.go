package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// benchMessage is what the benchmark upstream answers: a small Chat
// message, as spaces.messages.get and spaces.messages.create return it.
const benchMessage = `{"name":"spaces/AAAA/messages/M1","sender":{"name":"users/123456789","type":"BOT"},` +
	`"createTime":"2026-03-01T12:00:00.000000Z","text":"deploy finished","formattedText":"deploy finished",` +
	`"thread":{"name":"spaces/AAAA/threads/T1"},"space":{"name":"spaces/AAAA","type":"ROOM"},"argumentText":"deploy finished"}`

// benchBody is the spaces.messages.create request body.
var benchBody = []byte(`{"text":"deploy finished"}`)

// benchUpstream is a fast Chat: it answers benchMessage to a get of
// spaces/AAAA/messages/M1 and to a create in spaces/AAAA, whose body it
// reads and drops.
func benchUpstream() http.Handler {
	answer := func(w http.ResponseWriter) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json; charset=UTF-8"}
		h["Content-Length"] = []string{strconv.Itoa(len(benchMessage))}
		io.WriteString(w, benchMessage)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/spaces/AAAA/messages/M1", func(w http.ResponseWriter, r *http.Request) {
		answer(w)
	})
	mux.HandleFunc("POST /v1/spaces/AAAA/messages", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		answer(w)
	})
	return mux
}

// benchTokens hands out the zero Token, recording nothing (fakeTokens
// would grow its record by one entry per call).
type benchTokens struct{}

func (benchTokens) Token(_ context.Context, _ string, scopes []chatapi.Scope) (proxy.Token, error) {
	return broker.Token{Scopes: scopes}, nil
}

// benchProxy is newProxyTo for a benchmark: the broker in front of the
// upstream at upstreamURL, with the test policy and a token source that
// returns at once. Audit records are encoded, as in production, and
// dropped.
func benchProxy(b *testing.B, upstreamURL string, opts ...func(*proxy.Config)) string {
	b.Helper()
	return newProxyTo(b, upstreamURL, testPolicy, append([]func(*proxy.Config){func(c *proxy.Config) {
		c.Tokens = benchTokens{}
		c.Audit = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}}, opts...)...)
}

// benchClient is the calling app: one client whose idle connections are
// enough for every goroutine of a parallel benchmark.
func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// benchCall is one call of a benchmark: a get of message M1, or with a
// body a create in spaces/AAAA, authenticated with secret unless it is
// "". It reads and closes the body and wants 200.
type benchCall struct {
	method, url, secret string
	body                []byte
}

func (c benchCall) do(client *http.Client) error {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, c.url, body)
	if err != nil {
		return err
	}
	if c.secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.secret)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: reading the body: %v", c.method, c.url, err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s %s: status %d, want 200: %s", c.method, c.url, resp.StatusCode, got)
	}
	return nil
}

// benchCalls are the calls BenchmarkForward and BenchmarkForwardParallel
// make, by sub-benchmark name.
func benchCalls(b *testing.B) []struct {
	name string
	call benchCall
} {
	up := httptest.NewServer(benchUpstream())
	b.Cleanup(up.Close)
	viaBroker := benchProxy(b, up.URL)
	const get, create = "/v1/spaces/AAAA/messages/M1", "/v1/spaces/AAAA/messages"
	return []struct {
		name string
		call benchCall
	}{
		{"direct", benchCall{method: "GET", url: up.URL + get}},
		{"broker/GET", benchCall{method: "GET", url: viaBroker + get, secret: notifierSecret}},
		{"broker/POST", benchCall{method: "POST", url: viaBroker + create, secret: notifierSecret, body: benchBody}},
	}
}

// BenchmarkForward measures the latency of one call at a time over
// loopback sockets: "direct" is the app calling a fast upstream itself,
// "broker/GET" and "broker/POST" the same calls through the broker
// (identify, route, decide, token, forward through net/http's Transport,
// audit). The broker's cost is the difference from "direct".
func BenchmarkForward(b *testing.B) {
	client := benchClient(b)
	for _, bc := range benchCalls(b) {
		b.Run(bc.name, func(b *testing.B) {
			if err := bc.call.do(client); err != nil { // connections up, token cached
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.call.do(client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkForwardParallel measures throughput with about 32 calls in
// flight at once: gets of a message, directly from a fast upstream and
// through the broker. Its ns/op is wall time per call across all of them.
func BenchmarkForwardParallel(b *testing.B) {
	client := benchClient(b)
	for _, bc := range benchCalls(b) {
		if bc.name != "direct" && bc.name != "broker/GET" {
			continue
		}
		b.Run(bc.name, func(b *testing.B) {
			if err := bc.call.do(client); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.call.do(client); err != nil {
						b.Error(err) // not Fatal: this is not the benchmark's goroutine
						return
					}
				}
			})
		})
	}
}

// BenchmarkExplain measures `chat-broker policy explain` for one allowed
// call: target checks, routing and the decision, without sending. Explain
// builds a router each time, which is most of the cost; the request path
// builds it once, in New.
func BenchmarkExplain(b *testing.B) {
	pol, err := policy.Parse("policy.yaml", []byte(testPolicy))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := proxy.Explain(pol, "notifier", "GET /v1/spaces/AAAA/messages/M1", "")
		if err != nil {
			b.Fatal(err)
		}
		if e.Decision != "allow" {
			b.Fatalf("decision %q (%s: %s), want allow", e.Decision, e.Reason, e.Message)
		}
	}
}

// BenchmarkForwardTLS measures calls to an upstream over TLS that offers
// HTTP/2, as Google's front end does: "direct" is the app calling it
// itself with a tuned net/http client (HTTP/2, one connection), "broker"
// the app calling the broker on loopback and the broker calling the
// upstream over HTTP/2. "seq" is one call at a time (latency), "par"
// about 32 in flight (throughput).
func BenchmarkForwardTLS(b *testing.B) {
	up := httptest.NewUnstartedServer(benchUpstream())
	up.EnableHTTP2 = true
	up.StartTLS()
	b.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	direct := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 256}
	b.Cleanup(direct.CloseIdleConnections)
	plain := benchClient(b)
	targets := []struct {
		name   string
		client *http.Client
		call   benchCall
	}{
		{"direct", &http.Client{Transport: direct}, benchCall{method: "GET", url: up.URL + "/v1/spaces/AAAA/messages/M1"}},
		{"broker", plain, benchCall{method: "GET", url: benchProxy(b, up.URL, func(c *proxy.Config) {
			c.UpstreamTLS = &tls.Config{RootCAs: roots}
		}) + "/v1/spaces/AAAA/messages/M1", secret: notifierSecret}},
	}
	for _, tg := range targets {
		if err := tg.call.do(tg.client); err != nil {
			b.Fatal(err)
		}
		b.Run(tg.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tg.call.do(tg.client); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tg.name+"/par", func(b *testing.B) {
			b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := tg.call.do(tg.client); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
