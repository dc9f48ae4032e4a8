package chattest

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer serves an in-process chat server until t ends and returns
// its address and stdout.
func startServer(t *testing.T) (string, *LineLog) {
	t.Helper()
	out := NewLineLog()
	srv := server.New(server.Config{Stdout: out})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != server.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), out
}

// join dials addr and joins as name, waiting for the server's line.
func join(t *testing.T, addr string, out *LineLog, name string) *Conn {
	t.Helper()
	c := Dial(t, addr, name)
	c.Join(name)
	out.Wait(t, "join: "+name, 1)
	return c
}

func TestConnChat(t *testing.T) {
	addr, out := startServer(t)
	alice := join(t, addr, out, "alice")
	bob := Dial(t, addr, "bob")
	if got := bob.Hello("future-thing", protocol.FeatureChunkedFile); got != protocol.FeatureChunkedFile {
		t.Errorf("Hello accepted %q, want %q", got, protocol.FeatureChunkedFile)
	}
	bob.Join("bob")
	out.Wait(t, "join: bob", 1)

	if got := alice.List(); got != "2 alice bob" {
		t.Errorf("List = %q, want %q", got, "2 alice bob")
	}
	alice.Send("hi  there", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice hi  there")
	alice.Send("again", "bob")
	if p := bob.ExpectType(protocol.ForwardMessage); string(p) != "1 alice again" {
		t.Errorf("ExpectType payload %q, want %q", p, "1 alice again")
	}
	out.Wait(t, "msg: alice", 2)
	if n := out.Count("msg: alice"); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}

	bob.Write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	bob.ExpectClosed()
	out.Wait(t, "disconnected: bob", 1)

	// A broken frame: the server answers with an error frame and ends the
	// connection, which ExpectEnd reads through.
	alice.Write([]byte("NOT A FRAME"))
	alice.ExpectEnd()
}

func TestConnFailures(t *testing.T) {
	addr, out := startServer(t)
	alice := join(t, addr, out, "alice")
	bob := join(t, addr, out, "bob")

	alice.Send("one", "bob")
	msg := Fails(t, func(tb testing.TB) {
		c := *bob
		c.T = tb
		c.Expect(protocol.ForwardMessage, "1 alice two")
	})
	if !strings.Contains(msg, `bob: got forward_message "1 alice one", want forward_message "1 alice two"`) {
		t.Errorf("Expect of the wrong payload failed with %q", msg)
	}

	alice.Send("three", "bob")
	msg = Fails(t, func(tb testing.TB) {
		c := *bob
		c.T = tb
		c.ExpectClosed()
	})
	if !strings.Contains(msg, `got frame forward_message "1 alice three" (13 bytes), want the connection closed`) {
		t.Errorf("ExpectClosed with a frame waiting failed with %q", msg)
	}

	msg = Fails(t, func(tb testing.TB) {
		c := *alice
		c.T = tb
		c.Timeout = 50e6 // 50 ms: nothing will come
		c.ExpectEnd()
	})
	if !strings.Contains(msg, "connection still open") {
		t.Errorf("ExpectEnd on an open connection failed with %q", msg)
	}
}

// TestConnRaw covers what the black-box suites use to send what the real
// client never would, and to read how the server ends a connection.
func TestConnRaw(t *testing.T) {
	addr, out := startServer(t)
	alice := Dial(t, addr, "alice")
	if alice.TCP() != alice.NC {
		t.Fatal("TCP did not return the connection")
	}
	// Byte by byte, every header and field is split across reads.
	alice.WriteBytewise(protocol.AppendJoin(nil, protocol.Join, "alice"))
	out.Wait(t, "join: alice", 1)
	alice.WriteBytewise(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "1 alice")

	dup := Dial(t, addr, "dup")
	dup.Join("alice")
	dup.ExpectRefused(protocol.ErrUsernameUnavailable)

	msg := Fails(t, func(tb testing.TB) {
		c := *alice
		c.T = tb
		c.Timeout = 50e6 // 50 ms: the server sends nothing
		c.ExpectRefused(protocol.ErrUnknownMessage)
	})
	if !strings.Contains(msg, "want err_unknown_message") {
		t.Errorf("ExpectRefused with nothing sent failed with %q", msg)
	}

	if err := alice.TryWrite([]byte("disconnect 5 alice")); err != nil {
		t.Fatalf("TryWrite: %v", err)
	}
	alice.ExpectClosed()
	alice.NC.Close()
	if err := alice.TryWrite([]byte("x")); err == nil {
		t.Error("TryWrite on a closed connection returned nil")
	}
}

func TestWaitUntil(t *testing.T) {
	var n atomic.Int32
	go func() { n.Store(1) }()
	WaitUntil(t, "n is set", func() bool { return n.Load() == 1 })
	msg := Fails(t, func(tb testing.TB) {
		waitUntil(tb, "never true", func() bool { return false }, 50*time.Millisecond)
	})
	if !strings.Contains(msg, "never after 50ms: never true") {
		t.Errorf("waitUntil of a false condition failed with %q", msg)
	}
}

