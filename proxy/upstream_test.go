package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/testlog"
	"github.com/chat-broker/chat-broker/proxy"
)

// countConns counts the connections srv accepts.
func countConns(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func messageHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"name":"spaces/AAAA/messages/M1"}`)
}

// open sends one request as ops and returns the response unread.
func open(base, verb, path, body string) (*http.Response, error) {
	req, err := http.NewRequest(verb, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+opsSecret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return callerClient.Do(req)
}

// callerClient gives up after 30 s, so a call the broker wrongly holds
// (a back-off on a clock that never moves) fails its test instead of
// hanging it.
var callerClient = &http.Client{Timeout: 30 * time.Second}

// call sends one request as ops and returns its status and body.
func call(t *testing.T, base, verb, path, body string) (int, string) {
	t.Helper()
	resp, err := open(base, verb, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", verb, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", verb, path, err)
	}
	return resp.StatusCode, string(b)
}

// Calls reuse upstream connections: a hundred calls one after another
// open one connection, and 320 calls, 16 at a time, about 16. Go's
// Transport returns a connection to its idle pool from another goroutine
// after the body's end, so a caller's next call can start before that
// and dial one more now and then (a machine under load sees 17 or 18); a
// transport that does not keep 16 idle opens a new one for most calls.
func TestUpstreamConnectionsReused(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(messageHandler))
	conns := countConns(up)
	up.Start()
	t.Cleanup(up.Close)
	base := newProxyTo(t, up.URL, testPolicy)

	for i := range 100 {
		verb, path, body := "GET", "/v1/spaces/AAAA/messages/M1", ""
		if i%2 == 1 {
			verb, path, body = "POST", "/v1/spaces/AAAA/messages", `{"text":"hi"}`
		}
		if code, got := call(t, base, verb, path, body); code != 200 {
			t.Fatalf("call %d: %d %s", i, code, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("100 sequential calls opened %d upstream connections, want 1", n)
	}

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				resp, err := open(base, "GET", "/v1/spaces/AAAA/messages/M1", "")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n > 16+4 {
		t.Errorf("320 calls from 16 concurrent callers opened %d upstream connections in all, want about 16 (at most 20)", n)
	}
}

// rawUpstream serves each accepted connection with serve(n, conn), n
// counting from 1, and returns its URL.
func rawUpstream(t *testing.T, serve func(n int, c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, serve)
	return "http://" + ln.Addr().String()
}

// serveConns serves each connection ln accepts with serve(n, conn), n
// counting from 1, until the test ends; then it closes ln and every
// connection (the broker keeps idle ones open) and waits for serve.
func serveConns(t *testing.T, ln net.Listener, serve func(n int, c net.Conn)) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(n, c)
			}()
		}
	})
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

// A kept-alive connection that the upstream drops on receiving the next
// request, before answering, is the race of a server closing an idle
// connection as a request goes out. A read goes again on a new
// connection (net/http's Transport retries it within the attempt), a
// create that carries its requestId goes again as a second attempt (a
// reset, in the retry budget), and a write Chat would not deduplicate
// never goes twice: the caller gets 502, as its own client would have
// reported.
func TestUpstreamDropsReusedConnection(t *testing.T) {
	for _, tc := range []struct {
		verb, path, body string
		want             int
		wantSeen         int // requests the upstream read in all
		wantAttempts     int // of the second call
	}{
		{"GET", "/v1/spaces/AAAA/messages/M1", "", 200, 3, 1},
		{"POST", "/v1/spaces/AAAA/messages", `{"text":"hi"}`, 200, 3, 2},
		{"PATCH", "/v1/spaces/AAAA/messages/M1?updateMask=text", `{"text":"x"}`, 502, 2, 1},
	} {
		t.Run(tc.verb, func(t *testing.T) {
			var seen atomic.Int64
			u := rawUpstream(t, func(n int, c net.Conn) {
				br := bufio.NewReader(c)
				for i := 1; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					seen.Add(1)
					if n == 1 && i == 2 {
						return // drop the connection unanswered
					}
					io.WriteString(c, okResponse)
				}
			})
			clock := fakeclock.NewInstant()
			var audit testlog.Buffer
			base := newProxyTo(t, u, testPolicy, func(c *proxy.Config) {
				c.Now, c.After = clock.Now, clock.After
				c.Audit = slog.New(slog.NewJSONHandler(&audit, nil))
			})
			if code, got := call(t, base, tc.verb, tc.path, tc.body); code != 200 {
				t.Fatalf("first call: %d %s", code, got)
			}
			code, got := call(t, base, tc.verb, tc.path, tc.body)
			if code != tc.want {
				t.Errorf("second call: %d %s, want %d", code, got, tc.want)
			}
			if n := seen.Load(); n != int64(tc.wantSeen) {
				t.Errorf("upstream read %d requests, want %d", n, tc.wantSeen)
			}
			recs := strings.Split(strings.TrimSpace(audit.String()), "\n")
			if want := fmt.Sprintf(`"attempts":%d,`, tc.wantAttempts); len(recs) != 2 || !strings.Contains(recs[1], want) {
				t.Errorf("audit of the second call: %q, want %s", recs, want)
			}
		})
	}
}

// An answer that breaks off part way reaches the caller as broken, never
// as a shorter complete one, whether its length was declared or chunked.
func TestUpstreamResponseBreaksOff(t *testing.T) {
	for name, head := range map[string]string{
		"content-length": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":",
		"chunked":        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"name\":\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			u := rawUpstream(t, func(_ int, c net.Conn) {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, head)
			})
			var audit testlog.Buffer
			base := newProxyTo(t, u, testPolicy, func(c *proxy.Config) {
				c.Retries.MaxAttempts = 1
				c.Audit = slog.New(slog.NewJSONHandler(&audit, nil))
			})
			// A short answer of declared length is cut before its head
			// leaves the broker; a streamed one after its first part.
			resp, err := open(base, "GET", "/v1/spaces/AAAA/messages/M1", "")
			if err == nil {
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err == nil {
					t.Fatalf("the caller read %q to a clean end; want an error", body)
				}
				if string(body) != `{"name":` {
					t.Errorf("the caller got %q before the break, want what the upstream sent", body)
				}
			}
			rec := audit.WaitFor(t, `"msg":"call"`)
			if !strings.Contains(rec, `"reason":"UPSTREAM_RESPONSE_INCOMPLETE"`) {
				t.Errorf("audit record does not say the response broke off: %s", rec)
			}
		})
	}
}

// The upstream is reached over TLS with the roots given (the system's by
// default), speaking HTTP/2 when it offers it, as Google's front end
// does; a certificate those roots do not trust is an unreachable
// upstream, never a call sent anyway.
func TestUpstreamTLS(t *testing.T) {
	var protos sync.Map
	var resumed atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		if r.TLS != nil && r.TLS.DidResume {
			resumed.Add(1)
		}
		messageHandler(w, r)
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())

	base := newProxyTo(t, up.URL, testPolicy, func(c *proxy.Config) { c.UpstreamTLS = &tls.Config{RootCAs: roots} })
	for range 3 {
		if code, got := call(t, base, "GET", "/v1/spaces/AAAA/messages/M1", ""); code != 200 {
			t.Fatalf("over TLS: %d %s", code, got)
		}
	}
	// A new connection after Google closed the old ones resumes the TLS
	// session rather than starting over.
	up.CloseClientConnections()
	if code, got := call(t, base, "GET", "/v1/spaces/AAAA/messages/M1", ""); code != 200 {
		t.Fatalf("over TLS, after the upstream closed its connections: %d %s", code, got)
	}
	if resumed.Load() != 1 {
		t.Errorf("%d calls came on resumed TLS sessions, want 1 (the one on a new connection)", resumed.Load())
	}
	var seen []any
	protos.Range(func(k, _ any) bool { seen = append(seen, k); return true })
	if len(seen) != 1 || seen[0] != "HTTP/2.0" {
		t.Errorf("upstream saw protocols %v, want only HTTP/2.0", seen)
	}

	untrusting := newProxyTo(t, up.URL, testPolicy, func(c *proxy.Config) { c.Retries.MaxAttempts = 1 })
	code, got := call(t, untrusting, "GET", "/v1/spaces/AAAA/messages/M1", "")
	var e struct {
		Error struct {
			Details []struct{ Reason string } `json:"details"`
		} `json:"error"`
	}
	json.Unmarshal([]byte(got), &e)
	if code != http.StatusBadGateway || len(e.Error.Details) == 0 || e.Error.Details[0].Reason != "UPSTREAM_UNAVAILABLE" {
		t.Errorf("untrusted certificate: %d %s, want 502 UPSTREAM_UNAVAILABLE", code, got)
	}
}

// A caller that gives up ends its upstream exchange at once: the
// connection is closed (the upstream sees its request cancelled), not
// left waiting for an answer nobody will read, and the next call works.
func TestCallerLeavingClosesUpstreamExchange(t *testing.T) {
	cancelled := make(chan struct{})
	var first atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			<-r.Context().Done()
			close(cancelled)
			return
		}
		messageHandler(w, r)
	}))
	t.Cleanup(up.Close)
	base := newProxyTo(t, up.URL, testPolicy)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/spaces/AAAA/messages/M1", nil)
	req.Header.Set("Authorization", "Bearer "+opsSecret)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for !first.Load() {
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("caller's error = %v, want context.Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream exchange was not ended 10 s after the caller left")
	}
	if code, got := call(t, base, "GET", "/v1/spaces/AAAA/messages/M1", ""); code != 200 {
		t.Errorf("next call: %d %s", code, got)
	}
}

// Informational answers (103 Early Hints) before the real one are passed
// over; headers of the upstream connection (Connection, Keep-Alive,
// Proxy-Authenticate, ..., and any header Connection names) are not the
// caller's and are dropped.
func TestUpstreamInterimAndHopHeaders(t *testing.T) {
	u := rawUpstream(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"+
				"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=\"upstream\"\r\nX-Goog-Request-Id: r1\r\n"+
				"Connection: keep-alive, X-Hop-Secret\r\nConnection: x-other-hop\r\nX-Hop-Secret: 1\r\nX-Other-Hop: 2\r\n\r\n{}")
		}
	})
	base := newProxyTo(t, u, testPolicy)
	for range 2 {
		resp, err := open(base, "GET", "/v1/spaces/AAAA/messages/M1", "")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "{}" {
			t.Fatalf("got %d %q, want 200 {}", resp.StatusCode, body)
		}
		for _, h := range []string{"Keep-Alive", "Proxy-Authenticate", "Connection", "X-Hop-Secret", "X-Other-Hop"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("the caller got the upstream connection's %s: %q", h, v)
			}
		}
		if got := resp.Header.Get("X-Goog-Request-Id"); got != "r1" {
			t.Errorf("X-Goog-Request-Id = %q, want r1 (end-to-end headers pass)", got)
		}
	}
}

// An upstream cannot make the broker buffer a response head without
// end: past 1 MiB the call fails as an unreachable upstream.
func TestUpstreamHeadTooLarge(t *testing.T) {
	u := rawUpstream(t, func(_ int, c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		w := bufio.NewWriter(c)
		w.WriteString("HTTP/1.1 200 OK\r\n")
		for i := 0; w.Buffered()+w.Size() < 3<<20; i++ {
			fmt.Fprintf(w, "X-Filler-%d: %s\r\n", i, strings.Repeat("x", 1000))
			if w.Flush() != nil {
				return
			}
		}
	})
	base := newProxyTo(t, u, testPolicy, func(c *proxy.Config) { c.Retries.MaxAttempts = 1 })
	code, got := call(t, base, "GET", "/v1/spaces/AAAA/messages/M1", "")
	if code != http.StatusBadGateway || !strings.Contains(got, "UPSTREAM_UNAVAILABLE") {
		t.Errorf("2 MiB of response headers: %d %s, want 502 UPSTREAM_UNAVAILABLE", code, got)
	}
}
