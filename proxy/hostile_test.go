package proxy_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/testlog"
	"github.com/chat-broker/chat-broker/proxy"
)

// Two callers under different rules: alpha may touch only spaces/AAAA,
// beta only spaces/BBBB. A stray answer handed to the wrong one would
// cross a policy boundary.
const (
	alphaSecret = "alpha-secret-0123456789abcdef000"
	betaSecret  = "beta-secret-0123456789abcdef0000"
)

// alphaBetaMethods are what alpha and beta may call, each in its own space.
const alphaBetaMethods = "[spaces.messages.get, spaces.messages.create, spaces.messages.patch]"

var twoCallersPolicy = policyOf(
	callerEntry("alpha", alphaSecret, alphaBetaMethods, "[spaces/AAAA]", "[chat.bot]"),
	callerEntry("beta", betaSecret, alphaBetaMethods, "[spaces/BBBB]", "[chat.bot]"),
)

// hostile is an upstream that speaks HTTP/1.1 only (over TLS, ALPN
// http/1.1, or plain) and writes whatever bytes answer returns for each
// request: the way to make it misbehave on purpose. Every request carries
// the test's call id in X-Test-Call; a well-formed answer echoes it.
type hostile struct {
	url   string
	roots *x509.CertPool
	// closed receives when a connection that carried a request ends
	// from the broker's side (the upstream read EOF or an error on it).
	closed chan struct{}
	// done is closed at cleanup, ending hung exchanges.
	done chan struct{}

	mu    sync.Mutex
	reads map[string]int // requests read, by call id
	conns int
}

// then says what the upstream does after writing an answer.
type then int

const (
	keepServing then = iota
	// closeWrite ends the upstream's side (TLS close_notify, or a TCP
	// FIN) and waits for the broker to close its own.
	closeWrite
	// hang never writes and never closes.
	hang
)

func startHostile(t *testing.T, useTLS bool, answer func(id string) (string, then)) *hostile {
	t.Helper()
	h := &hostile{closed: make(chan struct{}, 64), done: make(chan struct{}), reads: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	if useTLS {
		// Borrow httptest's certificate (for 127.0.0.1) and its roots.
		donor := httptest.NewUnstartedServer(http.NotFoundHandler())
		donor.StartTLS()
		h.roots = x509.NewCertPool()
		h.roots.AddCert(donor.Certificate())
		cert := donor.TLS.Certificates[0]
		donor.Close()
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		h.url = "https://" + ln.Addr().String()
	}
	serveConns(t, ln, func(_ int, c net.Conn) {
		h.mu.Lock()
		h.conns++
		h.mu.Unlock()
		h.serve(c, answer)
	})
	// Cleanups run last first: this one unblocks hung exchanges before
	// serveConns's waits for them.
	t.Cleanup(func() { close(h.done) })
	return h
}

func (h *hostile) serve(c net.Conn, answer func(string) (string, then)) {
	br := bufio.NewReader(c)
	served := false
	defer func() {
		if !served { // a handshake the broker refused
			return
		}
		select {
		case h.closed <- struct{}{}:
		case <-h.done:
		}
	}()
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		served = true
		id := req.Header.Get("X-Test-Call")
		h.mu.Lock()
		h.reads[id]++
		h.mu.Unlock()
		out, next := answer(id)
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
		switch next {
		case closeWrite:
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			io.Copy(io.Discard, br) // until the broker closes its side
			return
		case hang:
			<-h.done
			return
		}
	}
}

func (h *hostile) readsOf(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads[id]
}

func (h *hostile) connCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns
}

// waitClosed waits until the broker has closed one of the upstream's
// connections.
func (h *hostile) waitClosed(t *testing.T, why string) {
	t.Helper()
	select {
	case <-h.closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("the broker kept the upstream connection open 10 s after %s", why)
	}
}

