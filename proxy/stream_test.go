package proxy_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// fakeTokens hands out the zero Token and records what was asked for.
type fakeTokens struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeTokens) Token(_ context.Context, subject string, scopes []chatapi.Scope) (proxy.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, subject+"|"+chatapi.ScopeKey(scopes))
	return broker.Token{Scopes: scopes}, nil
}

// newStreamProxy puts the broker in front of upstream, with the test
// policy and a fake token source.
func newStreamProxy(t *testing.T, upstream http.Handler) string {
	t.Helper()
	return newStreamProxyWith(t, testPolicy, upstream)
}

// newStreamProxyWith is newStreamProxy with a chosen policy.
func newStreamProxyWith(t *testing.T, policyText string, upstream http.Handler, opts ...func(*proxy.Config)) string {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	return newProxyTo(t, up.URL, policyText, opts...)
}

// newProxyTo puts the broker in front of the upstream at upstreamURL,
// with a policy and a fake token source, and returns its URL.
func newProxyTo(t testing.TB, upstreamURL, policyText string, opts ...func(*proxy.Config)) string {
	t.Helper()
	u, _ := url.Parse(upstreamURL)
	pol, err := policy.Parse("policy.yaml", []byte(policyText))
	if err != nil {
		t.Fatal(err)
	}
	px, base := serveProxy(t, proxy.Config{Upstream: u, Policy: policy.NewStore(pol), Tokens: &fakeTokens{}}, opts...)
	t.Cleanup(px.CloseIdleConnections)
	return base
}

// reply is a response with its body read whole.
type reply struct {
	status int
	body   []byte
}

// sendAsync sends req from a goroutine of its own, so that the test can
// write the request body meanwhile. The channel yields the response, or
// is closed without one when the request fails (the test fails too).
func sendAsync(t *testing.T, req *http.Request) <-chan reply {
	done := make(chan reply, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- reply{resp.StatusCode, body}
	}()
	return done
}

// Responses stream: the caller reads the first part of a response while
// the upstream is still holding back the rest.
func TestResponseStreams(t *testing.T) {
	release := make(chan struct{})
	base := newStreamProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		<-release // the rest only after the caller has seen the first part
		io.WriteString(w, "second part\n")
	}))
	req, _ := http.NewRequest("GET", base+"/v1/spaces/AAAA/messages/M1", nil)
	req.Header.Set("Authorization", "Bearer "+notifierSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(release)
	if err != nil || line != "first part\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "second part\n" {
		t.Errorf("rest = %q", rest)
	}
}

// JSON request bodies are read whole before anything goes upstream (so a
// retry can send them again, and an oversized one is refused before
// Google sees it): the upstream gets the body intact, with its length,
// even when the caller sent it in pieces.
func TestJSONRequestBodyArrivesWhole(t *testing.T) {
	type seen struct {
		length int64
		te     []string
		body   string
	}
	got := make(chan seen, 1)
	base := newStreamProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(r.Header.Get("Authorization"), notifierSecret) {
			t.Error("the caller's secret reached the upstream")
		}
		got <- seen{r.ContentLength, r.TransferEncoding, string(body)}
		w.Write(body) // echo what arrived
	}))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/v1/spaces/AAAA/messages", pr)
	req.Header.Set("Authorization", "Bearer "+notifierSecret)
	req.Header.Set("Content-Type", "application/json")
	done := sendAsync(t, req)
	io.WriteString(pw, "{\"text\":\n")
	select {
	case s := <-got:
		t.Fatalf("the upstream got %q before the caller finished the body", s.body)
	default:
	}
	io.WriteString(pw, "\"x\"}")
	pw.Close()
	r, ok := <-done
	if !ok {
		return
	}
	want := "{\"text\":\n\"x\"}"
	if r.status != 200 || string(r.body) != want {
		t.Errorf("upstream echoed %d %q, want 200 %q", r.status, r.body, want)
	}
	if s := <-got; s.length != int64(len(want)) || len(s.te) != 0 {
		t.Errorf("upstream got Content-Length %d, Transfer-Encoding %v; want %d and none", s.length, s.te, len(want))
	}
}

