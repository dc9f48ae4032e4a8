package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait on an event: chattest's, generous for a
// loaded machine, so that every suite waits as long.
const waitTimeout = chattest.Timeout

type testServer struct {
	*Server
	addr string
	out  *chattest.LineLog
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerOn(t, cfg, nil)
}

// startServerOn is startServer with the listener wrapped by wrap unless it
// is nil.
func startServerOn(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	out := chattest.NewLineLog()
	cfg.Stdout = out
	srv := New(cfg)
	addr, served := listenAndServe(t, srv, wrap)
	t.Cleanup(func() { stopServer(t, srv, served) })
	return &testServer{Server: srv, addr: addr, out: out}
}

// listenAndServe serves srv on a free port of 127.0.0.1, through wrap
// unless it is nil, and returns the address and the channel that Serve's
// result arrives on (for stopServer).
func listenAndServe(t *testing.T, srv *Server, wrap func(net.Listener) net.Listener) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return addr, served
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

// rawClient is the shared raw client, with this package's helpers as
// methods.
type rawClient struct{ *chattest.Conn }

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	return &rawClient{chattest.Dial(t, addr, "")}
}

func joined(t *testing.T, s *testServer, name string) *rawClient {
	t.Helper()
	c := dial(t, s.addr)
	c.Join(name)
	s.out.Wait(t, "join: "+name, 1)
	return c
}

func TestChat(t *testing.T) {
	s := startServer(t, Config{})
	alice := joined(t, s, "alice")
	bob := joined(t, s, "bob")
	carol := joined(t, s, "carol")

	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "3 alice bob carol")
	s.out.Wait(t, "request_users_list: alice", 1)

	alice.Send("Hello  my friends!", "bob", "carol", "bob", "zed", "alice", "zed", "yan")
	bob.Expect(protocol.ForwardMessage, "1 alice Hello  my friends!")
	carol.Expect(protocol.ForwardMessage, "1 alice Hello  my friends!")
	alice.Expect(protocol.ForwardMessage, "1 alice Hello  my friends!")
	s.out.Wait(t, "msg: alice to non-existent user yan", 1)
	want := []string{"msg: alice", "msg: alice to non-existent user zed", "msg: alice to non-existent user yan"}
	got := s.out.Lines()
	if tail := got[len(got)-3:]; strings.Join(tail, "\n") != strings.Join(want, "\n") {
		t.Errorf("server printed %q, want %q at the end", tail, want)
	}

	// Bob receives each message exactly once: the next frame is the next message.
	alice.Send("second", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice second")

	bob.Write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	bob.ExpectClosed()
	s.out.Wait(t, "disconnected: bob", 1)
	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "2 alice carol")
}

func TestJoinRefusals(t *testing.T) {
	s := startServer(t, Config{MaxClients: 2})
	joined(t, s, "alice")

	refusedJoin(t, s, "alice", protocol.ErrUsernameUnavailable)
	s.out.Wait(t, "disconnected: username not available", 1)

	for _, name := range []string{"a/b", ".", "..", "a b", "zero\u200bwidth", strings.Repeat("x", 33), "\xff"} {
		refusedJoin(t, s, name, protocol.ErrUsernameUnavailable)
	}
	long := dial(t, s.addr)
	long.Write([]byte("join 129 ")) // refused from the header alone
	long.Expect(protocol.ErrUsernameUnavailable, "")

	joined(t, s, "bob")
	refusedJoin(t, s, "carol", protocol.ErrServerFull)
	s.out.Wait(t, "disconnected: server full", 1)

	// Full is checked before the name.
	refusedJoin(t, s, "a/b", protocol.ErrServerFull)
}

// expectKicked requires the server to refuse what c, a joined client,
// last sent as an unknown command: the error frame, a clean close, and
// its line.
func (s *testServer) expectKicked(t *testing.T, c *rawClient) {
	t.Helper()
	c.ExpectRefused(protocol.ErrUnknownMessage)
	s.out.Wait(t, "disconnected: "+c.Name+" sent unknown command", 1)
}

// refusedJoin joins a new connection as name, which the server must refuse
// with typ and a clean close.
func refusedJoin(t *testing.T, s *testServer, name string, typ protocol.Type) {
	t.Helper()
	c := dial(t, s.addr)
	c.Join(name)
	c.ExpectRefused(typ)
}

