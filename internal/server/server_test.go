package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTimeout = 10 * time.Second

// lineLog collects the server's stdout lines and lets tests wait for one.
type lineLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced on every new line
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

// count returns how many lines equal want.
func (l *lineLog) count(want string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if s == want {
			n++
		}
	}
	return n
}

// wait blocks until want has been printed n times.
func (l *lineLog) wait(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if l.count(want) >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("timed out waiting for %q (x%d); stdout so far:\n%s", want, n, strings.Join(l.lines, "\n"))
		}
	}
}

func (l *lineLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

type testServer struct {
	*Server
	addr string
	out  *lineLog
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	out := newLineLog()
	cfg.Stdout = out
	srv := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { stopServer(t, srv, served) })
	return &testServer{Server: srv, addr: ln.Addr().String(), out: out}
}

// stopServer shuts srv down and checks that Serve, whose result served
// receives, ended as it should.
func stopServer(t *testing.T, srv *Server, served <-chan error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
}

// rawClient speaks frames directly.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *protocol.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, r: protocol.NewReader(nc)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) join(name string) { c.write(protocol.AppendJoin(nil, protocol.Join, name)) }

func (c *rawClient) send(text string, to ...string) {
	c.write(protocol.AppendMessage(nil, protocol.SendMessage, to, []byte(text)))
}

// frame reads the next frame whole.
func (c *rawClient) frame() (protocol.Header, []byte) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	h, err := c.r.ReadHeader()
	if err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	p, err := c.r.ReadPayload(nil)
	if err != nil {
		c.t.Fatalf("read payload: %v", err)
	}
	return h, p
}

// expect reads the next frame and checks its type and payload.
func (c *rawClient) expect(t protocol.Type, payload string) {
	c.t.Helper()
	h, p := c.frame()
	if h.Type != t || string(p) != payload {
		c.t.Fatalf("got %s %q, want %s %q", h.Name, p, t, payload)
	}
}

// expectClosed reads until the server closes the connection, failing on
// any frame.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	h, err := c.r.ReadHeader()
	if err == nil {
		c.t.Fatalf("got frame %s, want the connection closed", h.Name)
	}
	if err != io.EOF {
		c.t.Fatalf("got %v, want EOF", err)
	}
}

// expectEnd reads (and drops) whatever arrives until the server ends the
// connection, by a close or a reset; a read that times out fails.
func (c *rawClient) expectEnd() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var b [64 << 10]byte
	for {
		_, err := c.r.Read(b[:])
		if err == io.EOF && c.r.Remaining() == 0 {
			// Between frames: read the next header.
			if _, err = c.r.ReadHeader(); err == nil {
				continue
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v", waitTimeout)
		}
		return
	}
}

func joined(t *testing.T, s *testServer, name string) *rawClient {
	t.Helper()
	c := dial(t, s.addr)
	c.join(name)
	s.out.wait(t, "join: "+name, 1)
	return c
}

func TestChat(t *testing.T) {
	s := startServer(t, Config{})
	alice := joined(t, s, "alice")
	bob := joined(t, s, "bob")
	carol := joined(t, s, "carol")

	alice.write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.expect(protocol.ResponseUsersList, "3 alice bob carol")
	s.out.wait(t, "request_users_list: alice", 1)

	alice.send("Hello  my friends!", "bob", "carol", "bob", "zed", "alice", "zed", "yan")
	bob.expect(protocol.ForwardMessage, "1 alice Hello  my friends!")
	carol.expect(protocol.ForwardMessage, "1 alice Hello  my friends!")
	alice.expect(protocol.ForwardMessage, "1 alice Hello  my friends!")
	s.out.wait(t, "msg: alice to non-existent user yan", 1)
	want := []string{"msg: alice", "msg: alice to non-existent user zed", "msg: alice to non-existent user yan"}
	got := s.out.all()
	if tail := got[len(got)-3:]; strings.Join(tail, "\n") != strings.Join(want, "\n") {
		t.Errorf("server printed %q, want %q at the end", tail, want)
	}

	// Bob receives each message exactly once: the next frame is the next message.
	alice.send("second", "bob")
	bob.expect(protocol.ForwardMessage, "1 alice second")

	bob.write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	bob.expectClosed()
	s.out.wait(t, "disconnected: bob", 1)
	alice.write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.expect(protocol.ResponseUsersList, "2 alice carol")
}

