package proxy

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/net/http/httpproxy"
)

// Limits of the upstream connections.
const (
	upstreamDialTimeout      = 10 * time.Second
	upstreamHandshakeTimeout = 10 * time.Second
	upstreamHeaderTimeout    = 2 * time.Minute
	upstreamIdleTimeout      = 90 * time.Second
	upstreamMaxIdle          = 128
	// maxResponseHead caps a response's status line and headers: an
	// upstream cannot make the broker buffer without end.
	maxResponseHead = 1 << 20
	// An HTTP/2 connection that has received nothing for
	// upstreamPingAfter is pinged, and closed when no answer comes within
	// upstreamPingTimeout: a connection a middlebox dropped without a word
	// is found before a call waits on it for minutes.
	upstreamPingAfter   = 30 * time.Second
	upstreamPingTimeout = 15 * time.Second
	// upstreamWriteTimeout closes an HTTP/2 connection that accepts no
	// bytes for this long.
	upstreamWriteTimeout = 30 * time.Second
)

// upstreamTransport carries every call to the upstream through net/http's
// Transport, as the package doc's "Upstream connections" says: over
// HTTP/2 on h2, shared by all callers, where the https upstream selects
// it; otherwise over HTTP/1.1 on a pool per caller, since HTTP/1.1 ties an
// answer to its request by order alone and net/http can reuse a
// connection before it notices an answer nobody asked for (measured: 4
// goroutines, 20,000 GETs to a server that sends each answer twice, 115
// answers went to the wrong request).
//
// h2 has MaxConnsPerHost 1: for HTTP/2, net/http then limits the
// connections being dialled, not those in use, so a burst waits for one
// handshake instead of dialling one per call (300 concurrent calls to a
// fresh Transport: 378 handshakes without the limit, 3 with it). An
// HTTP/1.1 pool has no such limit, which would queue every call behind
// one connection.
type upstreamTransport struct {
	h2      *http.Transport // nil for a plain-http upstream
	onlyH1  atomic.Bool     // the https upstream did not offer HTTP/2
	h1pools *lru.Cache[string, *http.Transport]
	tls     *tls.Config
	// headerTimeout is each Transport's ResponseHeaderTimeout.
	headerTimeout time.Duration
	log           *slog.Logger
}

// upstreamCallerPools caps the callers with an HTTP/1.1 pool at once; the
// least recently used caller's idle connections are closed past it.
// upstreamCallerIdle caps the idle connections of one caller's pool.
const (
	upstreamCallerPools = 256
	upstreamCallerIdle  = 64
)

// errNoHTTP2 fails the TLS handshake of an HTTP/2 connection that did not
// select h2, so that no request goes over HTTP/1.1 on the shared
// Transport.
var errNoHTTP2 = errors.New("the upstream did not select HTTP/2 in the TLS handshake")

func newUpstreamTransport(upstream *url.URL, tlsConfig *tls.Config, headerTimeout time.Duration, log *slog.Logger) *upstreamTransport {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	}
	tlsConfig = tlsConfig.Clone()
	tlsConfig.MinVersion = max(tlsConfig.MinVersion, tls.VersionTLS12)
	if tlsConfig.ClientSessionCache == nil {
		// A new connection resumes a TLS session instead of a full
		// handshake: after Google closes an idle connection, or in a
		// burst that needs more than one.
		tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	u := &upstreamTransport{tls: tlsConfig, headerTimeout: headerTimeout, log: log}
	u.h1pools, _ = lru.NewWithEvict(upstreamCallerPools, func(_ string, t *http.Transport) {
		t.CloseIdleConnections()
	})
	if upstream.Scheme == "https" {
		h2TLS := tlsConfig.Clone()
		verify := h2TLS.VerifyConnection
		h2TLS.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != "h2" {
				return errNoHTTP2
			}
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
		u.h2 = u.newTransport(h2TLS)
		u.h2.MaxConnsPerHost = 1
		u.h2.Protocols.SetHTTP2(true)
		u.h2.HTTP2 = &http.HTTP2Config{
			SendPingTimeout:  upstreamPingAfter,
			PingTimeout:      upstreamPingTimeout,
			WriteByteTimeout: upstreamWriteTimeout,
		}
	}
	return u
}

// newTransport returns net/http's Transport as the proxy uses it: bounded
// dial, TLS and header waits so a stalled upstream cannot pin the
// broker's goroutines; the environment's HTTPS_PROXY and NO_PROXY, read
// when the Transport is made; no transparent compression (the caller gets
// the bytes Google sent, with their Content-Encoding); redirects never
// followed (a Transport does not follow them; the proxy drops their
// Location). HTTP/1.1 only, until the caller allows HTTP/2.
func (u *upstreamTransport) newTransport(tlsConfig *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:                  proxyFromEnvironment(),
		DialContext:            (&net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    upstreamHandshakeTimeout,
		ResponseHeaderTimeout:  u.headerTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        upstreamIdleTimeout,
		MaxIdleConns:           upstreamMaxIdle,
		MaxIdleConnsPerHost:    upstreamMaxIdle,
		MaxResponseHeaderBytes: maxResponseHead,
		DisableCompression:     true,
		Protocols:              new(http.Protocols),
	}
	t.Protocols.SetHTTP1(true)
	return t
}

// roundTrip sends req for caller: over the shared HTTP/2 Transport, or
// over caller's own HTTP/1.1 pool.
func (u *upstreamTransport) roundTrip(req *http.Request, caller string) (*http.Response, error) {
	if u.h2 != nil && !u.onlyH1.Load() {
		resp, err := u.h2.RoundTrip(req)
		if !errors.Is(err, errNoHTTP2) {
			return resp, err
		}
		if u.onlyH1.CompareAndSwap(false, true) {
			u.log.Warn("the upstream does not offer HTTP/2: calls go over HTTP/1.1 from now on, each caller on connections of its own", "upstream", req.URL.Host)
			u.h2.CloseIdleConnections()
		}
		// The handshake failed before the request was sent; net/http
		// closed its body. A buffered body is sent again; a streaming
		// one cannot be, and the call fails as unreachable.
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
	return u.pool(caller).RoundTrip(req)
}

// pool returns caller's HTTP/1.1 Transport, made on first use.
func (u *upstreamTransport) pool(caller string) *http.Transport {
	if t, ok := u.h1pools.Get(caller); ok {
		return t
	}
	t := u.newTransport(u.tls)
	t.MaxIdleConns, t.MaxIdleConnsPerHost = upstreamCallerIdle, upstreamCallerIdle
	if prev, ok, _ := u.h1pools.PeekOrAdd(caller, t); ok {
		return prev
	}
	return t
}

// CloseIdleConnections closes the upstream connections no call is using.
func (u *upstreamTransport) CloseIdleConnections() {
	if u.h2 != nil {
		u.h2.CloseIdleConnections()
	}
	for _, t := range u.h1pools.Values() {
		t.CloseIdleConnections()
	}
}

// proxyFromEnvironment is http.ProxyFromEnvironment read when called,
// not once per process, so that each proxy (and each test) sees the
// environment of its time.
func proxyFromEnvironment() func(*http.Request) (*url.URL, error) {
	proxyFor := httpproxy.FromEnvironment().ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) }
}
