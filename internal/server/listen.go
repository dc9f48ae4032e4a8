package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// keepAlive makes the kernel probe idle peers so that dead ones are found:
// after 15 s of silence, every 15 s, giving up after 4 unanswered probes.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 4}

// Listen opens a TCP listener on addr whose connections use TCP
// keepalive. With tlsCfg not nil, connections speak TLS.
func Listen(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return ln, nil
}

// LoadTLS returns a server TLS configuration for the certificate and key
// in the given PEM files.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS key pair: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Inherited returns ln, a TCP listener the server did not open itself
// (one passed by a service manager, internal/activation), set up as Listen
// sets up its own: its connections use TCP keepalive, and with tlsCfg not
// nil they speak TLS.
func Inherited(ln *net.TCPListener, tlsCfg *tls.Config) net.Listener {
	var l net.Listener = keepAliveListener{ln}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	return l
}

// keepAliveListener gives each accepted connection the keepalive that
// Listen's ListenConfig would have.
type keepAliveListener struct{ *net.TCPListener }

func (l keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	c.SetKeepAliveConfig(keepAlive)
	return c, nil
}
