package proxy_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
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

func (f *fakeTokens) Token(_ context.Context, subject string, scopes []chatapi.Scope) (broker.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, subject+"|"+chatapi.ScopeKey(scopes))
	return broker.Token{Scopes: scopes}, nil
}

// newStreamProxy puts the broker in front of upstream, with the test
// policy and a fake token source.
func newStreamProxy(t *testing.T, upstream http.Handler) string {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	pol, err := policy.Parse("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Config{Upstream: u, Policy: policy.NewStore(pol), Tokens: &fakeTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	return srv.URL
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

// Request bodies stream: the upstream reads the first part of a body the
// caller has not finished sending.
func TestRequestStreams(t *testing.T) {
	gotFirst := make(chan string, 1)
	base := newStreamProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		br := bufio.NewReader(r.Body)
		first, _ := br.ReadString('\n')
		gotFirst <- first
		rest, _ := io.ReadAll(br)
		if strings.Contains(r.Header.Get("Authorization"), notifierSecret) {
			t.Error("the caller's secret reached the upstream")
		}
		io.WriteString(w, first+string(rest)) // echo what arrived
	}))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/v1/spaces/AAAA/messages", pr)
	req.Header.Set("Authorization", "Bearer "+notifierSecret)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		done <- resp
	}()
	io.WriteString(pw, "{\"text\":\n")
	if first := <-gotFirst; first != "{\"text\":\n" {
		t.Errorf("upstream's first part = %q", first)
	}
	io.WriteString(pw, "\"x\"}")
	pw.Close()
	resp := <-done
	if resp == nil {
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "{\"text\":\n\"x\"}"; resp.StatusCode != 200 || string(body) != want {
		t.Errorf("upstream echoed %d %q, want 200 %q", resp.StatusCode, body, want)
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
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