func TestThrottle(t *testing.T) {
	const rate = 64 << 10
	src := bytes.NewReader(make([]byte, 64<<10))
	r, unthrottle := Throttle(src, rate)
	buf := make([]byte, 32<<10)
	start := time.Now()
	got := 0
	for got < 8<<10 {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > throttleChunk {
			t.Fatalf("a throttled read took %d bytes, more than %d", n, throttleChunk)
		}
		got += n
	}
	// The reader sleeps until its total is due at its rate: a lower bound,
	// whatever the machine's load.
	if el, due := time.Since(start), time.Duration(got)*time.Second/rate; el < due {
		t.Errorf("read %d bytes in %v, before they were due at %v", got, el, due)
	}
	unthrottle()
	unthrottle() // a second call does nothing
	if n, err := r.Read(buf); err != nil || n != len(buf) {
		t.Errorf("unthrottled read = %d, %v; want the whole %d bytes", n, err, len(buf))
	}
}

// A Proxy carries a chat both ways and counts what the client sends;
// Stall holds the bytes until Heal; Cut ends the connections; Block
// closes new ones at once; Retarget sends new ones to another server; a
// client's half close is passed on.
func TestProxy(t *testing.T) {
	addr, out := startServer(t)
	bob := join(t, addr, out, "bob")
	px := NewProxy(t, addr, 0)
	alice := Dial(t, px.Addr(), "alice")
	alice.Join("alice")
	out.Wait(t, "join: alice", 1)
	alice.Tell(bob, "through the proxy")
	want := int64(len(protocol.AppendJoin(nil, protocol.Join, "alice")) +
		len(protocol.AppendMessage(nil, protocol.SendMessage, []string{"bob"}, []byte("through the proxy"))))
	WaitUntil(t, "the proxy's count", func() bool { return px.Up() == want })

	px.Stall()
	alice.Send("held", "bob")
	px.Heal()
	bob.Expect(protocol.ForwardMessage, "1 alice held")

	if n := px.Blackhole(); n != 1 {
		t.Errorf("Blackhole = %d connections, want 1", n)
	}
	alice.Send("lost", "bob") // dropped: bob's next frame is dave's
	dave := Dial(t, px.Addr(), "dave")
	dave.Join("dave")
	out.Wait(t, "join: dave", 1)
	dave.Tell(bob, "carried after the black hole")

	bob.Tell(dave, "to dave")
	px.WaitToClient(t, "1 bob to dave")
	px.SwallowAfter(0)
	dave.Send("swallowed", "bob") // taken by the proxy, never by the server
	px.WaitSwallowed(t, "swallowed")
	px.WaitSwallowedBytes(t, len(protocol.AppendMessage(nil, protocol.SendMessage, []string{"bob"}, []byte("swallowed")))) // the whole frame

	if n := px.Cut(); n != 4 {
		t.Errorf("Cut = %d ends, want 4", n)
	}
	alice.ExpectEnd()
	out.Wait(t, "disconnected: alice", 1)
	eve := Dial(t, px.Addr(), "eve") // carried whole: the cut ended the swallowing
	eve.Join("eve")
	out.Wait(t, "join: eve", 1)
	eve.Tell(bob, "after the cut") // bob's next frame: dave's was swallowed

	px.Block(true)
	blocked := Dial(t, px.Addr(), "blocked")
	blocked.ExpectEnd()
	px.Block(false)

	addr2, out2 := startServer(t)
	px.Retarget(addr2)
	carol := Dial(t, px.Addr(), "carol")
	carol.Join("carol")
	out2.Wait(t, "join: carol", 1)
	carol.TCP().CloseWrite()
	out2.Wait(t, "disconnected: carol", 1)
	carol.ExpectClosed()
}

func TestLineLog(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{"empty", nil, nil},
		{"one", []string{"a\n"}, []string{"a"}},
		{"split", []string{"jo", "in: a\nms", "g: a\n"}, []string{"join: a", "msg: a"}},
		{"partial kept apart", []string{"a\nb"}, []string{"a"}},
		{"cr stays", []string{"a\r\n\n"}, []string{"a\r", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLineLog()
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := l.Lines(); !slices.Equal(got, tc.want) {
				t.Errorf("Lines = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLineLogWait(t *testing.T) {
	l := NewLineLog()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Wait(t, "b", 2)
	}()
	for _, s := range []string{"b\n", "a\n", "b\n"} {
		l.Write([]byte(s))
	}
	<-done
	if n := l.Count("b"); n != 2 {
		t.Errorf("Count(b) = %d, want 2", n)
	}
	if n := l.CountFunc(func(s string) bool { return s != "" }); n != 3 {
		t.Errorf("CountFunc = %d, want 3", n)
	}
}

// TestZeroLineLog: a LineLog need not be made (a struct embeds one), and a
// wait that starts before any write still sees it.
func TestZeroLineLog(t *testing.T) {
	var l LineLog
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.WaitFunc(t, "with x", 1, func(s string) bool { return strings.Contains(s, "x") })
	}()
	l.Write([]byte("a\nbxb\n"))
	<-done
	if got := l.Lines(); !slices.Equal(got, []string{"a", "bxb"}) {
		t.Errorf("Lines = %q", got)
	}
}
