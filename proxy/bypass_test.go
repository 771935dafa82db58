package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/identity"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// rawBroker is a broker listening on loopback TCP the way `chat-broker
// serve` listens: an http.Server with the same limits and timeouts
// (cmd/chat-broker/serve.go) around a Proxy with the same Host check, in
// front of newEnv's emulator, token broker and policy.
type rawBroker struct {
	*env
	addr string // host:port of the listener
	// arrived counts the requests that reached the upstream, whether or
	// not the emulator got as far as logging them; finished receives one
	// value each time the emulator is done with one.
	arrived  *atomic.Int64
	finished chan struct{}
}

func newRawBroker(t *testing.T) *rawBroker {
	t.Helper()
	e := newEnv(t)
	// A second front for the same emulator: its request log, tokens and
	// spaces are shared, so e.emu.Requests() sees every call.
	arrived, finished := new(atomic.Int64), make(chan struct{}, 1000)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		defer func() {
			select {
			case finished <- struct{}{}:
			default:
			}
		}()
		e.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	px, err := proxy.New(proxy.Config{
		Upstream: upURL,
		Policy:   policy.NewStore(e.policy),
		Tokens:   e.broker.Source(),
		Hosts:    []string{ln.Addr().String(), "localhost:" + port},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           px,
		ConnContext:       identity.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10, // as cmd/chat-broker serve
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &rawBroker{env: e, addr: ln.Addr().String(), arrived: arrived, finished: finished}
}

// rawResult is what came back for one raw request.
type rawResult struct {
	status int
	body   []byte
	closed bool // the broker closed the connection after the response
}

// send writes raw to a fresh connection exactly as given and reads one
// final response (skipping 1xx). With checkClose it then waits briefly
// for a second response or the end of the connection.
func (b *rawBroker) send(t *testing.T, raw string, checkClose bool) rawResult {
	t.Helper()
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// Write from another goroutine: for oversized requests the server
	// answers and stops reading before the last byte is written.
	var wg sync.WaitGroup
	wg.Go(func() {
		io.WriteString(conn, raw)
	})
	defer wg.Wait()

	method, _, _ := strings.Cut(raw, " ")
	br := bufio.NewReader(conn)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		if resp.StatusCode >= 200 {
			break
		}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	res := rawResult{status: resp.StatusCode, body: body}
	if checkClose {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := br.ReadByte()
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), err != nil && strings.Contains(err.Error(), "reset"):
			res.closed = true
		case errors.As(err, &ne) && ne.Timeout():
		case err == nil:
			rest, _ := br.Peek(br.Buffered())
			t.Errorf("the broker answered more after the response: %q", append([]byte{'H'}, rest...))
		}
	}
	return res
}

// Raw request pieces. The placeholders in braces are filled in by
// TestBypass: {host} is the broker's address, {notifier}, {reader}, {ops}
// and {unknown} are caller secrets.
const (
	hostH  = "Host: {host}\r\n"
	authN  = "Authorization: Bearer {notifier}\r\n"
	authO  = "Authorization: Bearer {ops}\r\n"
	jsonCT = "Content-Type: application/json\r\n"
	msg12  = "Content-Length: 12\r\n\r\n{\"text\":\"x\"}" // a 12-byte Message
	get1   = "GET /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n"
	post1  = "POST /v1/spaces/AAAA/messages HTTP/1.1\r\n"
	list1  = "GET /v1/spaces/AAAA/messages"
	end    = "\r\n" // the blank line that ends the header
)

type bypassCase struct {
	desc string
	raw  string
	// wantStatus is the status code, from the broker or from Go's server
	// (the latter answers before the broker sees anything).
	wantStatus int
	// wantReason is the broker's ErrorInfo reason; "" when the answer is
	// not the broker's (Go's server, or Google through the broker).
	wantReason string
	// forwarded lists the methods that reach Google, in order, for
	// shapes the broker accepts; nil for everything it refuses.
	forwarded []string
	// closes: the broker hangs up after answering, so nothing after the
	// request on the connection is ever read as another request.
	closes bool
}