func TestJoinRefusals(t *testing.T) {
	s := startServer(t, Config{MaxClients: 2})
	joined(t, s, "alice")

	dup := dial(t, s.addr)
	dup.join("alice")
	dup.expect(protocol.ErrUsernameUnavailable, "")
	dup.expectClosed()
	s.out.wait(t, "disconnected: username not available", 1)

	for _, name := range []string{"a/b", ".", "..", "a b", "zero\u200bwidth", strings.Repeat("x", 33), "\xff"} {
		c := dial(t, s.addr)
		c.join(name)
		c.expect(protocol.ErrUsernameUnavailable, "")
	}
	long := dial(t, s.addr)
	long.write([]byte("join 129 ")) // refused from the header alone
	long.expect(protocol.ErrUsernameUnavailable, "")

	joined(t, s, "bob")
	full := dial(t, s.addr)
	full.join("carol")
	full.expect(protocol.ErrServerFull, "")
	full.expectClosed()
	s.out.wait(t, "disconnected: server full", 1)

	// Full is checked before the name.
	fullBad := dial(t, s.addr)
	fullBad.join("a/b")
	fullBad.expect(protocol.ErrServerFull, "")
}

func TestBeforeJoin(t *testing.T) {
	s := startServer(t, Config{})
	for _, b := range []string{"request_users_list 0 ", "send_message 8 1 bob hi", "JOIN 5 alice", "join 05 alice", "bogus 0 "} {
		c := dial(t, s.addr)
		c.write([]byte(b))
		c.expect(protocol.ErrUnknownMessage, "")
		c.expectClosed()
	}
	// The join timeout on a server of its own, so that a loaded machine
	// slowing the cases above cannot make it close them first.
	short := startServer(t, Config{JoinTimeout: 200 * time.Millisecond})
	idle := dial(t, short.addr)
	idle.expectClosed()
	if lines := short.out.all(); len(lines) != 0 {
		t.Errorf("stdout of the join timeout: %q, want nothing", lines)
	}
	alice := joined(t, s, "alice")
	alice.send("still here", "alice")
	alice.expect(protocol.ForwardMessage, "1 alice still here")
	for _, l := range s.out.all() {
		if l != "join: alice" && l != "msg: alice" {
			t.Errorf("unexpected stdout line %q", l)
		}
	}
}

func TestUnknownCommands(t *testing.T) {
	s := startServer(t, Config{})
	cases := []string{
		"join 5 alice",                // a second join
		"bogus 0 ",                    // unknown type
		"forward_message 6 1 a hi",    // a server-to-client type
		"send_message 5 1 bob",        // no text
		"send_message 9 2 bob hi!",    // count mismatch
		"send_message 9 1 bob hi\x01", // control character
		"send_message 8 01 bob h",     // leading zero
		"request_users_list 1 x",      // payload on an empty type
		"send_message 300000 ",        // longer than a message can be
		"disconnect 3 bob",            // not its own name
		"send_file 12 1 bob ../x y",   // hostile filename
		"send_file 6 1 bob ",          // no filename
		"msg 1 x",                     // the user command, not a frame
		"send_message -1 ",
		"send_message 1x ",
	}
	for i, frame := range cases {
		name := fmt.Sprintf("u%d", i)
		t.Logf("case %q", frame)
		c := joined(t, s, name)
		c.write([]byte(frame))
		c.expect(protocol.ErrUnknownMessage, "")
		c.expectClosed()
		s.out.wait(t, "disconnected: "+name+" sent unknown command", 1)
	}
	a, b := joined(t, s, "a"), joined(t, s, "b")
	a.send("fine", "b")
	b.expect(protocol.ForwardMessage, "1 a fine")
}

func TestFramingSplitAndCoalesced(t *testing.T) {
	s := startServer(t, Config{})
	bob := joined(t, s, "bob")
	alice := dial(t, s.addr)
	var all []byte
	all = protocol.AppendJoin(all, protocol.Join, "alice")
	all = protocol.AppendMessage(all, protocol.SendMessage, []string{"bob"}, []byte("one"))
	all = protocol.AppendMessage(all, protocol.SendMessage, []string{"bob"}, []byte("two"))
	for _, b := range all[:len(all)/2] {
		alice.write([]byte{b})
	}
	alice.write(all[len(all)/2:])
	bob.expect(protocol.ForwardMessage, "1 alice one")
	bob.expect(protocol.ForwardMessage, "1 alice two")
}

