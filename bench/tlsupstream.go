package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// countsPath is where the TLS upstream's counters listener answers with
// its upstreamCounts as JSON. It is not a Chat path, and not on the TLS
// listener.
const countsPath = "/bench/handshakes"

// upstreamCounts is what the TLS upstream has counted since it started:
// the TLS handshakes it completed, full and resumed, and the Chat
// requests it received over each HTTP version.
type upstreamCounts struct {
	Full    int `json:"full"`
	Resumed int `json:"resumed"`
	H1      int `json:"h1"` // requests over HTTP/1.x
	H2      int `json:"h2"` // requests over HTTP/2
}

func (c upstreamCounts) minus(o upstreamCounts) upstreamCounts {
	return upstreamCounts{Full: c.Full - o.Full, Resumed: c.Resumed - o.Resumed, H1: c.H1 - o.H1, H2: c.H2 - o.H2}
}

func (c *upstreamCounts) add(o upstreamCounts) {
	c.Full, c.Resumed, c.H1, c.H2 = c.Full+o.Full, c.Resumed+o.Resumed, c.H1+o.H1, c.H2+o.H2
}

// tlsUpstream is Upstream as Google serves Chat: over TLS, HTTP/2 to a
// client that offers it and HTTP/1.1 otherwise, with session tickets (Go's
// default), so a client with a session cache can resume instead of doing
// a full handshake. It counts what a connection costs it: handshakes, and
// requests by HTTP version.
type tlsUpstream struct {
	full, resumed, h1, h2 atomic.Int64
}

// tlsConfig serves cert and counts every handshake. VerifyConnection runs
// once per handshake, full or resumed, when the server has everything it
// needs to complete it (there is no client certificate to check); the
// http.Server's ConnState hook would not do, as it is not called for
// HTTP/2 connections becoming active.
func (u *tlsUpstream) tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.DidResume {
				u.resumed.Add(1)
			} else {
				u.full.Add(1)
			}
			return nil
		},
	}
}

// handler is Upstream, counting requests by HTTP version.
func (u *tlsUpstream) handler() http.Handler {
	up := Upstream()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 {
			u.h2.Add(1)
		} else {
			u.h1.Add(1)
		}
		up.ServeHTTP(w, r)
	})
}

func (u *tlsUpstream) counts() upstreamCounts {
	return upstreamCounts{
		Full: int(u.full.Load()), Resumed: int(u.resumed.Load()),
		H1: int(u.h1.Load()), H2: int(u.h2.Load()),
	}
}

// countsHandler answers GET countsPath with the counts as JSON, and 404
// otherwise.
func (u *tlsUpstream) countsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != countsPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(u.counts())
	})
}

// serveTLSUpstream is the tls-upstream child: tlsUpstream with the
// certificate and key in certFile and keyFile, on a loopback port, and
// its counters on another, plain HTTP, so that reading them costs no
// handshake. Its ready line is "listening <tls addr> counters <addr>".
func serveTLSUpstream(certFile, keyFile string, stderr io.Writer) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("%s, %s: %w", tlsCertEnv, tlsKeyEnv, err)
	}
	u := &tlsUpstream{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return err
	}
	fmt.Fprintf(stderr, "listening %s counters %s\n", l.Addr(), cl.Addr())
	// Serve enables HTTP/2 on a listener of *tls.Conn that offers h2.
	return serveUntilStopped(map[*http.Server]net.Listener{
		newChildServer(u.handler()):       tls.NewListener(l, u.tlsConfig(cert)),
		newChildServer(u.countsHandler()): cl,
	})
}

// tlsUpstreamProc is a running tls-upstream child.
type tlsUpstreamProc struct {
	*child
	addr     string // host:port of TLS
	counters string // host:port of plain-HTTP counters
	client   *http.Client
}

// startTLSUpstream starts self as the tls-upstream child serving the
// certificate and key in certFile and keyFile.
func startTLSUpstream(self, certFile, keyFile string) (*tlsUpstreamProc, error) {
	c, line, err := startServerChild(self, roleTLSUpstream, "", tlsCertEnv+"="+certFile, tlsKeyEnv+"="+keyFile)
	if err != nil {
		return nil, err
	}
	addr, counters, ok := strings.Cut(line, " counters ")
	if !ok {
		c.stop()
		return nil, fmt.Errorf("bench: tls upstream's ready line has no counters address: %q", line)
	}
	return &tlsUpstreamProc{child: c, addr: addr, counters: counters, client: &http.Client{Timeout: 5 * time.Second}}, nil
}

// counts reads the upstream's counters.
func (p *tlsUpstreamProc) counts() (upstreamCounts, error) {
	return readCounts(p.client, p.counters)
}

func readCounts(client *http.Client, addr string) (upstreamCounts, error) {
	var c upstreamCounts
	resp, err := client.Get("http://" + addr + countsPath)
	if err != nil {
		return c, fmt.Errorf("bench: tls upstream's counters: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("bench: tls upstream's counters: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&c); err != nil {
		return c, fmt.Errorf("bench: tls upstream's counters: %w", err)
	}
	return c, nil
}

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1
// (ECDSA P-256, valid for a day) and its key as PEM into dir, and returns
// the files and a pool holding the certificate: clients trust it as their
// only root, so nothing outside this run can pass for the upstream.
func writeSelfSigned(dir string) (certFile, keyFile string, roots *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return "", "", nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "chat-broker-bench upstream"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "upstream-cert.pem"), filepath.Join(dir, "upstream-key.pem")
	err = errors.Join(
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644),
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600),
	)
	if err != nil {
		return "", "", nil, err
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots, nil
}