// answerFor is a well-formed answer to call id.
func answerFor(id string) string {
	body := `{"call":"` + id + `"}`
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// hostileCall is one call of the alternating callers.
type hostileCall struct {
	id, secret, verb, path, body string
}

// alternating returns n calls, alpha and beta taking turns, each in its
// own space, cycling through a read, a create (the broker adds a
// requestId) and a patch (never retried).
func alternating(n int) []hostileCall {
	var calls []hostileCall
	for i := range n {
		who, secret, space := "alpha", alphaSecret, "spaces/AAAA"
		if i%2 == 1 {
			who, secret, space = "beta", betaSecret, "spaces/BBBB"
		}
		c := hostileCall{id: fmt.Sprintf("%s-%d", who, i), secret: secret}
		switch i / 2 % 3 {
		case 0:
			c.verb, c.path = "GET", "/v1/"+space+"/messages/M1"
		case 1:
			c.verb, c.path, c.body = "POST", "/v1/"+space+"/messages", `{"text":"hi"}`
		case 2:
			c.verb, c.path, c.body = "PATCH", "/v1/"+space+"/messages/M1?updateMask=text", `{"text":"edited"}`
		}
		calls = append(calls, c)
	}
	return calls
}

// do sends c through the broker at base and returns the status and the
// call id the answer names ("" for none).
func (c hostileCall) do(t *testing.T, base string) (int, string) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, _ := http.NewRequest(c.verb, base+c.path, body)
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("X-Test-Call", c.id)
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := callerClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.verb, c.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var got struct{ Call string }
	json.Unmarshal(b, &got)
	return resp.StatusCode, got.Call
}

func hostileProxy(t *testing.T, h *hostile, opts ...func(*proxy.Config)) (string, *testlog.Buffer) {
	t.Helper()
	var audit testlog.Buffer
	return newProxyTo(t, h.url, twoCallersPolicy, append([]func(*proxy.Config){func(c *proxy.Config) {
		c.UpstreamTLS = &tls.Config{RootCAs: h.roots}
		c.Audit = slog.New(slog.NewJSONHandler(&audit, nil))
		clock := fakeclock.NewInstant()
		c.Now, c.After = clock.Now, clock.After
	}}, opts...)...), &audit
}

