package web

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/gochat/chat/internal/server"
)

// Listen opens the HTTP listener, with the chat server's TCP keepalive.
// With tlsCfg it speaks TLS, offering HTTP/1.1 only (WebSocket upgrades
// need it).
func Listen(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Listener, error) {
	ln, err := server.Listen(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	return withTLS(ln, tlsCfg), nil
}

// withTLS returns ln speaking TLS with tlsCfg, HTTP/1.1 only, or ln itself
// when tlsCfg is nil.
func withTLS(ln net.Listener, tlsCfg *tls.Config) net.Listener {
	if tlsCfg == nil {
		return ln
	}
	cfg := tlsCfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	return tls.NewListener(ln, cfg)
}
