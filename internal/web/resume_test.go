package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// dialWSRaw opens a WebSocket and returns it with the TCP connection under
// it, which the test may cut as a proxy or a network would.
func (st *stack) dialWSRaw(t *testing.T, name string) (*peer, *websocket.Conn, net.Conn) {
	t.Helper()
	var (
		mu  sync.Mutex
		raw net.Conn
	)
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			mu.Lock()
			raw = nc
			mu.Unlock()
			return nc, err
		},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(st.httpURL, "http")+Path, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	t.Cleanup(func() { nc.Close() })
	mu.Lock()
	defer mu.Unlock()
	return &peer{&chattest.Conn{T: t, Name: name, NC: nc, R: protocol.NewReader(nc), Timeout: chattest.Timeout}}, ws, raw
}

// joinedWSResume joins name over a WebSocket, granted resume, and returns
// its peer, the TCP connection under it (to cut) and the session token.
func (st *stack) joinedWSResume(t *testing.T, name string) (*peer, net.Conn, protocol.Token) {
	t.Helper()
	c, _, raw := st.dialWSRaw(t, name)
	c.Write(protocol.AppendJoin(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}), protocol.Join, name))
	c.Expect(protocol.ExtHello, protocol.FeatureResume)
	token, _, err := protocol.ParseSession(c.ExpectType(protocol.Session))
	if err != nil {
		t.Fatal(err)
	}
	st.out.Wait(t, "join: "+name, 1)
	return c, raw, token
}

// TestResumeOverWebSocket (issue 22): a WebSocket session granted resume
// whose TCP connection is cut (no close frame: a proxy or a network gone)
// is a lost connection, not a quit: the session waits, and a new
// WebSocket resumes it with every message sent meanwhile, once, in order,
// and nothing on stdout.
func TestResumeOverWebSocket(t *testing.T) {
	st := startStack(t, server.Config{ResumeWindow: time.Minute}, Config{})
	ann, raw, token := st.joinedWSResume(t, "ann")
	bob := st.joinedTCP(t, "bob")

	bob.Write(sendMessage([]string{"ann"}, "before"))
	ann.Expect(protocol.ForwardMessage, "1 bob before")
	raw.Close()
	st.logs.WaitFunc(t, "the server's word that ann's connection was lost", 1, func(l string) bool {
		return strings.Contains(l, "connection lost; the session waits for a resume") && strings.Contains(l, "user=ann")
	})
	for _, m := range []string{"one", "two", "three"} {
		bob.Write(sendMessage([]string{"ann"}, m))
	}
	bob.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	if l := bob.ExpectType(protocol.ResponseUsersList); !strings.Contains(string(l), "ann") {
		t.Fatalf("ann is not listed while her connection is away: %q", l)
	}

	again, _, _ := st.dialWSRaw(t, "ann")
	again.Write(protocol.AppendResume(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}), "ann", token, 1))
	again.Expect(protocol.ExtHello, protocol.FeatureResume)
	again.Expect(protocol.Resumed, "0")
	for _, m := range []string{"one", "two", "three"} {
		again.Expect(protocol.ForwardMessage, "1 bob "+m)
	}
	bob.Write(sendMessage([]string{"ann"}, "after"))
	again.Expect(protocol.ForwardMessage, "1 bob after")
	for _, l := range st.out.Lines() {
		if l == "disconnected: ann" || strings.HasPrefix(l, "disconnected:") {
			t.Errorf("stdout has %q: the cut was taken for a quit", l)
		}
	}
	if n := st.out.Count("join: ann"); n != 1 {
		t.Errorf("stdout has %d join: ann lines, want 1", n)
	}
}

// TestShutdownSaysGoingAway (issue 22): as the server shuts down, a
// WebSocket is closed with status 1001 (going away), so that the page,
// which resumes a connection cut without a close frame for as long as the
// session's window, shows at once that the session is over.
func TestShutdownSaysGoingAway(t *testing.T) {
	st := startStack(t, server.Config{ResumeWindow: time.Minute}, Config{})
	ann, ws, _ := st.dialWSRaw(t, "ann")
	ann.Write(protocol.AppendJoin(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}), protocol.Join, "ann"))
	ann.Expect(protocol.ExtHello, protocol.FeatureResume)
	ann.ExpectType(protocol.Session)
	st.out.Wait(t, "join: ann", 1)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := st.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer rcancel()
	var err error
	for err == nil {
		_, _, err = ws.Read(rctx)
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("the WebSocket ended with %v (status %d), want status %d (going away)", err, got, websocket.StatusGoingAway)
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Reason != "server shutting down" {
		t.Errorf("close reason %q, want %q", ce.Reason, "server shutting down")
	}
}

// TestCutMidFrameIsLost (issue 22): a WebSocket cut in the middle of a
// binary message the browser was sending is a lost connection, which a
// resume takes back, not a breach of the protocol that ends the session.
// The WebSocket library hands over the part of the payload it read before
// the cut without unmasking it; the server read it as frames, found
// garbage ("malformed frame: byte 0xc1 in type") and ended the session,
// and the page's resume was refused (TestBrowserSendsAgain, cut after
// half a line).
func TestCutMidFrameIsLost(t *testing.T) {
	st := startStack(t, server.Config{ResumeWindow: time.Minute}, Config{})
	_, raw, token := st.joinedWSResume(t, "ann")
	bob := st.joinedTCP(t, "bob")

	// A binary message (RFC 6455, 5.2: FIN and opcode 2; masked, its
	// length) of which only the header and 16 bytes of payload go out.
	line := sendMessage([]string{"bob"}, "cut")
	key := [4]byte{0x5a, 0xa5, 0x3c, 0xc3}
	msg := append([]byte{0x82, 0x80 | byte(len(line))}, key[:]...)
	for i, b := range line[:16] {
		msg = append(msg, b^key[i%4])
	}
	if _, err := raw.Write(msg); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	st.logs.WaitFunc(t, "the server's word that ann's connection was lost", 1, func(l string) bool {
		return strings.Contains(l, "connection lost; the session waits for a resume") && strings.Contains(l, "user=ann")
	})

	again, _, _ := st.dialWSRaw(t, "ann")
	again.Write(protocol.AppendResume(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}), "ann", token, 0))
	again.Expect(protocol.ExtHello, protocol.FeatureResume)
	again.Expect(protocol.Resumed, "0")
	again.Write(sendMessage([]string{"bob"}, "after"))
	bob.Expect(protocol.ForwardMessage, "1 ann after") // the cut line never came
	for _, l := range st.out.Lines() {
		if strings.HasPrefix(l, "disconnected:") {
			t.Errorf("stdout has %q: the cut was taken for a breach or a quit", l)
		}
	}
}
