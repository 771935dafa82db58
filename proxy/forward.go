package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/chat-broker/chat-broker/internal/inbound"
)

// forward sends the call upstream, retrying when safe
// (send), and streams the last attempt's answer to w. It replaces
// httputil.ReverseProxy, which cloned every header map, started a
// goroutine per response to flush it and knew nothing of the call; the
// checks before it have already fixed the path, query and body.
//
// It returns errAborted when the upstream's body broke off after the
// status was sent: the caller's response must then be cut, not ended as
// if complete.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, c *call) error {
	out := p.outgoing(r, c)
	c.upstreamStart = p.now()
	resp, err := p.send(r.Context(), out, c)
	if err != nil {
		p.upstreamError(w, r, c, err)
		return nil
	}
	defer resp.Body.Close()
	p.modifyResponse(resp, c)
	copyResponseHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	if resp.Body == http.NoBody {
		return nil
	}
	return copyBody(w, resp, c)
}

// copyResponseHeader copies the upstream's end-to-end headers to the
// caller's response: not the connection's own (inbound.HopByHop), nor
// any header the upstream's Connection header names (RFC 9110 §7.6.1).
func copyResponseHeader(dst, src http.Header) {
	var named []string
	for _, v := range src["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, v := range src {
		if !inbound.HopByHop[k] && !slices.Contains(named, k) {
			dst[k] = v
		}
	}
}

// errAborted says the upstream's answer broke off part way.
var errAborted = errors.New("proxy: upstream response broke off")

// copyBody streams resp's body to w through a pooled buffer. A body of
// unknown length (server-sent, streamed) is flushed after every read so
// the caller sees each part as it comes; one of known length is left to
// net/http's buffering, which sends a small answer in one write.
func copyBody(w http.ResponseWriter, resp *http.Response, c *call) error {
	var flusher *http.ResponseController
	if resp.ContentLength < 0 || isEventStream(resp.Header) {
		flusher = http.NewResponseController(w)
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				// The caller went away; there is nobody to tell.
				c.reason = "CANCELLED"
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			c.reason = "UPSTREAM_RESPONSE_INCOMPLETE"
			return errAborted
		}
	}
}

func isEventStream(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// outgoing is the first attempt's request: the caller's method, the
// path and query the checks settled on, at the pinned upstream, with the
// caller's headers but for those inbound.Dropped names, and the broker's
// token. A media upload's body streams from the caller; a buffered body
// is given to each attempt by roundTrip.
func (p *Proxy) outgoing(r *http.Request, c *call) *http.Request {
	h := make(http.Header, len(r.Header)+1)
	for k, v := range r.Header {
		if !inbound.Dropped(k) {
			h[k] = v
		}
	}
	out := &http.Request{
		Method: r.Method,
		URL: &url.URL{
			Scheme:   p.upstream.Scheme,
			Host:     p.upstream.Host,
			Path:     p.basePath + c.path,
			RawQuery: c.query,
		},
		Header: h,
		Host:   p.upstream.Host,
	}
	if !c.replayable { // media upload: streams
		out.Body = r.Body
		out.ContentLength = r.ContentLength
	} else {
		// The body is already here (or there is none): waiting for
		// 100-continue would only cost a round trip per attempt.
		delete(h, "Expect")
	}
	c.token.SetAuthHeader(out)
	return out
}

// roundTrip makes one attempt of req through net/http's Transport, with
// c's buffered body if it has one (GetBody lets the Transport send it
// again on a new connection when nothing of it was written). An answer
// whose status is no final HTTP status (1xx, as a 101 that net/http
// returns, or past 599) is an upstream fault, never passed on.
func (p *Proxy) roundTrip(ctx context.Context, req *http.Request, c *call) (*http.Response, error) {
	if c.body != nil {
		req.Body, _ = c.getBody()
		req.GetBody = c.getBody
		req.ContentLength = int64(len(c.body))
	} else if c.replayable && req.Method != http.MethodGet && req.Method != http.MethodDelete {
		req.Body = http.NoBody
	}
	resp, err := p.transport.roundTrip(req.WithContext(ctx), c.caller)
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 599) {
		resp.Body.Close()
		return nil, &badStatusError{resp.StatusCode}
	}
	return resp, err
}

// badStatusError is an upstream answer with no final HTTP status.
type badStatusError struct{ status int }

func (e *badStatusError) Error() string {
	return "the upstream answered with status " + strconv.Itoa(e.status) + ", which is no final HTTP status"
}

// copyBuffers lends copyBody its 32 KiB buffers. Without it every
// response allocates one, which the benchmark showed as most of the
// bytes allocated per call and much of the garbage collector's work.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// CloseIdleConnections closes the upstream connections no call is using,
// as at shutdown.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }
