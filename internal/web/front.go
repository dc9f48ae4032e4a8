package web

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/gochat/chat/internal/server"
)

// Start serves the web front end as f says, if f.Addr or f.Inherited is
// set: it listens on f.Addr (or takes f.Inherited), serves the page over
// HTTP (HTTPS and WSS with tlsCfg), and hands the WebSocket connections to
// serve (the chat server's Serve) in a goroutine of its own, which ends
// when the chat server shuts down. With neither it does nothing and
// returns nil, whose Stop does nothing.
func (f *Flags) Start(serve func(net.Listener) error, tlsCfg *tls.Config, maxFileSize int64, logger *slog.Logger) (*Front, error) {
	var ln net.Listener
	switch {
	case f.Inherited != nil:
		ln = server.Inherited(f.Inherited, nil)
	case f.Addr != "":
		var err error
		if ln, err = server.Listen(context.Background(), f.Addr, nil); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	// The limit counts TCP connections, before any TLS handshake.
	lim := f.Limits
	lim.Exempt = append(append([]netip.Prefix(nil), lim.Exempt...), f.TrustedProxies...)
	ln = withTLS(LimitListener(ln, lim, logger), tlsCfg)
	hosts := f.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts(f.Addr, ln.Addr())
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	g, err := New(Config{AllowOrigins: f.AllowOrigins, TrustedProxies: f.TrustedProxies, Hosts: hosts, MaxFileSize: maxFileSize, HeartbeatTimeout: f.HeartbeatTimeout, Peers: f.Peers, Logger: logger}, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	hs := NewHTTPServer(g, logger)
	logger.Info("serving the web client", "addr", scheme+"://"+ln.Addr().String()+"/")
	go hs.Serve(ln)
	go serve(g)
	return &Front{addr: ln.Addr(), hs: hs}, nil
}

// Front is a web front end started by Flags.Start.
type Front struct {
	addr net.Addr
	hs   *http.Server
}

// Addr returns the address the page is served at.
func (f *Front) Addr() net.Addr { return f.addr }

// Stop closes the HTTP server (the WebSocket sessions are the chat
// server's to end). It does nothing on a nil Front.
func (f *Front) Stop() {
	if f != nil {
		f.hs.Close()
	}
}

// NewHTTPServer returns the HTTP server for h, with timeouts that keep
// idle or slow HTTP connections (not yet WebSockets) from piling up, and
// requests with a body refused (refuseBodies). Its own error log goes to
// logger at debug level.
func NewHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           refuseBodies(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       bodyTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}
