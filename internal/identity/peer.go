package identity

import (
	"context"
	"net"
)

// Peer is what the kernel says about the process at the other end of a
// Unix-socket connection. The caller cannot forge it.
type Peer struct {
	UID, GID uint32
	PID      int32
}

type peerKey struct{}

// contextWithPeer returns ctx carrying the peer of the connection a
// request arrived on.
func contextWithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the Unix-socket peer of the request's connection, if it
// came over a Unix socket.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// ConnContext is an http.Server.ConnContext that records the kernel's
// peer credentials (SO_PEERCRED) of Unix-socket connections, so the
// proxy can identify unixUID/unixGID callers. TCP connections are left
// as they are. If the credentials cannot be read, the connection carries
// none and only a secret can identify its caller.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	p, err := peerCredentials(uc)
	if err != nil {
		return ctx
	}
	return contextWithPeer(ctx, p)
}
