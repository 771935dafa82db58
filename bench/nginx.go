package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// FindNginx returns the nginx binary: on PATH, or Debian's /usr/sbin
// (not on a non-root PATH). "" when nginx is not installed.
func FindNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// nginxConf injects a static Authorization header, as the bare proxy
// does, with one worker and keep-alive to the upstream: nginx configured
// the way one would configure it for this job. Bodies stream (no
// buffering either way), like the broker's.
var nginxConf = template.Must(template.New("nginx").Parse(`daemon off;
master_process on;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  keepalive_requests 1000000;
  upstream chat {
    server {{.Upstream}};
    keepalive 128;
  }
  server {
    listen {{.Listen}};
    location / {
      proxy_pass http://chat;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {{.Token}}";
      proxy_buffering off;
      proxy_request_buffering off;
      client_max_body_size 0;
    }
  }
}
`))

// nginxProc is a running nginx: the master and its one worker.
type nginxProc struct {
	*child
	addr string
	dir  string
}

// startNginx writes a configuration into a directory of its own and
// starts nginx on a free loopback port, in front of upstream (host:port).
// The directory is world-readable: run as root, nginx's worker runs as
// nobody and must reach its temporary paths.
func startNginx(bin, upstream string) (*nginxProc, error) {
	dir, err := os.MkdirTemp("", "chat-broker-bench-nginx-")
	if err != nil {
		return nil, err
	}
	n, err := startNginxIn(bin, dir, upstream)
	if err != nil {
		os.RemoveAll(dir)
	}
	return n, err
}

func startNginxIn(bin, dir, upstream string) (*nginxProc, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	// Pick a free port: nginx cannot report the port it was given for :0.
	// Another process could take it before nginx binds; the run then
	// fails with nginx's own error, which says so.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	f, err := os.Create(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		return nil, err
	}
	err = nginxConf.Execute(f, struct{ Dir, Upstream, Listen, Token string }{dir, upstream, addr, staticToken})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// nginx says nothing on stderr when it starts: readiness is a
	// successful connect, below.
	c, err := startChild("nginx", bin, []string{"-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")},
		cleanEnv(), nil, func(string) bool { return false })
	if err != nil {
		return nil, err
	}
	n := &nginxProc{child: c, addr: addr, dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			if len(n.pids()) >= 2 {
				return n, nil
			}
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx exited (%v): %s %s", c.err, c.lastLines(), strings.TrimSpace(string(log)))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, errors.New("nginx not listening after 10s")
		}
	}
}

// pids are the master's and its workers'.
func (n *nginxProc) pids() []int {
	return append([]int{n.pid()}, childrenOf(n.pid())...)
}

// stop asks nginx for a fast shutdown (SIGTERM), as child.stop does, and
// removes its directory.
func (n *nginxProc) stop() {
	n.child.stop()
	os.RemoveAll(n.dir)
}
