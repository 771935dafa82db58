package bench

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// The TLS upstream behind the relay speaks HTTP/2 to the app's transport
// and counts what each connection cost it: a fresh connection without a
// session cache is a full handshake, a new connection with one resumes,
// and every request is counted by HTTP version.
func TestTLSUpstreamCountsHandshakes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certFile, keyFile, roots, err := writeSelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	u := &tlsUpstream{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, counters := newChildServer(u.handler()), newChildServer(u.countsHandler())
	go srv.Serve(tls.NewListener(l, u.tlsConfig(cert)))
	go counters.Serve(cl)
	defer srv.Close()
	defer counters.Close()
	relay, stop, err := startRelay(l.Addr().String(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	countsClient := &http.Client{Timeout: 5 * time.Second}
	get := func(client *http.Client, wantProto int) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+relay+opGet.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != string(messageJSON) || resp.ProtoMajor != wantProto {
			t.Fatalf("GET through the relay: %s %s, %q, %v: want HTTP/%d 200 and the message", resp.Proto, resp.Status, body, err, wantProto)
		}
	}
	check := func(what string, want upstreamCounts) {
		t.Helper()
		got, err := readCounts(countsClient, cl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: counts %+v, want %+v", what, got, want)
		}
	}

	// The app's transport: HTTP/2, one connection for two calls, no
	// session cache, so a second connection is a full handshake again.
	app := &http.Client{Transport: appTransport(roots)}
	get(app, 2)
	get(app, 2)
	check("app, one connection", upstreamCounts{Full: 1, H2: 2})
	app.CloseIdleConnections()
	get(app, 2)
	check("app, a second connection", upstreamCounts{Full: 2, H2: 3})

	// With a session cache the second connection resumes; HTTP/1.1 is
	// counted apart.
	cached := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ClientSessionCache: tls.NewLRUClientSessionCache(4)},
	}}
	get(cached, 1)
	cached.CloseIdleConnections()
	get(cached, 1)
	cached.CloseIdleConnections()
	check("session cache", upstreamCounts{Full: 3, Resumed: 1, H2: 3, H1: 2})
}
