package bench

import (
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fixed answers of the fast upstream: small, Chat-shaped, the same bytes
// every time.
var (
	messageJSON = []byte(`{"name":"spaces/AAAA/messages/M1","sender":{"name":"users/app","type":"BOT"},` +
		`"createTime":"2026-01-01T00:00:00Z","text":"Hello from the bench upstream","thread":{"name":"spaces/AAAA/threads/T1"},` +
		`"space":{"name":"spaces/AAAA"},"argumentText":"Hello from the bench upstream"}` + "\n")
	listJSON   = []byte(`{"messages":[` + strings.TrimSpace(string(messageJSON)) + `]}` + "\n")
	uploadJSON = []byte(`{"attachmentDataRef":{"resourceName":"spaces/AAAA/attachments/A1"}}` + "\n")
	notFound   = []byte(`{"error":{"code":404,"message":"bench upstream: no such path","status":"NOT_FOUND"}}` + "\n")

	jsonType   = []string{"application/json; charset=UTF-8"}
	octetType  = []string{"application/octet-stream"}
	messageLen = []string{strconv.Itoa(len(messageJSON))}
	listLen    = []string{strconv.Itoa(len(listJSON))}
	uploadLen  = []string{strconv.Itoa(len(uploadJSON))}
)

// mediaPath is the path of a media download of n bytes from Upstream
// (media.download names the resource in its path; the upstream reads the
// size from its last element).
func mediaPath(n int64) string {
	return "/v1/media/spaces/AAAA/messages/M1/attachments/size-" + strconv.FormatInt(n, 10)
}

// uploadPath is the path of a simple (uploadType=media) media upload.
const uploadPath = "/upload/v1/spaces/AAAA/attachments:upload?uploadType=media"

// Upstream is the fast Chat-shaped upstream: it answers
//
//	GET  /v1/spaces/{s}/messages/{m}   a fixed message
//	POST /v1/spaces/{s}/messages       the same message (the body is read and dropped)
//	GET  /v1/spaces/{s}/messages       a one-message list
//	POST /upload/v1/spaces/{s}/attachments:upload   reads the body, answers an attachment ref
//	GET  /v1/media/…/size-N            N bytes of application/octet-stream, streamed
//
// and 404 otherwise. It checks no credential: the broker's token
// handling is measured against the emulator, the request path here.
func Upstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		h := w.Header()
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/media/"):
			_, size, ok := strings.Cut(p[len("/v1/media/"):], "/size-")
			n, err := strconv.ParseInt(size, 10, 64)
			if !ok || err != nil || n < 0 {
				break
			}
			h["Content-Type"] = octetType
			h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
			writePattern(w, n)
			return
		case r.Method == http.MethodPost && strings.HasPrefix(p, "/upload/v1/spaces/"):
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			h["Content-Type"], h["Content-Length"] = jsonType, uploadLen
			w.Write(uploadJSON)
			return
		case strings.HasPrefix(p, "/v1/spaces/") && strings.HasSuffix(p, "/messages"):
			switch r.Method {
			case http.MethodPost:
				io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
				h["Content-Type"], h["Content-Length"] = jsonType, messageLen
				w.Write(messageJSON)
				return
			case http.MethodGet:
				h["Content-Type"], h["Content-Length"] = jsonType, listLen
				w.Write(listJSON)
				return
			}
		case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/spaces/") && strings.Contains(p, "/messages/"):
			h["Content-Type"], h["Content-Length"] = jsonType, messageLen
			w.Write(messageJSON)
			return
		}
		h["Content-Type"] = jsonType
		w.WriteHeader(http.StatusNotFound)
		w.Write(notFound)
	})
}

// pattern is what media bodies are made of.
var pattern = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

func writePattern(w io.Writer, n int64) {
	for n > 0 {
		k := min(n, int64(len(pattern)))
		if _, err := w.Write(pattern[:k]); err != nil {
			return
		}
		n -= k
	}
}

// patternReader yields n bytes of pattern without holding them: a 200 MB
// upload costs the sender 64 KiB.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := copy(b, pattern[:min(int64(len(pattern)), p.left)])
	p.left -= int64(n)
	return n, nil
}

// tunedProxy is bareProxy as a careful Go programmer would tune it: the
// transport keeps as many idle upstream connections as the broker's (128
// per host) and copies bodies through pooled 32 KiB buffers instead of
// allocating one per response. It is the baseline the broker's
// throughput is held to: what net/http itself costs on this machine, so
// the broker's own overhead can be told apart from Go's.
func tunedProxy(upstream *url.URL) http.Handler {
	rp := bareProxy(upstream)
	rp.Transport = &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
	}
	rp.BufferPool = &bufferPool{}
	return rp
}

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// staticToken is what the baselines put in Authorization.
const staticToken = "ya29.bench-static-token"

// bareProxy is the baseline a team might write in thirty lines instead
// of running the broker: an httputil.ReverseProxy to upstream that
// replaces Authorization with a static token. It checks no caller,
// routes nothing and decides nothing. Like most such proxies it keeps
// http.DefaultTransport (two idle connections per host); it streams
// bodies as the broker does.
func bareProxy(upstream *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Host = ""
			pr.Out.Header.Set("Authorization", "Bearer "+staticToken)
		},
		FlushInterval: -1,
	}
}
