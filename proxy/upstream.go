package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Client carries the calls whose request body is in memory (or absent),
// nearly all of them, to the upstream over HTTP/1.1 keep-alive
// connections, TLS for https. It writes the request and reads the answer
// on the caller's goroutine.
//
// net/http's Transport hands every request to two goroutines of its
// connection, one writing and one reading, and back; on a two-core pod
// those hand-offs (and the thread wake-ups they cause) were the largest
// cost of a forwarded call after the system calls themselves. The
// request and response are still written and parsed by net/http
// (Request.Write, ReadResponse); only the connection pool is this
// file's.
//
// Media uploads, whose bodies stream for minutes, go through
// net/http's Transport instead, which reads an early answer while the
// body is still being sent. So does everything when an HTTP proxy
// (HTTPS_PROXY) applies to the upstream.
type h1Client struct {
	addr             string      // host:port
	tls              *tls.Config // nil for http
	dialer           net.Dialer
	handshakeTimeout time.Duration
	headerTimeout    time.Duration
	idleTimeout      time.Duration
	maxIdle          int

	mu   sync.Mutex
	idle []*h1Conn // oldest first; the newest is reused first
}

// Limits of h1Client, as NewTransport's.
const (
	upstreamDialTimeout      = 10 * time.Second
	upstreamHandshakeTimeout = 10 * time.Second
	upstreamHeaderTimeout    = 2 * time.Minute
	upstreamIdleTimeout      = 90 * time.Second
	upstreamMaxIdle          = 128
)

func newH1Client(u *url.URL, tlsConfig *tls.Config) *h1Client {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	c := &h1Client{
		addr:             net.JoinHostPort(u.Hostname(), port),
		dialer:           net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second},
		handshakeTimeout: upstreamHandshakeTimeout,
		headerTimeout:    upstreamHeaderTimeout,
		idleTimeout:      upstreamIdleTimeout,
		maxIdle:          upstreamMaxIdle,
	}
	if u.Scheme == "https" {
		if tlsConfig == nil {
			tlsConfig = &tls.Config{}
		}
		c.tls = tlsConfig.Clone()
		if c.tls.ServerName == "" {
			c.tls.ServerName = u.Hostname()
		}
		c.tls.NextProtos = []string{"http/1.1"}
		if c.tls.ClientSessionCache == nil {
			// A new connection resumes a TLS session instead of a full
			// handshake: after Google closes idle connections, or in a
			// burst that opens many.
			c.tls.ClientSessionCache = tls.NewLRUClientSessionCache(upstreamMaxIdle)
		}
		c.tls.MinVersion = max(c.tls.MinVersion, tls.VersionTLS12)
	}
	return c
}

// h1Conn is one upstream connection.
type h1Conn struct {
	nc  net.Conn
	raw syscall.RawConn // the TCP socket under nc, for the liveness check; nil when there is none
	br  *bufio.Reader
	bw  *bufio.Writer
	// idleSince is when the connection went back to the pool.
	idleSince time.Time
	// reused reports whether a request was sent on it before this one.
	reused bool
	// head caps what is read while a response head is awaited.
	head headLimit
}

// maxResponseHead caps a response's status line and headers, as
// net/http's Transport does (MaxResponseHeaderBytes): an upstream cannot
// make the broker buffer without end.
const maxResponseHead = 1 << 20

// headLimit reads from r until n bytes have been read, then fails.
type headLimit struct {
	r io.Reader
	n int64
}

var errHeadTooLarge = errors.New("upstream response head is larger than 1 MiB")

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// do sends req, with body as its body (nil for none), and returns the
// response, whose body must be read to its end (or closed) to free the
// connection. A kept-alive connection that fails before any byte of an
// answer (the upstream closed it while idle, or dropped the request)
// gives an error that isStaleConn recognizes: the request may not have
// been read, and send decides whether it goes again.
func (t *h1Client) do(ctx context.Context, req *http.Request, body []byte) (*http.Response, error) {
	pc, err := t.get(ctx)
	if err != nil {
		return nil, err
	}
	resp, err, silent := t.exchange(ctx, pc, req, body)
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case pc.reused && silent:
		return nil, &staleConnError{err}
	}
	return nil, err
}

// staleConnError is a failure on a kept-alive connection before any
// answer arrived.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string {
	return "kept-alive upstream connection failed before answering: " + e.err.Error()
}

func (e *staleConnError) Unwrap() error { return e.err }

// isStaleConn reports whether err is a staleConnError.
func isStaleConn(err error) bool {
	var s *staleConnError
	return errors.As(err, &s)
}

// aLongTimeAgo is a deadline in the past: setting it unblocks any
// pending read or write on a connection.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on pc and reads the response head. silent reports
// that the failure came before any byte of an answer.
func (t *h1Client) exchange(ctx context.Context, pc *h1Conn, req *http.Request, body []byte) (resp *http.Response, err error, silent bool) {
	// The deadline bounds sending the request and waiting for the head of
	// the answer. It is set before the cancellation hook, which could
	// otherwise have its own deadline overwritten.
	pc.nc.SetDeadline(time.Now().Add(t.headerTimeout))
	pc.head.n = maxResponseHead
	// Whichever comes first, the caller leaving or the response ending,
	// stop wins: a cancelled call's connection is closed, never reused.
	stop := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error, silent bool) (*http.Response, error, bool) {
		stop()
		pc.nc.Close()
		return nil, err, silent
	}
	if err := writeRequest(pc.bw, req, body); err != nil {
		var bad *unsendableError
		return fail(err, !errors.As(err, &bad))
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err, true)
	}
	for {
		if _, err := pc.br.Peek(1); err != nil {
			return fail(err, true)
		}
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err, false)
		}
		// 1xx answers (100 Continue, 103 Early Hints) precede the real
		// one; 101 would switch protocols, which no Chat method does.
		if resp.StatusCode >= 200 || resp.StatusCode < 100 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("upstream answered 101 Switching Protocols"), false)
		}
	}
	pc.nc.SetDeadline(time.Time{})
	pc.head.n = math.MaxInt64
	if ctx.Err() != nil {
		// Cancelled while the deadline was being cleared: the clearing
		// may have undone the cancellation's, so do not read on.
		return fail(ctx.Err(), false)
	}
	reuse := !resp.Close
	if resp.Body == http.NoBody {
		t.release(pc, stop, reuse)
		return resp, nil, false
	}
	resp.Body = &h1Body{t: t, pc: pc, body: resp.Body, stop: stop, reuse: reuse}
	return resp, nil, false
}

// release ends an exchange on pc: back to the pool when the response
// ended cleanly, was not cancelled and allows keep-alive, closed
// otherwise.
func (t *h1Client) release(pc *h1Conn, stop func() bool, reuse bool) {
	if stop() && reuse {
		t.put(pc)
		return
	}
	pc.nc.Close()
}

// h1Body is a response body; its end returns the connection to the pool.
type h1Body struct {
	t     *h1Client
	pc    *h1Conn
	body  io.ReadCloser
	stop  func() bool
	reuse bool
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.done = true
		b.t.release(b.pc, b.stop, b.reuse)
	case err != nil:
		b.done = true
		b.t.release(b.pc, b.stop, false)
	}
	return n, err
}

// Close frees the connection; one whose response was not read to its end
// is closed, not reused.
func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.t.release(b.pc, b.stop, false)
	}
	return nil
}

// get returns an idle connection that is still open, or a new one.
func (t *h1Client) get(ctx context.Context) (*h1Conn, error) {
	now := time.Now()
	t.mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		pc := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if now.Sub(pc.idleSince) < t.idleTimeout && pc.br.Buffered() == 0 && pc.alive() {
			pc.reused = true
			return pc, nil
		}
		pc.nc.Close()
		t.mu.Lock()
	}
	t.mu.Unlock()
	return t.dial(ctx)
}

// put returns pc to the pool, closing the oldest idle connection when the
// pool is full and any that idled too long.
func (t *h1Client) put(pc *h1Conn) {
	now := time.Now()
	pc.idleSince = now
	var stale []*h1Conn
	t.mu.Lock()
	drop := 0
	for drop < len(t.idle) && (now.Sub(t.idle[drop].idleSince) >= t.idleTimeout || len(t.idle)-drop >= t.maxIdle) {
		drop++
	}
	if drop > 0 {
		stale = append(stale, t.idle[:drop]...)
		n := copy(t.idle, t.idle[drop:])
		clear(t.idle[n:])
		t.idle = t.idle[:n]
	}
	t.idle = append(t.idle, pc)
	t.mu.Unlock()
	for _, s := range stale {
		s.nc.Close()
	}
}

// CloseIdleConnections closes the connections not in use.
func (t *h1Client) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.nc.Close()
	}
}

func (t *h1Client) dial(ctx context.Context) (*h1Conn, error) {
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	pc := &h1Conn{nc: nc}
	if tc, ok := nc.(*net.TCPConn); ok {
		pc.raw, _ = tc.SyscallConn()
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		hctx, cancel := context.WithTimeout(ctx, t.handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			// Nothing was sent: as a failed dial, any call may retry it.
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: nc.RemoteAddr(), Err: err}
		}
		pc.nc = tc
	}
	pc.head.r = pc.nc
	pc.br = bufio.NewReaderSize(&pc.head, 4<<10)
	pc.bw = bufio.NewWriterSize(pc.nc, 4<<10)
	return pc, nil
}

// unsendableError is a request that must not be sent as it is: trying
// again cannot help.
type unsendableError struct{ why string }

func (e *unsendableError) Error() string { return "proxy: " + e.why }

// writeRequest writes req's head and body in HTTP/1.1 form: what
// Request.Write does for the requests the proxy builds (origin-form
// target, Host, the headers as they are, Content-Length), without its
// allocations. A header that could split the request (a CR or LF in a
// value, a name that is not a token) is refused, never sent.
func writeRequest(w *bufio.Writer, req *http.Request, body []byte) error {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.EscapedPath())
	if req.URL.RawQuery != "" {
		w.WriteByte('?')
		w.WriteString(req.URL.RawQuery)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return &unsendableError{fmt.Sprintf("header name %q cannot be sent", k)}
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &unsendableError{"header " + k + " has a value that cannot be sent"}
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if len(body) > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(len(body)), 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	_, err := w.Write(body)
	return err
}
