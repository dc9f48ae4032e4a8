// Package web is the chat server's web front end: it serves a single-page
// client, embedded in the binary, and a WebSocket endpoint whose sessions
// the chat server serves exactly as it serves TCP connections.
//
// A Gateway is both an http.Handler and a net.Listener: the HTTP server
// hands it requests, and the chat server (server.Server.Serve) accepts from
// it the WebSocket connections those requests upgraded to, adapted to
// net.Conn. The bytes of the binary messages a browser sends are the bytes
// of its frames (PROTOCOL.md section 2), and each write of the server is
// one binary message; so the admission, limits, pacing and stdout lines are
// the server's own, unchanged. See docs/WEB.md.
package web

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/gochat/chat/internal/protocol"
)

// Path is where the WebSocket endpoint is served.
const Path = "/ws"

// Buffer sizes of a WebSocket connection once upgraded (net/http's are
// 4 KiB each). Chat frames are small; file content is read and written
// around the buffers, so small ones cost little speed and keep an idle
// client small.
const (
	readBufferSize  = 1 << 10
	writeBufferSize = 2 << 10
)

// Config holds a Gateway's settings.
type Config struct {
	// AllowOrigins lists the origins, besides the page's own, whose pages
	// may open a WebSocket: host patterns ("chat.example.org",
	// "*.example.org") or, with a scheme, origin patterns
	// ("https://chat.example.org"), matched as path.Match does, ignoring
	// case. A request without an Origin header (not from a browser) is
	// always let through.
	AllowOrigins []string
	// TrustedProxies lists the addresses of reverse proxies whose
	// X-Forwarded-For header is believed. A request from one of them is
	// served as coming from the right-most address in that header that is
	// not itself a trusted proxy; the per-address limit and the logs see
	// that address. Empty: the header is ignored.
	TrustedProxies []netip.Prefix
	// Hosts lists the host names and addresses (patterns, as
	// AllowOrigins's hosts) that a WebSocket upgrade's Host header may
	// name; others are refused with 403 (DNS rebinding). Empty: any.
	// Flags.Start gives DefaultHosts when --http-hosts is not set.
	Hosts []string
	// MaxFileSize is the server's largest file, told to the page so that
	// it refuses a larger one before sending it (default: the protocol's).
	MaxFileSize int64
	// HeartbeatTimeout is the chat server's heartbeat timeout, told to
	// the page (0: the page's default, 15 s): a page granted heartbeat
	// pings after a third of it without a frame from the server, and
	// takes the connection as lost after all of it (docs/WEB.md).
	HeartbeatTimeout time.Duration
	// Peers lists the page URLs of a cluster's other nodes
	// (http[s]://HOST[:PORT]/), where the page may resume its session
	// when this node dies: told to the page, allowed by its
	// Content-Security-Policy, and their pages' origins accepted here
	// (peers.go).
	Peers []string
	// Logger receives diagnostics (default: discarded).
	Logger *slog.Logger
}

// ErrClosed is returned by Accept once the Gateway is closed.
var ErrClosed = errors.New("web: gateway closed")