// An upstream that sends bytes nobody asked for, after or inside an
// answer, never gets them read as another call's answer: two callers
// under different rules take turns, and each only ever receives the
// answer to its own request. net/http closes the connection that carried
// the stray bytes (the test waits for that, so the next call cannot race
// it), and no write without a requestId reaches the upstream twice.
func TestHostileUpstreamAnswersNeverCross(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		answer func(id string) (string, then)
		// status is the answer's own status when it is not 200.
		status int
	}{
		{desc: "an unsolicited response after the answer", answer: func(id string) (string, then) {
			return answerFor(id) + answerFor(id), keepServing
		}},
		{desc: "204 with a body", status: 204, answer: func(id string) (string, then) {
			return "HTTP/1.1 204 No Content\r\nContent-Length: 60\r\n\r\n" + answerFor(id), keepServing
		}},
		{desc: "304 with a body", status: 304, answer: func(id string) (string, then) {
			return "HTTP/1.1 304 Not Modified\r\nContent-Length: 60\r\n\r\n" + answerFor(id), keepServing
		}},
		{desc: "a Content-Length shorter than the body", answer: func(id string) (string, then) {
			body := `{"call":"` + id + `"}`
			return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body) +
				`,"more":"the body goes on past its length"}` + answerFor(id), keepServing
		}},
		{desc: "408 and a close on the idle connection", answer: func(id string) (string, then) {
			return answerFor(id) + "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", closeWrite
		}},
		{desc: "close_notify on the idle connection", answer: func(id string) (string, then) {
			return answerFor(id), closeWrite
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := startHostile(t, true, tc.answer)
			base, _ := hostileProxy(t, h)
			calls := alternating(12)
			for _, c := range calls {
				code, got := c.do(t, base)
				want := cmpOr(tc.status, 200)
				switch {
				case code == 200 && got != c.id:
					t.Fatalf("%s (%s %s) received the answer to %q", c.id, c.verb, c.path, got)
				case code != want:
					t.Fatalf("%s (%s %s): status %d, want %d", c.id, c.verb, c.path, code, want)
				}
				if c.verb == "PATCH" {
					if n := h.readsOf(c.id); n != 1 {
						t.Errorf("%s: the upstream read the PATCH %d times, want 1", c.id, n)
					}
				}
				h.waitClosed(t, "it carried bytes nobody asked for")
			}
			// One connection per call, each dropped after its answer, and
			// the first one, whose handshake the broker refused when the
			// upstream did not select HTTP/2.
			if n := h.connCount(); n != len(calls)+1 {
				t.Errorf("the upstream saw %d connections for %d calls, want %d", n, len(calls), len(calls)+1)
			}
		})
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// The same hostile upstream under concurrent load from both callers, with
// no waiting for net/http to drop connections: an HTTP/1.1 client can
// reuse a connection before it notices stray bytes on it, so a caller may
// get an answer of its own connection's, but never one of the other
// caller's: each caller has connections of its own.
func TestHostileUpstreamConcurrentCallersStaySeparate(t *testing.T) {
	h := startHostile(t, true, func(id string) (string, then) { return answerFor(id) + answerFor(id), keepServing })
	base, _ := hostileProxy(t, h)
	var wg sync.WaitGroup
	var crossed, own atomic.Int64
	for g := range 6 {
		who, secret, space := "alpha", alphaSecret, "spaces/AAAA"
		if g%2 == 1 {
			who, secret, space = "beta", betaSecret, "spaces/BBBB"
		}
		wg.Go(func() {
			for i := range 60 {
				c := hostileCall{id: fmt.Sprintf("%s-g%d-%d", who, g, i), secret: secret, verb: "GET", path: "/v1/" + space + "/messages/M1"}
				code, got := c.do(t, base)
				switch {
				case code != 200:
					t.Errorf("%s: status %d", c.id, code)
					return
				case !strings.HasPrefix(got, who+"-"):
					crossed.Add(1)
					t.Errorf("%s received %q, an answer to the other caller", c.id, got)
				case got != c.id:
					own.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("720 calls: %d answers crossed callers, %d were a stray answer of the caller's own", crossed.Load(), own.Load())
}

// An upstream that never answers: the wait for the response head ends
// (Config.ResponseHeaderTimeout) with 504, never a resent write, and no
// attempt starts after the call's deadline, whether the call could be
// retried or not.
func TestHostileUpstreamHangs(t *testing.T) {
	h := startHostile(t, true, func(string) (string, then) { return "", hang })
	var audit testlog.Buffer
	base := newProxyTo(t, h.url, twoCallersPolicy, func(c *proxy.Config) {
		c.UpstreamTLS = &tls.Config{RootCAs: h.roots}
		c.Audit = slog.New(slog.NewJSONHandler(&audit, nil))
		c.ResponseHeaderTimeout = 200 * time.Millisecond
		c.Deadline = 100 * time.Millisecond // passed when the head times out
	})
	for _, c := range alternating(6) {
		code, _ := c.do(t, base)
		if code != http.StatusGatewayTimeout {
			t.Errorf("%s (%s): status %d, want 504", c.id, c.verb, code)
		}
		if n := h.readsOf(c.id); n != 1 {
			t.Errorf("%s (%s): the upstream read it %d times, want 1: no attempt after the deadline", c.id, c.verb, n)
		}
	}
	recs := audit.WaitFor(t, `"caller":"beta"`)
	if !strings.Contains(recs, `"reason":"UPSTREAM_TIMEOUT"`) || !strings.Contains(recs, `"attempts":1`) {
		t.Errorf("audit does not record a single timed-out attempt: %s", recs)
	}
}

// An answer with no final HTTP status (a status outside 100-599, a 101 no
// one asked for) is 502 for the caller, audited and counted like any
// other call.
func TestHostileUpstreamBadStatus(t *testing.T) {
	for _, status := range []string{"99 Too Low", "600 Too High", "101 Switching Protocols"} {
		t.Run(status, func(t *testing.T) {
			h := startHostile(t, true, func(id string) (string, then) {
				return "HTTP/1.1 " + status + "\r\nContent-Length: 2\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n{}", keepServing
			})
			base, audit := hostileProxy(t, h, func(c *proxy.Config) { c.Retries.MaxAttempts = 1 })
			c := hostileCall{id: "alpha-1", secret: alphaSecret, verb: "GET", path: "/v1/spaces/AAAA/messages/M1"}
			if code, _ := c.do(t, base); code != http.StatusBadGateway {
				t.Errorf("status %d, want 502", code)
			}
			rec := audit.WaitFor(t, `"msg":"call"`)
			if !strings.Contains(rec, `"status":502`) || !strings.Contains(rec, `"caller":"alpha"`) {
				t.Errorf("audit record: %s", rec)
			}
		})
	}
}

// When the upstream closes idle connections (Google's front end does,
// after a while) with a close_notify or a FIN, net/http notices while the
// connection idles: the next call of every kind, a PATCH included, goes
// out on a new connection in one attempt.
func TestUpstreamIdleCloseThenWrites(t *testing.T) {
	for _, useTLS := range []bool{true, false} {
		t.Run(map[bool]string{true: "tls", false: "tcp"}[useTLS], func(t *testing.T) {
			h := startHostile(t, useTLS, func(id string) (string, then) { return answerFor(id), closeWrite })
			base, audit := hostileProxy(t, h)
			for i, verb := range []string{"GET", "POST", "PATCH", "PATCH", "GET"} {
				c := hostileCall{id: fmt.Sprintf("alpha-%d", i), secret: alphaSecret, verb: verb, path: "/v1/spaces/AAAA/messages/M1"}
				switch verb {
				case "POST":
					c.path, c.body = "/v1/spaces/AAAA/messages", `{"text":"hi"}`
				case "PATCH":
					c.path, c.body = "/v1/spaces/AAAA/messages/M1?updateMask=text", `{"text":"edited"}`
				}
				if code, got := c.do(t, base); code != 200 || got != c.id {
					t.Fatalf("%s %s after the upstream closed its idle connection: %d %q", c.id, verb, code, got)
				}
				if n := h.readsOf(c.id); n != 1 {
					t.Errorf("%s: read %d times upstream, want 1", c.id, n)
				}
				h.waitClosed(t, "the upstream closed it")
			}
			if strings.Contains(audit.String(), `"attempts":2`) {
				t.Errorf("a call needed a second attempt: %s", audit.String())
			}
		})
	}
}

// The broker speaks HTTP/2 to a TLS upstream that offers it: 20 calls in
// flight at once share one connection (the upstream holds every answer
// until all 20 have arrived, so they are truly concurrent).
func TestUpstreamHTTP2Multiplexes(t *testing.T) {
	const n = 20
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var protos sync.Map
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		arrived.Done()
		select {
		case <-all:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"call":"`+r.Header.Get("X-Test-Call")+`"}`)
	}))
	up.EnableHTTP2 = true
	conns := countConns(up)
	up.StartTLS()
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	base := newProxyTo(t, up.URL, twoCallersPolicy, func(c *proxy.Config) { c.UpstreamTLS = &tls.Config{RootCAs: roots} })

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := hostileCall{id: fmt.Sprintf("alpha-%d", i), secret: alphaSecret, verb: "GET", path: "/v1/spaces/AAAA/messages/M1"}
			if i%2 == 1 {
				c = hostileCall{id: fmt.Sprintf("beta-%d", i), secret: betaSecret, verb: "GET", path: "/v1/spaces/BBBB/messages/M1"}
			}
			if code, got := c.do(t, base); code != 200 || got != c.id {
				t.Errorf("%s: %d %q", c.id, code, got)
			}
		})
	}
	wg.Wait()
	if got := conns.Load(); got != 1 {
		t.Errorf("%d concurrent calls opened %d upstream connections, want 1", n, got)
	}
	var seen []any
	protos.Range(func(k, _ any) bool { seen = append(seen, k); return true })
	if len(seen) != 1 || seen[0] != "HTTP/2.0" {
		t.Errorf("upstream saw %v, want only HTTP/2.0", seen)
	}
}