// A silent earlier-accepted connection holds a later join for the
// admission grace, and then no longer (test/e2e's
// TestJoinWaitCappedAtTwoSeconds times the default).
func TestAdmissionGraceEnds(t *testing.T) {
	const grace = 200 * time.Millisecond
	s := startServer(t, Config{admissionGrace: grace})
	if s.admit.grace != grace {
		t.Fatalf("admission grace %v, want %v", s.admit.grace, grace)
	}
	t0 := time.Now()
	silent := dial(t, s.addr)
	bob := dial(t, s.addr)
	bob.join("bob")
	s.out.wait(t, "join: bob", 1)
	if el := time.Since(t0); el < grace {
		t.Errorf("bob joined after %v, while an earlier connection was silent for less than the grace (%v)", el, grace)
	}
	silent.join("silent")
	s.out.wait(t, "join: silent", 1)
}

// A zero Config runs with the limits that can be off off, and every other
// field at its default; the fixed timers that tests shorten take the
// values PROTOCOL.md gives them (the one test of those values: the tests
// that wait on a timer set it short).
func TestConfigDefaults(t *testing.T) {
	srv := New(Config{})
	got := srv.cfg
	if got.Stdout == nil || got.Logger == nil || got.Hub == nil {
		t.Fatalf("Stdout %v, Logger %v, Hub %v: want each set", got.Stdout, got.Logger, got.Hub)
	}
	got.Stdout, got.Logger, got.Hub = nil, nil, nil
	got.admissionGrace, got.closeFlushTimeout, got.closeLinger = 0, 0, 0
	want := DefaultConfig()
	want.FloodRate, want.FloodBytes, want.PaceBacklog, want.MaxConnsPerAddr, want.MinUploadRate = 0, 0, 0, 0, 0
	want.ResumeWindow = 0 // resume not granted
	if got != want {
		t.Errorf("New(Config{}) runs with\n%+v\nwant\n%+v", got, want)
	}
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"admission grace", srv.cfg.admissionGrace, 2 * time.Second},
		{"admission's grace", srv.admit.grace, 2 * time.Second},
		{"close flush timeout", srv.cfg.closeFlushTimeout, 5 * time.Second},
		{"close linger", srv.cfg.closeLinger, 2 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	set := New(Config{admissionGrace: time.Millisecond, closeFlushTimeout: 2 * time.Millisecond, closeLinger: 3 * time.Millisecond}).cfg
	if set.admissionGrace != time.Millisecond || set.closeFlushTimeout != 2*time.Millisecond || set.closeLinger != 3*time.Millisecond {
		t.Errorf("timers set in Config became %v, %v, %v", set.admissionGrace, set.closeFlushTimeout, set.closeLinger)
	}
}

// A PaceBacklog at or above SendQueueBytes is refused, not rewritten:
// New once set it to a quarter of the queue without a word.
func TestConfigCheck(t *testing.T) {
	small := DefaultConfig()
	small.SendQueueBytes = 1 << 20 // below the default PaceBacklog (2 MiB)
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"defaults", DefaultConfig(), true},
		{"backlog below the queue", Config{SendQueueBytes: 1 << 20, PaceBacklog: 1<<20 - 1}, true},
		{"backlog below the default queue", Config{PaceBacklog: DefaultSendQueueBytes - 1}, true},
		{"backlog equal to the queue", Config{SendQueueBytes: 1 << 20, PaceBacklog: 1 << 20}, false},
		{"backlog equal to the default queue", Config{PaceBacklog: DefaultSendQueueBytes}, false},
		{"default backlog above a small queue", small, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			if (err == nil) != tc.ok {
				t.Fatalf("Check() = %v, want ok %v", err, tc.ok)
			}
			var srv *Server
			panicked := func() (p any) {
				defer func() { p = recover() }()
				srv = New(tc.cfg)
				return nil
			}()
			switch {
			case tc.ok && panicked != nil:
				t.Fatalf("New panicked: %v", panicked)
			case !tc.ok && panicked == nil:
				t.Fatalf("New took PaceBacklog %d with SendQueueBytes %d (it runs with %d)", tc.cfg.PaceBacklog, tc.cfg.SendQueueBytes, srv.cfg.PaceBacklog)
			case tc.ok && srv.cfg.PaceBacklog != tc.cfg.PaceBacklog:
				t.Fatalf("New runs with PaceBacklog %d, given %d", srv.cfg.PaceBacklog, tc.cfg.PaceBacklog)
			}
		})
	}
}

