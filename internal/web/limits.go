package web

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Limits bound what one address may hold of an HTTP listener (the web
// client's or the metrics'), before any WebSocket upgrade: issue 23 found
// 300 connections held from one address, each a descriptor, since the
// server's per-address limit counts sessions only once they are upgraded.
type Limits struct {
	// MaxConnsPerAddr is the most connections open at once from one IP
	// address (0: no limit); the one more is closed as it is accepted.
	// The server's --max-conns-per-ip: a WebSocket session counts here
	// while its connection is open and in the server's own count too.
	MaxConnsPerAddr int
	// LimitLoopback applies MaxConnsPerAddr to loopback addresses too
	// (the server's --limit-loopback); otherwise they are exempt, as they
	// are from the server's limit.
	LimitLoopback bool
	// Exempt lists addresses not limited: trusted reverse proxies, which
	// carry every browser's connections.
	Exempt []netip.Prefix
}

// bodyTimeout bounds the reading of a whole request, headers and body. No
// handler here reads a body (they are refused, see refuseBodies), so it
// only stops a client that holds a request half sent; net/http clears it
// when a WebSocket upgrade takes the connection over.
const bodyTimeout = 20 * time.Second

// LimitListener returns ln with lim applied to the connections it accepts.
// A refused connection is closed at once and logged at debug level (a
// flood would otherwise flood the log).
func LimitListener(ln net.Listener, lim Limits, logger *slog.Logger) net.Listener {
	if lim.MaxConnsPerAddr <= 0 {
		return ln
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &limitListener{Listener: ln, lim: lim, logger: logger, open: map[netip.Addr]int{}}
}

type limitListener struct {
	net.Listener
	lim    Limits
	logger *slog.Logger

	mu   sync.Mutex
	open map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a, ok := l.limited(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		l.mu.Lock()
		n := l.open[a]
		if n >= l.lim.MaxConnsPerAddr {
			l.mu.Unlock()
			l.logger.Debug("http connection refused: too many from this address", "remote", c.RemoteAddr().String(), "open", n)
			c.Close()
			continue
		}
		l.open[a] = n + 1
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(a) }}, nil
	}
}

// limited returns the address to count a connection from, if it is
// counted.
func (l *limitListener) limited(ra net.Addr) (netip.Addr, bool) {
	ta, ok := ra.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	a := ta.AddrPort().Addr().Unmap()
	if a.IsLoopback() && !l.lim.LimitLoopback {
		return netip.Addr{}, false
	}
	for _, p := range l.lim.Exempt {
		if p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	return a, true
}

func (l *limitListener) release(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[a] <= 1 {
		delete(l.open, a)
	} else {
		l.open[a]--
	}
}

// countedConn is a connection counted by a limitListener until it is
// closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close frees the connection's place before it closes it, so that a peer
// who sees the close may connect again at once.
func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// SyscallConn passes the descriptor through, for the idle wait of a
// WebSocket session (conn.go).
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	return sc.SyscallConn()
}

// refuseBodies answers 413 to a request that declares a body, and closes
// its connection: no endpoint here takes one (the page and /metrics are
// GET and HEAD, a WebSocket upgrade has none). Answering without reading
// it is not enough: after the handler, net/http reads up to 256 KiB of
// the body to reuse the connection (even with "Connection: close"), so
// that "Content-Length: 100" and nothing after held a connection until
// the peer went (issue 23). A read deadline already passed makes that
// read fail at once, after the answer is written; the connection then
// closes.
func refuseBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			http.NewResponseController(w).SetReadDeadline(time.Now())
			http.Error(w, "request body not accepted", http.StatusRequestEntityTooLarge)
			return
		}
		h.ServeHTTP(w, r)
	})
}