// uploaderPolicy lets a caller upload media as a user (media.upload is
// user-only: domain-wide delegation with a subject).
var uploaderPolicy = policyOf(
	callerEntry("uploader", uploaderSecret, "[media.upload]", "[spaces/AAAA]", "[chat.messages.create]",
		`subjects: ["*@example.com"]`),
)

const uploaderSecret = "uploader-secret-0123456789abcdef"

// Media bodies stream: the upstream reads the first part of an upload the
// caller has not finished sending, so a 200 MB upload costs a buffer, not
// 200 MB; over HTTP/1.1 to a plain upstream and over HTTP/2 to a TLS one.
func TestMediaUploadStreams(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			gotFirst := make(chan string, 1)
			var proto atomic.Value
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				proto.Store(r.Proto)
				br := bufio.NewReader(r.Body)
				first, _ := br.ReadString('\n')
				gotFirst <- first
				rest, _ := io.ReadAll(br)
				io.WriteString(w, first+string(rest)) // echo what arrived
			}))
			var opts []func(*proxy.Config)
			if h2 {
				up.EnableHTTP2 = true
				up.StartTLS()
				roots := x509.NewCertPool()
				roots.AddCert(up.Certificate())
				opts = append(opts, func(c *proxy.Config) { c.UpstreamTLS = &tls.Config{RootCAs: roots} })
			} else {
				up.Start()
			}
			t.Cleanup(up.Close)
			base := newProxyTo(t, up.URL, uploaderPolicy, opts...)

			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", base+"/upload/v1/spaces/AAAA/attachments:upload?uploadType=media", pr)
			req.Header.Set("Authorization", "Bearer "+uploaderSecret)
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set(proxy.SubjectHeader, "alice@example.com")
			done := sendAsync(t, req)
			io.WriteString(pw, "first part\n")
			if first := <-gotFirst; first != "first part\n" {
				t.Errorf("upstream's first part = %q", first)
			}
			io.WriteString(pw, "second part")
			pw.Close()
			r, ok := <-done
			if !ok {
				return
			}
			if want := "first part\nsecond part"; r.status != 200 || string(r.body) != want {
				t.Errorf("upstream echoed %d %q, want 200 %q", r.status, r.body, want)
			}
			if want := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]; proto.Load() != want {
				t.Errorf("the upload went over %v, want %s", proto.Load(), want)
			}
		})
	}
}

// Google gzips error bodies for callers that accept gzip. The broker
// still recognizes Chat's approval 403 and the caller still gets the
// body as Google sent it.
func TestHintOnGzippedError(t *testing.T) {
	var zbody bytes.Buffer
	zw := gzip.NewWriter(&zbody)
	chatapi.NewError(403, chatapi.MsgAdminApproval).Write(&gzipBodyRecorder{w: zw})
	zw.Close()
	base := newStreamProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(403)
		w.Write(zbody.Bytes())
	}))
	req, _ := http.NewRequest("GET", base+"/v1/spaces/AAAA/messages", nil)
	req.Header.Set("Authorization", "Bearer "+notifierSecret)
	req.Header.Set("Accept-Encoding", "gzip") // as a client library does; Go then leaves the body compressed
	resp, got := roundTrip(t, req)
	if !bytes.Equal(got, zbody.Bytes()) {
		t.Errorf("the body changed on its way through")
	}
	if hint := resp.Header.Get(proxy.HintHeader); !strings.Contains(hint, "chat.app.messages.readonly") {
		t.Errorf("hint = %q, want one naming chat.app.messages.readonly", hint)
	}
}

// gzipBodyRecorder lets chatapi.Error.Write write into a gzip stream.
type gzipBodyRecorder struct {
	w io.Writer
	h http.Header
}

func (g *gzipBodyRecorder) Header() http.Header {
	if g.h == nil {
		g.h = http.Header{}
	}
	return g.h
}
func (g *gzipBodyRecorder) Write(b []byte) (int, error) { return g.w.Write(b) }
func (g *gzipBodyRecorder) WriteHeader(int)             {}