func TestAdmissionOrder(t *testing.T) {
	s := startServer(t, Config{MaxClients: 3})
	conns := make([]*rawClient, 4)
	for i := range conns {
		conns[i] = dial(t, s.addr)
	}
	// The kernel hands connections to Accept in the order they were
	// made, so conns[i] is the i-th accepted.
	// The last-accepted joins first, but must be the one refused.
	for i := len(conns) - 1; i >= 0; i-- {
		conns[i].join(fmt.Sprintf("user%d", i))
	}
	conns[3].expect(protocol.ErrServerFull, "")
	for i := range 3 {
		s.out.wait(t, fmt.Sprintf("join: user%d", i), 1)
	}
}

// A client that reads nothing is cut off when its send queue overflows,
// and nobody else waits for it.
func TestSlowConsumerCutOffByQueueLimit(t *testing.T) {
	var logs logBuffer
	// The stall limit is far away: only the queue limit can fire.
	s := startServer(t, Config{SendQueueBytes: 64 << 10, StallTimeout: time.Hour, Logger: logs.logger(slog.LevelWarn)})
	sink := joined(t, s, "sink") // never reads
	sink.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	alice := joined(t, s, "alice")
	bob := joined(t, s, "bob")
	text := strings.Repeat("x", 60000)
	for i := 0; s.out.count("disconnected: sink") == 0; i++ {
		if i > 10000 {
			t.Fatal("sink never cut off")
		}
		alice.send(text, "sink")
		if i%50 == 0 {
			alice.send("ping", "bob")
			bob.expect(protocol.ForwardMessage, "1 alice ping")
		}
	}
	alice.send("after", "bob")
	bob.expect(protocol.ForwardMessage, "1 alice after")
	logs.wait(t, "cut connection off", "user=sink", `reason="slow consumer"`, `err="send queue over 65536 bytes"`)
	if v := metricValue(t, s.Server, "chat_slow_consumers_total", "", ""); v != 1 {
		t.Errorf("slow consumers = %v, want 1", v)
	}
}

// A client whose socket takes nothing for the stall limit is cut off even
// though its queue never overflows.
func TestSlowConsumerCutOffByStall(t *testing.T) {
	var logs logBuffer
	// The queue limit is far away: only the stall limit can fire.
	s := startServer(t, Config{SendQueueBytes: 1 << 30, StallTimeout: 300 * time.Millisecond, Logger: logs.logger(slog.LevelWarn)})
	sink := joined(t, s, "sink") // never reads
	sink.nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	alice := joined(t, s, "alice")
	text := strings.Repeat("x", 60000)
	// Enough to fill the socket buffers on both sides, far below the
	// queue limit.
	for range 300 {
		alice.send(text, "sink")
	}
	s.out.wait(t, "disconnected: sink", 1)
	logs.wait(t, "cut connection off", "user=sink", `reason="slow consumer"`, `err="took nothing for 300ms"`)
	alice.send("after", "alice")
	alice.expect(protocol.ForwardMessage, "1 alice after")
}

// A file sender who stops sending mid-file for the stall limit is cut off;
// a plain recipient, sent nothing of a file until it is whole, stays (it
// was once cut off, its frame half-sent); a chunked one gets file_abort
// and stays.
func TestFileSenderStalls(t *testing.T) {
	var logs logBuffer
	// Alice never closes: the server's linger after it closes ends her
	// connection (closeLinger, shortened from 2 s).
	s := startServer(t, Config{StallTimeout: 300 * time.Millisecond, Logger: logs.logger(slog.LevelInfo), closeLinger: 100 * time.Millisecond})
	alice := joined(t, s, "alice")
	bea := joinedExt(t, s, "bea")
	bob := joined(t, s, "bob")
	alice.write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bea", "bob"}, "f.bin", 10<<20))
	alice.write(make([]byte, 1<<20)) // then nothing
	s.out.wait(t, "disconnected: alice", 1)
	logs.wait(t, "connection closed", "user=alice", `reason="file sender stalled"`)
	alice.expectEnd()
	bea.expectFileAbort()
	bea.send("still in", "bea")
	bea.expect(protocol.ForwardMessage, "1 bea still in")
	// Bob, who takes whole frames, was sent nothing of the file.
	bob.send("still in", "bob")
	bob.expect(protocol.ForwardMessage, "1 bob still in")
	if n := s.out.count("disconnected: bob"); n != 0 {
		t.Error("bob was cut off for alice's stall")
	}
	if v := metricValue(t, s.Server, "chat_disconnects_total", "reason", "file sender stalled"); v != 1 {
		t.Errorf("stalled-sender disconnects = %v, want 1", v)
	}
}

