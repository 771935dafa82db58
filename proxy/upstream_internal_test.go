package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/policy"
)

// An upstream that takes the request and never answers holds a call no
// longer than the head timeout; neither does one that stops reading the
// request part way.
func TestH1ClientHeadTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	u, _ := url.Parse("http://" + ln.Addr().String())
	c := newH1Client(u, nil)
	c.headerTimeout = 50 * time.Millisecond
	for _, size := range []int{0, 64 << 20} { // 64 MiB is more than the socket buffers hold
		req := &http.Request{Method: "POST", URL: &url.URL{Path: "/v1/spaces/AAAA/messages"}, Host: u.Host, Header: http.Header{}}
		errc := make(chan error, 1)
		go func() {
			_, err := c.do(context.Background(), req, make([]byte, size))
			errc <- err
		}()
		select {
		case err := <-errc:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("body %d bytes: err = %v, want a timeout", size, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("body %d bytes: no answer and no timeout after 10 s (head timeout 50 ms)", size)
		}
	}
}

// writeRequest refuses a header that would split the request.
func TestWriteRequestRefusesSplitting(t *testing.T) {
	for _, h := range []http.Header{
		{"X-A": {"ok\r\nX-Injected: 1"}},
		{"Bad Name": {"v"}},
		{"X-A": {"ok\nmore"}},
	} {
		req := &http.Request{Method: "GET", URL: &url.URL{Path: "/v1/spaces/AAAA"}, Host: "example.com", Header: h}
		w := bufio.NewWriter(nil)
		var bad *unsendableError
		if err := writeRequest(w, req, nil); !errors.As(err, &bad) {
			t.Errorf("header %q: err = %v, want an unsendableError (never retried)", h, err)
		}
	}
}

// Behind an HTTP proxy (HTTPS_PROXY) every call goes through net/http's
// Transport, which speaks CONNECT; without one (or for a host NO_PROXY
// names) the broker's own client carries the calls.
func TestUpstreamClientFollowsProxyEnvironment(t *testing.T) {
	up, _ := url.Parse("https://chat.googleapis.com")
	newProxy := func() *Proxy {
		t.Helper()
		p, err := New(Config{Upstream: up, Policy: nopPolicy{}, Tokens: nopTokens{}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("HTTPS_PROXY", "")
	t.Setenv("NO_PROXY", "")
	if p := newProxy(); p.h1 == nil {
		t.Error("no proxy set, but the broker's own client is off")
	}
	t.Setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
	p := newProxy()
	if p.h1 != nil {
		t.Error("HTTPS_PROXY set, but calls would bypass it through the broker's own client")
	}
	if u, err := p.transport.(*http.Transport).Proxy(&http.Request{URL: up}); err != nil || u == nil || u.Host != "proxy.corp.example:3128" {
		t.Errorf("transport proxy = %v, %v; want proxy.corp.example:3128", u, err)
	}
	t.Setenv("NO_PROXY", ".googleapis.com")
	if p := newProxy(); p.h1 == nil {
		t.Error("NO_PROXY names the upstream, but the broker's own client is off")
	}
}

type nopPolicy struct{}

func (nopPolicy) Load() *policy.Policy { return nil }

type nopTokens struct{}

func (nopTokens) Token(context.Context, string, []chatapi.Scope) (broker.Token, error) {
	return broker.Token{}, nil
}