// Gateway serves the web client and its WebSocket endpoint, and yields the
// endpoint's connections through Accept. Create it with New.
type Gateway struct {
	cfg  Config
	csp  string // the Content-Security-Policy of every response
	page http.Handler
	addr net.Addr // what Addr reports

	conns     chan net.Conn // upgraded connections, to Accept
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// New returns a Gateway with cfg's settings. addr is what its Addr method
// reports (the HTTP listener's address); it may be nil.
func New(cfg Config, addr net.Addr) (*Gateway, error) {
	for _, p := range cfg.AllowOrigins {
		if err := checkOriginPattern(p); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Hosts {
		if err := checkHostPattern(p); err != nil {
			return nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = protocol.DefaultMaxFileSize
	}
	if addr == nil {
		addr = gatewayAddr{}
	}
	peers, err := parsePeers(cfg.Peers)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	for _, p := range peers {
		cfg.AllowOrigins = append(cfg.AllowOrigins, p.origin)
	}
	return &Gateway{
		cfg:   cfg,
		csp:   contentSecurityPolicy(peers),
		page:  pageHandler(pageConfig{MaxFileSize: cfg.MaxFileSize, HeartbeatMs: cfg.HeartbeatTimeout.Milliseconds(), Peers: peerURLs(peers)}),
		addr:  addr,
		conns: make(chan net.Conn),
		done:  make(chan struct{}),
	}, nil
}

// ServeHTTP serves the page, its files, and the WebSocket endpoint.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header(), g.csp)
	if r.URL.Path == Path {
		g.serveWebSocket(w, r)
		return
	}
	g.page.ServeHTTP(w, r)
}

// serveWebSocket upgrades the request and hands the connection to Accept.
// The handler's goroutine ends there: the chat server's connection
// goroutine owns the connection from then on.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	select {
	case <-g.done:
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	remote := g.clientAddr(r)
	if !g.hostAllowed(r.Host) {
		g.cfg.Logger.Info("websocket refused", "remote", remote.String(), "host", r.Host, "err", "host not allowed (--http-hosts)")
		http.Error(w, "host not allowed", http.StatusForbidden)
		return
	}
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		OriginPatterns:  g.cfg.AllowOrigins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has answered (403 for a foreign origin, 426 for a
		// request that is no upgrade).
		g.cfg.Logger.Info("websocket refused", "remote", remote.String(), "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	c := newWSConn(ws, hw.raw, hw.br, remote)
	c.pipelined = hw.pipelined
	c.shutdown = g.done
	select {
	case g.conns <- c:
	case <-g.done:
		c.Close()
	}
}

// Accept waits for the next WebSocket connection. It implements
// net.Listener.
func (g *Gateway) Accept() (net.Conn, error) {
	select {
	case c := <-g.conns:
		return c, nil
	case <-g.done:
		return nil, ErrClosed
	}
}

// Close stops handing out connections: Accept returns ErrClosed, and new
// WebSocket requests are answered 503. It implements net.Listener; the HTTP
// server that serves the page is its caller's to close.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() { close(g.done) })
	return nil
}

// Addr returns the address given to New. It implements net.Listener.
func (g *Gateway) Addr() net.Addr { return g.addr }

type gatewayAddr struct{}

func (gatewayAddr) Network() string { return "websocket" }
func (gatewayAddr) String() string  { return "websocket" }

// clientAddr returns the address the request comes from: its peer's, or,
// when the peer is a trusted proxy, the one its X-Forwarded-For header
// names.
func (g *Gateway) clientAddr(r *http.Request) net.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return stringAddr(r.RemoteAddr)
	}
	if len(g.cfg.TrustedProxies) == 0 || !g.trusted(peer.Addr()) {
		return net.TCPAddrFromAddrPort(peer)
	}
	if a, ok := g.forwardedFor(r.Header.Values("X-Forwarded-For")); ok {
		// The proxy names no port; the peer's stands in for it, so that
		// the address still parses as host:port.
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, peer.Port()))
	}
	return net.TCPAddrFromAddrPort(peer)
}

// forwardedFor returns the right-most address of the X-Forwarded-For
// values that is not a trusted proxy: the address that the nearest
// trusted proxy saw. Entries to its left were written by the client and
// prove nothing.
func (g *Gateway) forwardedFor(values []string) (netip.Addr, bool) {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		a = a.Unmap()
		if !g.trusted(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (g *Gateway) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// hijackWriter passes the WebSocket library's Hijack through, keeping the
// connection and its read buffer (for the idle wait), and gives the
// connection smaller buffers than net/http's.
type hijackWriter struct {
	http.ResponseWriter
	raw       net.Conn
	br        *bufio.Reader
	pipelined bool // input arrived before the upgrade's answer
}

// Hijack implements http.Hijacker.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	br, bw := brw.Reader, brw.Writer
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(raw, readBufferSize)
	} else {
		// The library moves these bytes out of the buffer, where the
		// idle wait cannot see them: this connection never waits idle.
		h.pipelined = true
	}
	if bw.Buffered() == 0 {
		bw = bufio.NewWriterSize(raw, writeBufferSize)
	}
	h.raw, h.br = raw, br
	return raw, bufio.NewReadWriter(br, bw), nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// checkOriginPattern reports a pattern path.Match would reject.
func checkOriginPattern(p string) error {
	if p == "" {
		return errors.New("web: empty origin pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("web: bad origin pattern %q: %w", p, err)
	}
	return nil
}
