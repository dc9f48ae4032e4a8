package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait on an event: generous, for a loaded
// machine.
const waitTimeout = 15 * time.Second

// lineLog collects the server's stdout (or log) lines and lets tests wait
// for one.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced on every write
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns the lines so far.
func (l *lineLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// wait blocks until a line for which match is true has been written.
func (l *lineLog) waitFor(t *testing.T, what string, match func(string) bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		for _, s := range l.lines {
			if match(s) {
				l.mu.Unlock()
				return
			}
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no line %s after %v; lines: %q", what, waitTimeout, l.snapshot())
		}
	}
}

// wait blocks until the line want has been written.
func (l *lineLog) wait(t *testing.T, want string) {
	t.Helper()
	l.waitFor(t, fmt.Sprintf("%q", want), func(s string) bool { return s == want })
}

// stack is a chat server serving a TCP listener and, through a Gateway, an
// HTTP test server.
type stack struct {
	srv     *server.Server
	tcpAddr string
	httpURL string // http://127.0.0.1:PORT
	out     *lineLog
	logs    *lineLog
}

// startStack starts a chat server with cfg (Stdout and Logger are the
// stack's) and a gateway with wcfg, and stops both when t ends.
func startStack(t *testing.T, cfg server.Config, wcfg Config) *stack {
	t.Helper()
	st := &stack{out: newLineLog(), logs: newLineLog()}
	cfg.Stdout = st.out
	cfg.Logger = slog.New(slog.NewTextHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st.srv = server.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.tcpAddr = ln.Addr().String()
	wcfg.Logger = cfg.Logger
	g, err := New(wcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(g)
	st.httpURL = hs.URL
	served := make(chan struct{}, 2)
	go func() { st.srv.Serve(ln); served <- struct{}{} }()
	go func() { st.srv.Serve(g); served <- struct{}{} }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := st.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
		<-served
		hs.Close()
	})
	return st
}

// peer is a test client, over TCP or a WebSocket, speaking raw frames.
type peer struct {
	t    *testing.T
	name string
	nc   net.Conn
	r    *protocol.Reader
}

func newPeer(t *testing.T, name string, nc net.Conn) *peer {
	p := &peer{t: t, name: name, nc: nc, r: protocol.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	return p
}

// dialTCP connects over TCP.
func (st *stack) dialTCP(t *testing.T, name string) *peer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", st.tcpAddr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return newPeer(t, name, nc)
}

// dialWS opens a WebSocket to the endpoint with the given request headers.
func (st *stack) dialWS(t *testing.T, name string, header http.Header) *peer {
	t.Helper()
	p, resp, err := st.tryWS(name, header)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", name, err, resp)
	}
	p.t = t
	t.Cleanup(func() { p.nc.Close() })
	return p
}

// tryWS opens a WebSocket, returning the handshake's response on failure.
func (st *stack) tryWS(name string, header http.Header) (*peer, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(st.httpURL, "http")+Path, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	// The connection outlives the dial's context.
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	return &peer{name: name, nc: nc, r: protocol.NewReader(nc)}, resp, nil
}

// send writes raw bytes.
func (p *peer) send(b []byte) {
	p.t.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("%s: write: %v", p.name, err)
	}
}

// join sends join (after ext_hello for features, if any) and waits until
// the user list shows the name, so that the user is surely admitted.
func (p *peer) join(features ...string) {
	p.t.Helper()
	var b []byte
	if len(features) > 0 {
		b = protocol.AppendExtHello(nil, features)
	}
	p.send(protocol.AppendJoin(b, protocol.Join, p.name))
	if len(features) > 0 {
		if h := p.next(); h.Type != protocol.ExtHello {
			p.t.Fatalf("%s: got %s, want ext_hello", p.name, h.Name)
		}
		p.payload()
	}
	p.send(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	p.expect(protocol.ResponseUsersList)
}

// next reads the next frame's header.
func (p *peer) next() protocol.Header {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	h, err := p.r.ReadHeader()
	if err != nil {
		p.t.Fatalf("%s: read: %v", p.name, err)
	}
	return h
}

// payload reads the current frame's payload.
func (p *peer) payload() []byte {
	p.t.Helper()
	b, err := p.r.ReadPayload(nil)
	if err != nil {
		p.t.Fatalf("%s: read payload: %v", p.name, err)
	}
	return b
}

// expect reads the next frame, which must be of type want, and returns
// its payload.
func (p *peer) expect(want protocol.Type) []byte {
	p.t.Helper()
	h := p.next()
	if h.Type != want {
		p.t.Fatalf("%s: got %s frame (%d bytes), want %s", p.name, h.Name, h.Length, want)
	}
	return p.payload()
}

// expectClosed waits until the server closes the connection, reading and
// discarding whatever comes first.
func (p *peer) expectClosed() {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, p.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		p.t.Fatalf("%s: connection still open after %v", p.name, waitTimeout)
	}
}

func sendMessage(names []string, text string) []byte {
	return protocol.AppendMessage(nil, protocol.SendMessage, names, []byte(text))
}