func TestBeforeJoin(t *testing.T) {
	s := startServer(t, Config{})
	for _, b := range []string{"request_users_list 0 ", "send_message 8 1 bob hi", "JOIN 5 alice", "join 05 alice", "bogus 0 "} {
		c := dial(t, s.addr)
		c.Write([]byte(b))
		c.ExpectRefused(protocol.ErrUnknownMessage)
	}
	// The join timeout on a server of its own, so that a loaded machine
	// slowing the cases above cannot make it close them first.
	short := startServer(t, Config{JoinTimeout: 200 * time.Millisecond})
	idle := dial(t, short.addr)
	idle.ExpectClosed()
	if lines := short.out.Lines(); len(lines) != 0 {
		t.Errorf("stdout of the join timeout: %q, want nothing", lines)
	}
	alice := joined(t, s, "alice")
	alice.Send("still here", "alice")
	alice.Expect(protocol.ForwardMessage, "1 alice still here")
	for _, l := range s.out.Lines() {
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
		c.Write([]byte(frame))
		s.expectKicked(t, c)
	}
	a, b := joined(t, s, "a"), joined(t, s, "b")
	a.Send("fine", "b")
	b.Expect(protocol.ForwardMessage, "1 a fine")
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
		alice.Write([]byte{b})
	}
	alice.Write(all[len(all)/2:])
	bob.Expect(protocol.ForwardMessage, "1 alice one")
	bob.Expect(protocol.ForwardMessage, "1 alice two")
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
	bob.Join("bob")
	s.out.Wait(t, "join: bob", 1)
	if el := time.Since(t0); el < grace {
		t.Errorf("bob joined after %v, while an earlier connection was silent for less than the grace (%v)", el, grace)
	}
	silent.Join("silent")
	s.out.Wait(t, "join: silent", 1)
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
	want.ResumeWindow = 0     // resume not granted
	want.HeartbeatTimeout = 0 // heartbeat not granted
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
		conns[i].Join(fmt.Sprintf("user%d", i))
	}
	conns[3].Expect(protocol.ErrServerFull, "")
	for i := range 3 {
		s.out.Wait(t, fmt.Sprintf("join: user%d", i), 1)
	}
}

// A client that reads nothing is cut off when its send queue overflows,
// and nobody else waits for it.
func TestSlowConsumerCutOffByQueueLimit(t *testing.T) {
	var logs logBuffer
	// The stall limit is far away: only the queue limit can fire.
	s := startServer(t, Config{SendQueueBytes: 64 << 10, StallTimeout: time.Hour, Logger: logs.logger(slog.LevelWarn)})
	sink := joined(t, s, "sink") // never reads
	sink.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
	alice := joined(t, s, "alice")
	bob := joined(t, s, "bob")
	text := strings.Repeat("x", 60000)
	for i := 0; s.out.Count("disconnected: sink") == 0; i++ {
		if i > 10000 {
			t.Fatal("sink never cut off")
		}
		alice.Send(text, "sink")
		if i%50 == 0 {
			alice.Send("ping", "bob")
			bob.Expect(protocol.ForwardMessage, "1 alice ping")
		}
	}
	alice.Send("after", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice after")
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
	sink.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
	alice := joined(t, s, "alice")
	text := strings.Repeat("x", 60000)
	// Enough to fill the socket buffers on both sides, far below the
	// queue limit.
	for range 300 {
		alice.Send(text, "sink")
	}
	s.out.Wait(t, "disconnected: sink", 1)
	logs.wait(t, "cut connection off", "user=sink", `reason="slow consumer"`, `err="took nothing for 300ms"`)
	alice.Send("after", "alice")
	alice.Expect(protocol.ForwardMessage, "1 alice after")
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
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bea", "bob"}, "f.bin", 10<<20))
	alice.Write(make([]byte, 1<<20)) // then nothing
	s.out.Wait(t, "disconnected: alice", 1)
	logs.wait(t, "connection closed", "user=alice", `reason="file sender stalled"`)
	alice.ExpectEnd()
	bea.expectFileAbort()
	bea.Send("still in", "bea")
	bea.Expect(protocol.ForwardMessage, "1 bea still in")
	// Bob, who takes whole frames, was sent nothing of the file.
	bob.Send("still in", "bob")
	bob.Expect(protocol.ForwardMessage, "1 bob still in")
	if n := s.out.Count("disconnected: bob"); n != 0 {
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
			carol.Write(protocol.AppendMessage(nil, protocol.SendMessage, []string{"bob"}, fmt.Appendf(nil, "c%d", i)))
		}
	}()
	var frames []byte
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob"}, []byte("before"))
	frames = protocol.AppendFileHead(frames, protocol.SendFile, []string{"bob", "alice"}, "big.bin", int64(len(big)))
	frames = append(frames, big...)
	frames = protocol.AppendFileHead(frames, protocol.SendFile, []string{"bob"}, "small.txt", int64(len(small)))
	frames = append(frames, small...)
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob"}, []byte("after"))
	go alice.NC.Write(frames)

	var fromAlice []string
	carolNext := 0
	for len(fromAlice) < 4 || carolNext < 200 {
		h, p := bob.Frame()
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
	h, p := alice.Frame()
	if h.Type != protocol.ForwardFile || sha256.Sum256(p[len("1 alice big.bin "):]) != sha256.Sum256(big) {
		t.Fatal("alice's copy of her own file damaged")
	}
}

func TestSenderDropsMidFile(t *testing.T) {
	s := startServer(t, Config{})
	alice, bob, carol := joined(t, s, "alice"), joined(t, s, "bob"), joined(t, s, "carol")
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "f", 10<<20))
	alice.Write(make([]byte, 1<<20))
	alice.NC.Close()
	s.out.Wait(t, "disconnected: alice", 1)
	// Nothing of the file was sent to bob (it is held until whole): he
	// stays, gets nothing of it, and the spool is given back.
	carol.Send("still up", "carol", "bob")
	carol.Expect(protocol.ForwardMessage, "1 carol still up")
	bob.Expect(protocol.ForwardMessage, "1 carol still up")
	if n := s.out.Count("disconnected: bob"); n != 0 {
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
	alice.ExpectEnd()
	if _, err := net.Dial("tcp", s.addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}
