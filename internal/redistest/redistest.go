package redistest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a server.
type Options struct {
	// Password, if set, is required of clients (requirepass).
	Password string
	// TLS serves TLS only, with a certificate for 127.0.0.1 signed by a
	// CA written to Server.CAFile.
	TLS bool
	// cluster starts the server in cluster mode (StartCluster).
	cluster bool
}

// Server is a running redis-server.
type Server struct {
	// Addr is host:port.
	Addr string
	// URL is redis://Addr/0, or rediss:// with TLS.
	URL string
	// CAFile is the PEM file of the CA that signed the TLS certificate.
	CAFile string

	t    testing.TB
	bin  string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server, or skips the test where it is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CHAT_BROKER_REQUIRE_REDIS") != "" {
			t.Fatalf("redis-server is not installed, and CHAT_BROKER_REQUIRE_REDIS is set: apt-get install redis-server")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); skipping the tests against real Redis")
	}
	port := freePort(t)
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	s.args = []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--loglevel", "notice", "--logfile", ""}
	if opts.Password != "" {
		s.args = append(s.args, "--requirepass", opts.Password)
	}
	if opts.cluster {
		s.args = append(s.args, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "1000")
	}
	if opts.TLS {
		cert, key, ca := writeCerts(t, dir)
		s.CAFile = ca
		s.args = append(s.args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no")
		s.URL = "rediss://" + s.Addr + "/0"
	} else {
		s.args = append(s.args, "--port", strconv.Itoa(port))
		s.URL = "redis://" + s.Addr + "/0"
	}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server (again, on the same port) and returns once
// it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, s.args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	ready := make(chan struct{})
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said {
				log.WriteString(sc.Text() + "\n")
			}
			if !said && strings.Contains(sc.Text(), "Ready to accept connections") {
				said = true
				close(ready)
			}
		}
		if !said {
			close(ready)
		}
		io.Copy(io.Discard, out)
	}()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
	}
	select {
	case <-done:
		s.t.Fatalf("redis-server exited at start:\n%s", log.String())
	default:
	}
	// Ready is said once the listeners are up; the port now accepts.
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		cmd.Process.Kill()
		<-done
		s.t.Fatalf("redis-server does not accept connections on %s: %v\n%s", s.Addr, err, log.String())
	}
	c.Close()
	s.cmd, s.done = cmd, done
}

// Stop stops the server (SIGKILL: as sudden as a crash) and waits for it
// to exit. Restart starts it again.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Pause stops the server's process (SIGSTOP) without closing its
// connections: Redis hangs, as a slow or partitioned one does. Resume
// continues it.
func (s *Server) Pause() { s.signal("STOP") }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal("CONT") }

func (s *Server) signal(sig string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if out, err := exec.Command("kill", "-"+sig, strconv.Itoa(s.cmd.Process.Pid)).CombinedOutput(); err != nil {
		s.t.Fatalf("kill -%s: %v %s", sig, err, out)
	}
}

// StartCluster runs a Redis Cluster of n masters on loopback, the hash
// slots split evenly between them, and returns once every node says the
// cluster is ok. It skips the test where redis-server is not installed,
// as Start does.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	clients := make([]*redis.Client, n)
	for i := range nodes {
		nodes[i] = Start(t, Options{cluster: true})
		clients[i] = redis.NewClient(&redis.Options{Addr: nodes[i].Addr})
		defer clients[i].Close()
	}
	ctx := context.Background()
	const slots = 16384
	for i, c := range clients {
		first, last := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("cluster: node %d: ADDSLOTSRANGE %d %d: %v", i, first, last, err)
		}
	}
	for _, s := range nodes[1:] {
		host, port, _ := net.SplitHostPort(s.Addr)
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
			t.Fatalf("cluster: MEET %s: %v", s.Addr, err)
		}
	}
	// The nodes gossip until each knows every slot's owner.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for i := 0; i < n; {
		info, err := clients[i].ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
			i++
			continue
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("cluster: node %d not ok after 30s: %v\n%s", i, err, info)
		}
	}
	return nodes
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeCerts writes a CA and a server certificate for 127.0.0.1 that it
// signs, and returns the paths of the server's certificate and key and
// of the CA's certificate.
func writeCerts(t testing.TB, dir string) (cert, key, ca string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("server.crt", "CERTIFICATE", srvDER), write("server.key", "EC PRIVATE KEY", keyDER), write("ca.crt", "CERTIFICATE", caDER)
}

// String names the server in test logs.
func (s *Server) String() string { return fmt.Sprintf("redis-server at %s", s.URL) }