// Every request shape that could make Google do something other than
// what the policy allowed is refused, by Go's server or by the broker,
// and reaches nothing upstream. Requests are written over TCP byte for
// byte as in the table.
func TestBypass(t *testing.T) {
	b := newRawBroker(t)
	fill := strings.NewReplacer("{host}", b.addr, "{notifier}", notifierSecret, "{ops}", opsSecret, "{unknown}", unknownSecret, "{reader}", readerSecret)
	_, port, _ := net.SplitHostPort(b.addr)
	long := func(n int) string { return strings.Repeat("M", n) }

	// smuggled is a request prefix a front end that framed by
	// Content-Length would pass on as the end of the body, and a broker
	// that framed by chunks would read as the next request: capturing the
	// next caller's headers, Authorization included, with X-Ignore.
	smuggled := "DELETE /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + "X-Ignore: "
	chunked := "c\r\n{\"text\":\"x\"}\r\n0\r\n\r\n"
	clte := "Content-Length: " + strconv.Itoa(len(chunked)+len(fill.Replace(smuggled))) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + smuggled

	cases := []bypassCase{
		// The request target.
		{desc: "absolute-form", raw: "GET http://evil.example/v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "TARGET_NOT_ORIGIN_FORM"},
		{desc: "absolute-form naming the broker", raw: "GET http://{host}/v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "TARGET_NOT_ORIGIN_FORM"},
		{desc: "absolute-form https to Chat", raw: "GET https://chat.googleapis.com/v1/spaces/BBBB/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "TARGET_NOT_ORIGIN_FORM"},
		{desc: "CONNECT authority-form", raw: "CONNECT chat.googleapis.com:443 HTTP/1.1\r\nHost: chat.googleapis.com:443\r\n" + authN + end, wantStatus: 405, wantReason: "CONNECT_NOT_ALLOWED"},
		{desc: "CONNECT with a path", raw: "CONNECT /v1/spaces/AAAA/messages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 405, wantReason: "CONNECT_NOT_ALLOWED"},
		{desc: "HTTP/2 preface on HTTP/1", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", wantStatus: 400, wantReason: "TARGET_NOT_ORIGIN_FORM", closes: true},
		{desc: "OPTIONS * (Go's server answers)", raw: "OPTIONS * HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 200},
		{desc: "OPTIONS on a method path", raw: "OPTIONS /v1/spaces/AAAA/messages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 405, wantReason: "VERB_NOT_ALLOWED"},
		{desc: "HEAD on a GET path", raw: "HEAD /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 405},
		{desc: "TRACE", raw: "TRACE /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 405, wantReason: "VERB_NOT_ALLOWED"},
		{desc: "lower-case verb", raw: "get /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 405, wantReason: "VERB_NOT_ALLOWED"},
		{desc: "HTTP/1.0", raw: "GET /v1/spaces/AAAA/messages/M1 HTTP/1.0\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "HTTP_VERSION_NOT_SUPPORTED", closes: true},
		{desc: "HTTP/1.2", raw: "GET /v1/spaces/AAAA/messages/M1 HTTP/1.2\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "HTTP_VERSION_NOT_SUPPORTED", closes: true},
		{desc: "HTTP/2.0 request line (Go's server answers)", raw: "GET /v1/spaces/AAAA/messages/M1 HTTP/2.0\r\n" + hostH + authN + end, wantStatus: 505},
		{desc: "HTTP/0.9 request line (Go's server answers)", raw: "GET /v1/spaces/AAAA/messages/M1\r\n\r\n", wantStatus: 400},

		// The path.
		{desc: "double slash in front", raw: "GET //v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "double slash inside", raw: "GET /v1/spaces//AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "trailing slash", raw: "GET /v1/spaces/AAAA/messages/ HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "encoded slash", raw: "GET /v1/spaces/AAAA%2Fmessages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "encoded dot-dot slash", raw: "GET /v1/spaces/AAAA/messages/..%2F.. HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "dot segment in front", raw: "GET /./v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "dot-dot into another space", raw: "GET /v1/spaces/AAAA/../BBBB/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "dot-dot at the end", raw: "GET /v1/spaces/AAAA/messages/M1/.. HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "encoded dot-dot", raw: "GET /v1/spaces/%2e%2e/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "double-encoded slash", raw: "GET /v1/spaces/AAAA%252Fmessages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "encoded NUL", raw: "GET /v1/spaces/AAAA/messages/M1%00 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "needless escape of a letter", raw: "GET /v1/spaces/AAAA/messages/%4D1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "encoded colon", raw: "POST /v1/spaces/AAAA%3AcompleteImport HTTP/1.1\r\n" + hostH + authO + jsonCT + msg12, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "backslash", raw: "GET /v1/spaces/AAAA\\messages\\M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: ";jsessionid", raw: "GET /v1/spaces/AAAA/messages/M1;jsessionid=x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "trailing dot on the space", raw: "GET /v1/spaces/BBBB./messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "trailing dot on the last segment", raw: "GET /v1/spaces/AAAA/messages/M1. HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "three dots", raw: "GET /v1/spaces/AAAA/.../M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_NOT_CANONICAL"},
		{desc: "raw space (Go's server answers)", raw: "GET /v1/spaces/AAAA /messages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400},
		{desc: "raw tab (Go's server answers)", raw: "GET /v1/spaces/AAAA\t/messages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400},
		{desc: "raw control byte (Go's server answers)", raw: "GET /v1/spaces/AAAA\x01/messages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400},
		{desc: "raw DEL (Go's server answers)", raw: "GET /v1/spaces/AAAA\x7f/messages HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400},
		{desc: "raw non-ASCII byte", raw: "GET /v1/spaces/AAAA\xff/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_CHARACTER_NOT_ALLOWED"},
		{desc: "raw UTF-8", raw: "GET /v1/spaces/AAAA\xc3\xa9/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_CHARACTER_NOT_ALLOWED"},
		{desc: "fragment", raw: "GET /v1/spaces/AAAA/messages/M1#x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_CHARACTER_NOT_ALLOWED"},
		{desc: "asterisk as the space", raw: "GET /v1/spaces/*/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_CHARACTER_NOT_ALLOWED"},
		{desc: "quote", raw: "GET /v1/spaces/AAAA/messages/M\"1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PATH_CHARACTER_NOT_ALLOWED"},
		{desc: "path over 2 KiB", raw: "GET /v1/spaces/AAAA/messages/" + long(2100) + " HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 414, wantReason: "URI_TOO_LONG"},
		{desc: "request line over 64 KiB (Go's server answers)", raw: "GET /v1/spaces/AAAA/messages/" + long(70<<10) + " HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 431},
		{desc: "upper-case version segment", raw: "GET /V1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "mixed-case collection", raw: "GET /v1/Spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "upper-case sub-collection", raw: "GET /v1/spaces/AAAA/MESSAGES/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "upper-case custom verb", raw: "POST /v1/spaces/AAAA:COMPLETEIMPORT HTTP/1.1\r\n" + hostH + authO + jsonCT + msg12, wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "batch", raw: "POST /batch HTTP/1.1\r\n" + hostH + authN + "Content-Type: multipart/mixed; boundary=b\r\nContent-Length: 4\r\n\r\n--b\n", wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "batch with API and version", raw: "POST /batch/chat/v1 HTTP/1.1\r\n" + hostH + authN + "Content-Type: multipart/mixed; boundary=b\r\nContent-Length: 4\r\n\r\n--b\n", wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "gRPC path and content type", raw: "POST /google.chat.v1.ChatService/CreateMessage HTTP/1.1\r\n" + hostH + authN + "Content-Type: application/grpc\r\nTe: trailers\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00", wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},
		{desc: "gRPC path with JSON", raw: "POST /google.chat.v1.ChatService/CreateMessage HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 404, wantReason: "UNKNOWN_METHOD"},
		{desc: "grpc-web content type on a REST path", raw: post1 + hostH + authN + "Content-Type: application/grpc-web+proto\r\n" + msg12, wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},
		{desc: "protobuf content type", raw: post1 + hostH + authN + "Content-Type: application/x-protobuf\r\n" + msg12, wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},

		// Uploads: media.upload is user-only and not granted to these callers.
		{desc: "upload without media.upload", raw: "POST /upload/v1/spaces/AAAA/attachments:upload?uploadType=media HTTP/1.1\r\n" + hostH + authN + "Content-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG", wantStatus: 403, wantReason: "METHOD_NOT_ALLOWED"},
		{desc: "pin as the app", raw: "POST /v1/spaces/AAAA/messagePins HTTP/1.1\r\n" + hostH + authO + jsonCT + "Content-Length: 2\r\n\r\n{}", wantStatus: 403, wantReason: "USER_AUTH_REQUIRED"},
		{desc: "resumable continuation the broker never saw start (PUT upload_id)", raw: "PUT /resumable/upload/v1/spaces/AAAA/attachments:upload?upload_id=AEnB2U HTTP/1.1\r\n" + hostH + authO + "Content-Range: bytes 0-2/3\r\nContent-Length: 3\r\n\r\nPNG", wantStatus: 404, wantReason: "UPLOAD_SESSION_UNKNOWN"},
		{desc: "resumable continuation as a POST", raw: "POST /resumable/upload/v1/spaces/AAAA/attachments:upload?upload_id=AEnB2U HTTP/1.1\r\n" + hostH + authO + "Content-Type: image/png\r\nContent-Length: 3\r\n\r\nPNG", wantStatus: 404, wantReason: "UPLOAD_SESSION_UNKNOWN"},
		{desc: "upload_id off the upload paths", raw: "POST /v1/spaces/AAAA/messages?upload_id=AEnB2U HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "uploadType off the upload paths", raw: "POST /v1/spaces/AAAA/messages?uploadType=multipart HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "upload_protocol off the upload paths", raw: list1 + "?upload_protocol=raw HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},

		// The query.
		{desc: "$ct", raw: "POST /v1/spaces/AAAA/messages?$ct=application/x-protobuf HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "alt=proto", raw: list1 + "?alt=proto HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "$alt=proto beside alt=json", raw: list1 + "?alt=json&$alt=proto HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "alt=media on messages.get", raw: "GET /v1/spaces/AAAA/messages/M1?alt=media HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "Alt spelled in capitals", raw: list1 + "?Alt=proto HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "callback", raw: list1 + "?callback=steal HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "key", raw: list1 + "?key=AIzaSyX HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "Key in capitals", raw: list1 + "?KEY=AIzaSyX HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "access_token", raw: list1 + "?access_token=ya29.x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "access_token with an escaped name", raw: list1 + "?access%5Ftoken=ya29.x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "access_token without Authorization", raw: list1 + "?access_token=ya29.x HTTP/1.1\r\n" + hostH + end, wantStatus: 401, wantReason: "CALLER_CREDENTIAL_MISSING"},
		{desc: "oauth_token", raw: list1 + "?oauth_token=ya29.x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "quotaUser", raw: list1 + "?quotaUser=someone HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "userProject", raw: list1 + "?userProject=other-project HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "passwd", raw: list1 + "?passwd=x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "unknown system parameter", raw: list1 + "?$unique=1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "duplicate requestId", raw: "POST /v1/spaces/AAAA/messages?requestId=a&requestId=b HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 400, wantReason: "PARAMETER_REPEATED"},
		{desc: "duplicate pageSize", raw: list1 + "?pageSize=1&pageSize=1000 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_REPEATED"},
		{desc: "parent in the query", raw: list1 + "?parent=spaces/BBBB HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "requestId spelled request_id", raw: "POST /v1/spaces/AAAA/messages?request_id=r1 HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "useAdminAccess spelled use_admin_access", raw: "GET /v1/spaces/AAAA?use_admin_access=true HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "pageSize in capitals", raw: list1 + "?PageSize=5 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "a parameter the method does not take", raw: list1 + "?threadKey=k HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "name in the query", raw: "GET /v1/spaces/AAAA/messages/M1?name=spaces/BBBB/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "PARAMETER_NOT_ALLOWED"},
		{desc: "CRLF in a value", raw: list1 + "?pageSize=1%0d%0aX-Goog-User-Project:%20x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "QUERY_MALFORMED"},
		{desc: "NUL in a name", raw: list1 + "?page%00Size=1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "QUERY_MALFORMED"},
		{desc: "space in a name", raw: list1 + "?access_token%20=x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "QUERY_MALFORMED"},
		{desc: "invalid UTF-8 in a value", raw: list1 + "?filter=%ff HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "QUERY_MALFORMED"},
		{desc: "raw non-ASCII in the query", raw: list1 + "?filter=\xc3\xa9 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "QUERY_MALFORMED"},
		{desc: "raw control byte in the query (Go's server answers)", raw: list1 + "?filter=\x01 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400},
		{desc: "semicolon separator", raw: list1 + "?pageSize=1;key=x HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 400, wantReason: "QUERY_MALFORMED"},
		{desc: "query over 8 KiB", raw: list1 + "?filter=" + long(9000) + " HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 414, wantReason: "URI_TOO_LONG"},

		// Headers.
		{desc: "X-HTTP-Method-Override", raw: post1 + hostH + authN + "X-HTTP-Method-Override: DELETE\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "METHOD_OVERRIDE_NOT_ALLOWED"},
		{desc: "X-HTTP-Method", raw: post1 + hostH + authN + "X-HTTP-Method: DELETE\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "METHOD_OVERRIDE_NOT_ALLOWED"},
		{desc: "X-Method-Override", raw: post1 + hostH + authN + "X-Method-Override: DELETE\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "METHOD_OVERRIDE_NOT_ALLOWED"},
		{desc: "Java's POST+override PATCH is a real PATCH, routed as one", raw: post1 + hostH + authN + "x-http-method-override: PATCH\r\n" + jsonCT + msg12, wantStatus: 405, wantReason: "VERB_NOT_ALLOWED"},
		{desc: "override PATCH beside another override", raw: post1 + hostH + authN + "X-HTTP-Method-Override: PATCH\r\nX-HTTP-Method: DELETE\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "METHOD_OVERRIDE_NOT_ALLOWED"},
		{desc: "override PATCH twice", raw: post1 + hostH + authN + "X-HTTP-Method-Override: PATCH\r\nX-HTTP-Method-Override: PATCH\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "METHOD_OVERRIDE_NOT_ALLOWED"},
		{desc: "method override with underscores", raw: post1 + hostH + authN + "X_HTTP_Method_Override: DELETE\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "HEADER_NAME_NOT_ALLOWED"},
		{desc: "two Authorization headers", raw: get1 + hostH + authN + "Authorization: Bearer {reader}\r\n" + end, wantStatus: 400, wantReason: "CREDENTIAL_NOT_ALLOWED"},
		{desc: "Basic auth", raw: get1 + hostH + "Authorization: Basic bm90aWZpZXI6eA==\r\n" + end, wantStatus: 401, wantReason: "CALLER_CREDENTIAL_MALFORMED"},
		{desc: "Google token instead of the caller secret", raw: get1 + hostH + "Authorization: Bearer ya29.a0Af\r\n" + end, wantStatus: 401, wantReason: "CALLER_UNKNOWN"},
		{desc: "cookie", raw: get1 + hostH + authN + "Cookie: SID=x\r\n" + end, wantStatus: 400, wantReason: "CREDENTIAL_NOT_ALLOWED"},
		{desc: "Proxy-Authorization", raw: get1 + hostH + authN + "Proxy-Authorization: Bearer ya29.x\r\n" + end, wantStatus: 400, wantReason: "CREDENTIAL_NOT_ALLOWED"},
		{desc: "X-Goog-Api-Key", raw: get1 + hostH + authN + "X-Goog-Api-Key: AIzaSyX\r\n" + end, wantStatus: 400, wantReason: "CREDENTIAL_NOT_ALLOWED"},
		{desc: "X-Goog-User-Project", raw: get1 + hostH + authN + "X-Goog-User-Project: other-project\r\n" + end, wantStatus: 400, wantReason: "HEADER_NOT_ALLOWED"},
		{desc: "X-Goog-Quota-User", raw: get1 + hostH + authN + "X-Goog-Quota-User: someone\r\n" + end, wantStatus: 400, wantReason: "HEADER_NOT_ALLOWED"},
		{desc: "X-Goog-Authenticated-User-Email", raw: get1 + hostH + authN + "X-Goog-Authenticated-User-Email: accounts.google.com:admin@example.com\r\n" + end, wantStatus: 400, wantReason: "HEADER_NOT_ALLOWED"},
		{desc: "Forwarded", raw: get1 + hostH + authN + "Forwarded: for=10.0.0.1;host=chat.googleapis.com\r\n" + end, wantStatus: 400, wantReason: "FORWARDING_HEADER_NOT_ALLOWED"},
		{desc: "X-Forwarded-For", raw: get1 + hostH + authN + "X-Forwarded-For: 10.0.0.1\r\n" + end, wantStatus: 400, wantReason: "FORWARDING_HEADER_NOT_ALLOWED"},
		{desc: "X-Forwarded-Host", raw: get1 + hostH + authN + "X-Forwarded-Host: evil.example\r\n" + end, wantStatus: 400, wantReason: "FORWARDING_HEADER_NOT_ALLOWED"},
		{desc: "X-Forwarded-Prefix", raw: get1 + hostH + authN + "X-Forwarded-Prefix: /v1/spaces/BBBB\r\n" + end, wantStatus: 400, wantReason: "FORWARDING_HEADER_NOT_ALLOWED"},
		{desc: "X-Original-URL", raw: get1 + hostH + authN + "X-Original-URL: /v1/spaces/BBBB/messages/M1\r\n" + end, wantStatus: 400, wantReason: "FORWARDING_HEADER_NOT_ALLOWED"},
		{desc: "Via", raw: get1 + hostH + authN + "Via: 1.1 squid\r\n" + end, wantStatus: 400, wantReason: "FORWARDING_HEADER_NOT_ALLOWED"},
		{desc: "two Content-Types", raw: post1 + hostH + authN + jsonCT + "Content-Type: application/x-protobuf\r\n" + msg12, wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},
		{desc: "Content-Encoding br", raw: post1 + hostH + authN + jsonCT + "Content-Encoding: br\r\n" + msg12, wantStatus: 415, wantReason: "CONTENT_ENCODING_NOT_ALLOWED"},
		{desc: "Content-Encoding gzip twice", raw: post1 + hostH + authN + jsonCT + "Content-Encoding: gzip, gzip\r\n" + msg12, wantStatus: 415, wantReason: "CONTENT_ENCODING_NOT_ALLOWED"},
		{desc: "header over 64 KiB (Go's server answers)", raw: get1 + hostH + authN + "X-Goog-Api-Client: " + long(70<<10) + "\r\n" + end, wantStatus: 431},
		{desc: "headers over 64 KiB in all (Go's server answers)", raw: get1 + hostH + authN + strings.Repeat("X-Pad: "+long(1000)+"\r\n", 70) + end, wantStatus: 431},
		{desc: "control byte in a header value (Go's server answers)", raw: get1 + hostH + authN + "X-Goog-Api-Client: a\x00b\r\n" + end, wantStatus: 400},
		{desc: "space before the colon (Go's server answers)", raw: get1 + hostH + "Authorization : Bearer {notifier}\r\n" + end, wantStatus: 400},

		// Connection handling.
		{desc: "Expect other than 100-continue (Go's server answers)", raw: post1 + hostH + authN + "Expect: 200-ok\r\n" + jsonCT + msg12, wantStatus: 417},
		{desc: "Upgrade to h2c", raw: get1 + hostH + authN + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" + end, wantStatus: 400, wantReason: "UPGRADE_NOT_ALLOWED", closes: true},
		{desc: "Upgrade to WebSocket", raw: get1 + hostH + authN + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + end, wantStatus: 400, wantReason: "UPGRADE_NOT_ALLOWED", closes: true},
		{desc: "Upgrade without Connection", raw: get1 + hostH + authN + "Upgrade: websocket\r\n" + end, wantStatus: 400, wantReason: "UPGRADE_NOT_ALLOWED", closes: true},
		{desc: "Connection naming Content-Type", raw: post1 + hostH + authN + "Connection: keep-alive, Content-Type\r\n" + jsonCT + msg12, wantStatus: 400, wantReason: "CONNECTION_OPTION_NOT_ALLOWED", closes: true},
		{desc: "Connection naming Authorization", raw: get1 + hostH + authN + "Connection: Authorization\r\n" + end, wantStatus: 400, wantReason: "CONNECTION_OPTION_NOT_ALLOWED", closes: true},

		// Request smuggling. Go's server settles Content-Length against
		// Transfer-Encoding before the broker runs (see hygiene.go).
		{desc: "CL.TE smuggling on an allowed call", raw: post1 + hostH + authN + jsonCT + clte, wantStatus: 200, forwarded: []string{"spaces.messages.create"}, closes: true},
		{desc: "CL.TE smuggling on a denied call", raw: "POST /v1/spaces/BBBB/messages HTTP/1.1\r\n" + hostH + authN + jsonCT + clte, wantStatus: 403, wantReason: "SPACE_NOT_ALLOWED", closes: true},
		{desc: "CL and TE on a GET", raw: get1 + hostH + authN + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "BODY_NOT_ALLOWED", closes: true},
		{desc: "TE then CL on a GET", raw: get1 + hostH + authN + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", wantStatus: 400, wantReason: "BODY_NOT_ALLOWED", closes: true},
		{desc: "two Content-Lengths that differ (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Content-Length: 12\r\nContent-Length: 50\r\n\r\n{\"text\":\"x\"}", wantStatus: 400},
		{desc: "two equal Content-Lengths (Go's server merges them)", raw: post1 + hostH + authN + jsonCT + "Content-Length: 12\r\n" + msg12, wantStatus: 200, forwarded: []string{"spaces.messages.create"}},
		{desc: "Content-Length list (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Content-Length: 12, 12\r\n\r\n{\"text\":\"x\"}", wantStatus: 400},
		{desc: "signed Content-Length (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Content-Length: +12\r\n\r\n{\"text\":\"x\"}", wantStatus: 400},
		{desc: "Content-Length with leading zero", raw: post1 + hostH + authN + jsonCT + "Content-Length: 012\r\n\r\n{\"text\":\"x\"}", wantStatus: 400, wantReason: "REQUEST_FRAMING_AMBIGUOUS", closes: true},
		{desc: "Transfer-Encoding gzip (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Transfer-Encoding: gzip\r\n\r\n", wantStatus: 501},
		{desc: "Transfer-Encoding gzip, chunked (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked, wantStatus: 501},
		{desc: "Transfer-Encoding twice (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked, wantStatus: 501},
		{desc: "Transfer-Encoding identity (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Transfer-Encoding: identity\r\n" + msg12, wantStatus: 501},
		{desc: "Transfer-Encoding with a space before the colon (Go's server answers)", raw: post1 + hostH + authN + jsonCT + "Transfer-Encoding : chunked\r\n\r\n" + chunked, wantStatus: 400},
		{desc: "Transfer-Encoding on HTTP/1.0", raw: "POST /v1/spaces/AAAA/messages HTTP/1.0\r\n" + hostH + authN + jsonCT + "Transfer-Encoding: chunked\r\n" + msg12, wantStatus: 400, wantReason: "HTTP_VERSION_NOT_SUPPORTED", closes: true},
		{desc: "declared trailer", raw: post1 + hostH + authN + jsonCT + "Transfer-Encoding: chunked\r\nTrailer: X-HTTP-Method-Override\r\n\r\n" + "c\r\n{\"text\":\"x\"}\r\n0\r\nX-HTTP-Method-Override: DELETE\r\n\r\n", wantStatus: 400, wantReason: "TRAILER_NOT_ALLOWED", closes: true},
		{desc: "Expect: 100-continue", raw: post1 + hostH + authN + jsonCT + "Expect: 100-continue\r\n" + msg12, wantStatus: 200, forwarded: []string{"spaces.messages.create"}},

		// Host.
		{desc: "another Host", raw: get1 + "Host: chat.googleapis.com\r\n" + authN + end, wantStatus: 400, wantReason: "HOST_NOT_ALLOWED"},
		{desc: "DNS rebinding Host", raw: get1 + "Host: attacker.example:" + port + "\r\n" + authN + end, wantStatus: 400, wantReason: "HOST_NOT_ALLOWED"},
		{desc: "no Host (Go's server answers)", raw: get1 + authN + end, wantStatus: 400},
		{desc: "two Hosts (Go's server answers)", raw: get1 + hostH + "Host: chat.googleapis.com\r\n" + authN + end, wantStatus: 400},

		// Bodies.
		{desc: "oversized body", raw: post1 + hostH + authN + jsonCT + "Content-Length: 2097152\r\n\r\n{\"text\":\"", wantStatus: 413, wantReason: "BODY_TOO_LARGE"},
		{desc: "body on a GET", raw: get1 + hostH + authN + jsonCT + msg12, wantStatus: 400, wantReason: "BODY_NOT_ALLOWED"},
		{desc: "chunked body on a GET", raw: get1 + hostH + authN + jsonCT + "Transfer-Encoding: chunked\r\n\r\n" + chunked, wantStatus: 400, wantReason: "BODY_NOT_ALLOWED", closes: true},
		{desc: "body on a DELETE", raw: "DELETE /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authO + jsonCT + msg12, wantStatus: 400, wantReason: "BODY_NOT_ALLOWED"},
		{desc: "text/plain body", raw: post1 + hostH + authN + "Content-Type: text/plain\r\n" + msg12, wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},
		{desc: "body without Content-Type", raw: post1 + hostH + authN + msg12, wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},
		{desc: "form body", raw: post1 + hostH + authN + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\ntext=x", wantStatus: 415, wantReason: "CONTENT_TYPE_NOT_ALLOWED"},

		// The policy, over raw TCP.
		{desc: "wrong space", raw: "POST /v1/spaces/BBBB/messages HTTP/1.1\r\n" + hostH + authN + jsonCT + msg12, wantStatus: 403, wantReason: "SPACE_NOT_ALLOWED"},
		{desc: "wrong method", raw: "DELETE /v1/spaces/AAAA/messages/M1 HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 403, wantReason: "METHOD_NOT_ALLOWED"},
		{desc: "method not granted to the reader", raw: list1 + " HTTP/1.1\r\n" + hostH + "Authorization: Bearer {reader}\r\n" + end, wantStatus: 403, wantReason: "METHOD_NOT_ALLOWED"},
		{desc: "media download not granted", raw: "GET /v1/media/spaces/BBBB/messages/M1/attachments/A1?alt=media HTTP/1.1\r\n" + hostH + authN + end, wantStatus: 403, wantReason: "METHOD_NOT_ALLOWED"},
		{desc: "unknown caller", raw: get1 + hostH + "Authorization: Bearer {unknown}\r\n" + end, wantStatus: 401, wantReason: "CALLER_UNKNOWN"},
		{desc: "no credential", raw: get1 + hostH + end, wantStatus: 401, wantReason: "CALLER_CREDENTIAL_MISSING"},

		// Shapes the broker accepts, for contrast: they reach Google as
		// the method the policy allowed, and nothing else.
		{desc: "plain allowed call", raw: post1 + hostH + authN + jsonCT + msg12, wantStatus: 200, forwarded: []string{"spaces.messages.create"}},
		{desc: "allowed system parameters", raw: "POST /v1/spaces/AAAA/messages?fields=name&prettyPrint=false&$.xgafv=2&requestId=r1 HTTP/1.1\r\n" + hostH + authN + jsonCT + "X-Goog-Api-Client: gl-go/1.26 gdcl/0.313.0\r\nX-Goog-Request-Params: parent=spaces%2FBBBB\r\n" + msg12, wantStatus: 200, forwarded: []string{"spaces.messages.create"}},
		{desc: "Connection: close", raw: post1 + hostH + authN + "Connection: close\r\n" + jsonCT + msg12, wantStatus: 200, forwarded: []string{"spaces.messages.create"}, closes: true},
		{desc: "localhost Host", raw: post1 + "Host: localhost:" + port + "\r\n" + authN + jsonCT + msg12, wantStatus: 200, forwarded: []string{"spaces.messages.create"}},
	}

	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			before, arrivedBefore := len(b.emu.Requests()), b.arrived.Load()
			res := b.send(t, fill.Replace(tc.raw), tc.closes)
			if res.status != tc.wantStatus {
				t.Errorf("status = %d, want %d; body %.300s", res.status, tc.wantStatus, res.body)
			}
			if tc.wantReason != "" {
				gerr, ok := chatapi.ParseError(res.body)
				if !ok {
					t.Fatalf("body is not a Google error: %.300s", res.body)
				}
				info, _ := gerr.Info()
				if info.Domain != chatapi.DomainBroker || info.Reason != tc.wantReason {
					t.Errorf("ErrorInfo = %s/%s, want %s/%s (message %q)", info.Domain, info.Reason, chatapi.DomainBroker, tc.wantReason, gerr.Message)
				}
				if gerr.Code != tc.wantStatus || gerr.Status != chatapi.StatusName(tc.wantStatus) || !strings.Contains(gerr.Message, ":") {
					t.Errorf("code %d status %q message %q: want %d %s and a message that says how to fix it", gerr.Code, gerr.Status, gerr.Message, tc.wantStatus, chatapi.StatusName(tc.wantStatus))
				}
			}
			if tc.closes && !res.closed {
				t.Errorf("the broker kept the connection open, want it closed after the response")
			}
			var got []string
			for _, r := range b.emu.Requests()[before:] {
				got = append(got, r.MethodID)
				if strings.Contains(r.Authorization, notifierSecret) || strings.Contains(r.Authorization, opsSecret) {
					t.Errorf("%s reached Google with the caller's secret", r.MethodID)
				}
				if r.Path != "/v1/spaces/AAAA/messages" || strings.Contains(r.RawQuery, "BBBB") {
					t.Errorf("Google saw %s %s?%s, want only the path the policy allowed", r.Verb, r.Path, r.RawQuery)
				}
			}
			if !slices.Equal(got, tc.forwarded) {
				t.Errorf("reached Google: %q, want %q", got, tc.forwarded)
			}
			if n := b.arrived.Load() - arrivedBefore; n != int64(len(tc.forwarded)) {
				t.Errorf("%d requests reached the upstream, want %d", n, len(tc.forwarded))
			}
		})
	}
	if n := len(cases); n < 60 {
		t.Errorf("only %d cases", n)
	}

	// The broker still serves a legitimate call, on a fresh connection.
	before := len(b.emu.Requests())
	res := b.send(t, fill.Replace(post1+hostH+authN+jsonCT+msg12), false)
	if res.status != 200 {
		t.Fatalf("legitimate call after the bypass attempts: status %d, body %s", res.status, res.body)
	}
	if reqs := b.emu.Requests()[before:]; len(reqs) != 1 || reqs[0].MethodID != "spaces.messages.create" || reqs[0].Status != 200 {
		t.Errorf("legitimate call reached Google as %+v, want one spaces.messages.create answered 200", reqs)
	}
}

// A chunked body announces no length, so the broker reads it (up to the
// method's cap) before forwarding anything: an oversized one is answered
// 413 and Google never sees the request.
func TestBypassOversizedChunkedBody(t *testing.T) {
	b := newRawBroker(t)
	before := len(b.emu.Requests())
	var body strings.Builder
	body.WriteString(`{"text":"`)
	body.WriteString(strings.Repeat("x", 1<<20))
	body.WriteString(`"}`)
	var chunks strings.Builder
	for s := body.String(); len(s) > 0; {
		n := min(len(s), 64<<10)
		chunks.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n" + s[:n] + "\r\n")
		s = s[n:]
	}
	chunks.WriteString("0\r\n\r\n")
	raw := post1 + "Host: " + b.addr + "\r\nAuthorization: Bearer " + notifierSecret + "\r\n" + jsonCT + "Transfer-Encoding: chunked\r\n\r\n" + chunks.String()
	res := b.send(t, raw, true)
	if reason := brokerReason(res.body); res.status != 413 || reason != "BODY_TOO_LARGE" {
		t.Errorf("status %d body %.300s, want 413 BODY_TOO_LARGE", res.status, res.body)
	}
	if !res.closed {
		t.Errorf("the broker kept the connection open after a cut-off body")
	}
	if reqs := b.emu.Requests()[before:]; len(reqs) != 0 || b.arrived.Load() != 0 {
		t.Errorf("upstream saw %+v (%d arrived), want nothing", reqs, b.arrived.Load())
	}
	if msgs := b.emu.Messages("spaces/AAAA"); len(msgs) != 0 {
		t.Errorf("the emulator holds %d messages, want none", len(msgs))
	}
}

// What reaches Google of the headers a caller sends: the X-Goog-*
// headers on the allow list, none of the others, and no trailer fields.
func TestBypassForwardedHeaders(t *testing.T) {
	type seen struct {
		header, trailer http.Header
	}
	got := make(chan seen, 2)
	base := newStreamProxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- seen{r.Header.Clone(), r.Trailer.Clone()}
		io.WriteString(w, "{}")
	}))
	host := strings.TrimPrefix(base, "http://")

	// Headers.
	raw := get1 + "Host: " + host + "\r\nAuthorization: Bearer " + notifierSecret + "\r\n" +
		"X-Goog-Api-Client: gl-go/1.26 gdcl/0.313.0\r\n" +
		"X-Goog-FieldMask: name,text\r\n" +
		"X-Goog-Request-Params: name=spaces%2FBBBB%2Fmessages%2FM1\r\n" +
		"X-Goog-Request-Reason: audit\r\n" +
		"X-Goog-Upload-Protocol: resumable\r\n" +
		"x-goog-ext-123-bin: AAAA\r\n" +
		"X-Chat-Broker-Debug: 1\r\n" +
		"User-Agent: test\r\n\r\n"
	res := rawSend(t, host, raw)
	if res.status != 200 {
		t.Fatalf("status %d, body %s", res.status, res.body)
	}
	s := <-got
	for name, want := range map[string]string{
		"X-Goog-Api-Client": "gl-go/1.26 gdcl/0.313.0",
		"X-Goog-Fieldmask":  "name,text",
		"User-Agent":        "test",
	} {
		if v := s.header.Get(name); v != want {
			t.Errorf("Google got %s %q, want %q", name, v, want)
		}
	}
	for name := range s.header {
		if name == "Authorization" && strings.Contains(s.header.Get(name), notifierSecret) {
			t.Errorf("the caller's secret reached Google")
		}
		if hasPrefix(name, "X-Goog-") && name != "X-Goog-Api-Client" && name != "X-Goog-Fieldmask" || hasPrefix(name, "X-Chat-Broker-") {
			t.Errorf("Google got %s: %q", name, s.header.Get(name))
		}
	}

	// Trailer fields on a chunked body the broker streams (not declared
	// in a Trailer header, which is refused).
	raw = post1 + "Host: " + host + "\r\nAuthorization: Bearer " + notifierSecret + "\r\n" + jsonCT +
		"Transfer-Encoding: chunked\r\n\r\nc\r\n{\"text\":\"x\"}\r\n0\r\nX-HTTP-Method-Override: DELETE\r\nAuthorization: Bearer ya29.evil\r\n\r\n"
	if res := rawSend(t, host, raw); res.status != 200 {
		t.Fatalf("status %d, body %s", res.status, res.body)
	}
	s = <-got
	if len(s.trailer) != 0 {
		t.Errorf("Google got trailer fields %v", s.trailer)
	}
	if s.header.Get("X-Http-Method-Override") != "" || strings.Contains(s.header.Get("Authorization"), "evil") {
		t.Errorf("a trailer field reached Google as a header: %v", s.header)
	}
}

// Framing shapes Go's HTTP/1 server never hands to a handler, as HTTP/2
// or another front end could: the broker refuses them itself.
func TestBypassFramingBehindOtherFrontEnds(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		desc   string
		modify func(*http.Request)
		status int
		reason string
	}{
		{"Content-Length and Transfer-Encoding", func(r *http.Request) {
			r.TransferEncoding = []string{"chunked"}
		}, 400, "REQUEST_FRAMING_AMBIGUOUS"},
		{"two equal Content-Lengths", func(r *http.Request) {
			r.Header["Content-Length"] = []string{"12", "12"}
		}, 400, "REQUEST_FRAMING_AMBIGUOUS"},
		{"Transfer-Encoding gzip", func(r *http.Request) {
			r.TransferEncoding = []string{"gzip", "chunked"}
			delete(r.Header, "Content-Length")
			r.ContentLength = -1
		}, 400, "REQUEST_FRAMING_AMBIGUOUS"},
		{"Expect other than 100-continue on HTTP/2", func(r *http.Request) {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
			r.Header.Set("Expect", "200-ok")
		}, 417, "EXPECTATION_NOT_SUPPORTED"},
		{"declared trailer on HTTP/2", func(r *http.Request) {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
			r.Trailer = http.Header{"Authorization": nil}
		}, 400, "TRAILER_NOT_ALLOWED"},
		{"HTTP/3 forwarded as is", func(r *http.Request) {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/3.0", 3, 0
		}, 400, "HTTP_VERSION_NOT_SUPPORTED"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/spaces/AAAA/messages", strings.NewReader(`{"text":"x"}`))
			r.Header.Set("Authorization", "Bearer "+notifierSecret)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Content-Length", "12")
			tc.modify(r)
			w := httptest.NewRecorder()
			e.proxy.ServeHTTP(w, r)
			if w.Code != tc.status || brokerReason(w.Body.Bytes()) != tc.reason {
				t.Errorf("answer %d %s, want %d %s", w.Code, w.Body, tc.status, tc.reason)
			}
			if w.Header().Get("Connection") != "close" {
				t.Errorf("Connection = %q, want close", w.Header().Get("Connection"))
			}
		})
	}
	if n := len(e.emu.Requests()); n != 0 {
		t.Errorf("%d requests reached the emulator", n)
	}
}

// brokerReason returns the ErrorInfo reason of a broker refusal, or "".
func brokerReason(body []byte) string {
	gerr, ok := chatapi.ParseError(body)
	if !ok {
		return ""
	}
	if info, ok := gerr.Info(); ok && info.Domain == chatapi.DomainBroker {
		return info.Reason
	}
	return ""
}

// rawSend writes raw to addr and reads one response.
func rawSend(t *testing.T, addr, raw string) rawResult {
	t.Helper()
	return (&rawBroker{addr: addr}).send(t, raw, false)
}

func hasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