func TestOrderWithFiles(t *testing.T) {
	s := startServer(t, Config{})
	alice, bob := joined(t, s, "alice"), joined(t, s, "bob")
	carol := joined(t, s, "carol")
	big := bytes.Repeat([]byte{0, 1, 2, 255, ' ', '\n'}, 200000) // streamed
	small := []byte("tiny file")
	go func() {
		// Carol chats to bob while alice's big file streams to him.
		for i := range 200 {
			carol.write(protocol.AppendMessage(nil, protocol.SendMessage, []string{"bob"}, fmt.Appendf(nil, "c%d", i)))
		}
	}()
	var frames []byte
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob"}, []byte("before"))
	frames = protocol.AppendFileHead(frames, protocol.SendFile, []string{"bob", "alice"}, "big.bin", int64(len(big)))
	frames = append(frames, big...)
	frames = protocol.AppendFileHead(frames, protocol.SendFile, []string{"bob"}, "small.txt", int64(len(small)))
	frames = append(frames, small...)
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob"}, []byte("after"))
	go alice.nc.Write(frames)

	var fromAlice []string
	carolNext := 0
	for len(fromAlice) < 4 || carolNext < 200 {
		h, p := bob.frame()
		switch {
		case h.Type == protocol.ForwardMessage && bytes.HasPrefix(p, []byte("1 carol ")):
			if want := fmt.Sprintf("1 carol c%d", carolNext); string(p) != want {
				t.Fatalf("got %q, want %q", p, want)
			}
			carolNext++
		case h.Type == protocol.ForwardMessage:
			fromAlice = append(fromAlice, string(p))
		case h.Type == protocol.ForwardFile:
			head := "1 alice big.bin "
			if bytes.HasPrefix(p, []byte("1 alice small.txt ")) {
				head = "1 alice small.txt "
				if !bytes.Equal(p[len(head):], small) {
					t.Fatal("small file damaged")
				}
			} else if !bytes.HasPrefix(p, []byte(head)) || sha256.Sum256(p[len(head):]) != sha256.Sum256(big) {
				t.Fatal("big file damaged")
			}
			fromAlice = append(fromAlice, head)
		default:
			t.Fatalf("unexpected frame %s", h.Name)
		}
	}
	want := []string{"1 alice before", "1 alice big.bin ", "1 alice small.txt ", "1 alice after"}
	if strings.Join(fromAlice, "|") != strings.Join(want, "|") {
		t.Fatalf("alice's frames arrived as %q, want %q", fromAlice, want)
	}
	h, p := alice.frame()
	if h.Type != protocol.ForwardFile || sha256.Sum256(p[len("1 alice big.bin "):]) != sha256.Sum256(big) {
		t.Fatal("alice's copy of her own file damaged")
	}
}

func TestSenderDropsMidFile(t *testing.T) {
	s := startServer(t, Config{})
	alice, bob, carol := joined(t, s, "alice"), joined(t, s, "bob"), joined(t, s, "carol")
	alice.write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "f", 10<<20))
	alice.write(make([]byte, 1<<20))
	alice.nc.Close()
	s.out.wait(t, "disconnected: alice", 1)
	// Nothing of the file was sent to bob (it is held until whole): he
	// stays, gets nothing of it, and the spool is given back.
	carol.send("still up", "carol", "bob")
	carol.expect(protocol.ForwardMessage, "1 carol still up")
	bob.expect(protocol.ForwardMessage, "1 carol still up")
	if n := s.out.count("disconnected: bob"); n != 0 {
		t.Error("bob was cut off for alice's leaving")
	}
	waitSpoolsEmpty(t, s.Server)
}

func TestShutdownClosesSessions(t *testing.T) {
	s := startServer(t, Config{})
	alice := joined(t, s, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	alice.expectEnd()
	if _, err := net.Dial("tcp", s.addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}
