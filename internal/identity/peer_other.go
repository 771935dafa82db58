//go:build !linux

package identity

import (
	"errors"
	"net"
)

func peerCredentials(*net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("proxy: peer credentials are read only on Linux")
}
