package proxy

import (
	"crypto/tls"
	"errors"
	"syscall"
)

// alive reports whether an idle connection is still open, by peeking at
// its socket without blocking: the upstream closing it (EOF, a reset) or
// sending on a plain connection (nothing is owed on an idle HTTP/1.1
// connection; a 408 before a close, say) rules it out. On TLS, bytes
// may be a session ticket and are left to the next read.
func (pc *h1Conn) alive() bool {
	if pc.raw == nil {
		return true
	}
	_, isTLS := pc.nc.(*tls.Conn)
	var b [1]byte
	ok := true
	err := pc.raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN):
		case err != nil, n == 0, !isTLS:
			ok = false
		}
		return true
	})
	return err == nil && ok
}
