package web

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait on an event: chattest's, generous for a
// loaded machine, so that every suite waits as long.
const waitTimeout = chattest.Timeout

// stack is a chat server serving a TCP listener and, through a Gateway, an
// HTTP test server.
type stack struct {
	srv     *server.Server
	tcpAddr string
	httpURL string // http://127.0.0.1:PORT
	out     *chattest.LineLog
	logs    *chattest.LineLog
}

// startStack starts a chat server with cfg (Stdout and Logger are the
// stack's) and a gateway with wcfg, and stops both when t ends.
func startStack(t *testing.T, cfg server.Config, wcfg Config) *stack {
	t.Helper()
	st := &stack{out: chattest.NewLineLog(), logs: chattest.NewLineLog()}
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

// peer is the shared raw client, over TCP or a WebSocket.
type peer struct{ *chattest.Conn }

func newPeer(t *testing.T, name string, nc net.Conn) *peer {
	return &peer{chattest.New(t, name, nc)}
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
	p.T = t
	t.Cleanup(func() { p.NC.Close() })
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
	return &peer{&chattest.Conn{Name: name, NC: nc, R: protocol.NewReader(nc), Timeout: chattest.Timeout}}, resp, nil
}

// join sends join (after ext_hello for features, if any, in the same
// write) and waits until the user list shows the name, so that the user is
// surely admitted.
func (p *peer) join(features ...string) {
	p.T.Helper()
	var b []byte
	if len(features) > 0 {
		b = protocol.AppendExtHello(nil, features)
	}
	p.Write(protocol.AppendJoin(b, protocol.Join, p.Name))
	if len(features) > 0 {
		p.ExpectType(protocol.ExtHello)
	}
	p.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	p.ExpectType(protocol.ResponseUsersList)
}

// joinedWS is a user joined over a WebSocket, with features (see join).
func (st *stack) joinedWS(t *testing.T, name string, features ...string) *peer {
	t.Helper()
	p := st.dialWS(t, name, nil)
	p.join(features...)
	return p
}

// joinedTCP is a user joined over TCP, with features (see join).
func (st *stack) joinedTCP(t *testing.T, name string, features ...string) *peer {
	t.Helper()
	p := st.dialTCP(t, name)
	p.join(features...)
	return p
}

func sendMessage(names []string, text string) []byte {
	return protocol.AppendMessage(nil, protocol.SendMessage, names, []byte(text))
}
