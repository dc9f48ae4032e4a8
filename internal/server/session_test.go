package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// resumable is a raw client granted resume: its session's token, and the
// counted frames it has read.
type resumable struct {
	*rawClient
	name  string
	token protocol.Token
	n     uint64
}

// joinedResume joins name after asking for resume (and extra features),
// and reads the session frame.
func joinedResume(t *testing.T, s *testServer, name string, extra ...string) *resumable {
	t.Helper()
	c := dial(t, s.addr)
	features := append([]string{protocol.FeatureResume}, extra...)
	c.Write(protocol.AppendExtHello(nil, features))
	c.Expect(protocol.ExtHello, joinSpace(features))
	c.Join(name)
	h, p := c.Frame()
	if h.Type != protocol.Session {
		t.Fatalf("got %s %q, want session", h.Name, p)
	}
	tok, window, err := protocol.ParseSession(p)
	if err != nil || window != uint64(s.cfg.ResumeWindow/time.Millisecond) {
		t.Fatalf("session %q: window %d, %v", p, window, err)
	}
	s.out.Wait(t, "join: "+name, 1)
	return &resumable{rawClient: c, name: name, token: tok}
}

func joinSpace(f []string) string {
	s := ""
	for i, x := range f {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}

// counted reads the next frame, which must be counted, and counts it.
func (r *resumable) counted() (protocol.Header, []byte) {
	r.T.Helper()
	h, p := r.Frame()
	if !protocol.Counted(h.Type) {
		r.T.Fatalf("got %s %q, want a counted frame", h.Name, p)
	}
	r.n++
	return h, p
}

// expectMsg reads the next frame, a forward_message from alice of text.
func (r *resumable) expectMsg(text string) {
	r.T.Helper()
	h, p := r.counted()
	if h.Type != protocol.ForwardMessage || string(p) != "1 alice "+text {
		r.T.Fatalf("got %s %q, want forward_message from alice %q", h.Name, p, text)
	}
}

// resume opens a new connection and resumes r's session, having read n
// counted frames; it expects resumed with missed.
func (r *resumable) resume(t *testing.T, s *testServer, n uint64, missed uint64) *resumable {
	t.Helper()
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}))
	c.Expect(protocol.ExtHello, protocol.FeatureResume)
	c.Write(protocol.AppendResume(nil, r.name, r.token, n))
	c.Expect(protocol.Resumed, strconv.FormatUint(missed, 10))
	return &resumable{rawClient: c, name: r.name, token: r.token, n: n}
}

// resumeRefused tries to resume as name with token and n, and expects
// resume_failed and the close.
func resumeRefused(t *testing.T, s *testServer, name string, token protocol.Token, n uint64) {
	t.Helper()
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}))
	c.Expect(protocol.ExtHello, protocol.FeatureResume)
	c.Write(protocol.AppendResume(nil, name, token, n))
	c.Expect(protocol.ResumeFailed, "")
	c.ExpectClosed()
}

// sessionOf returns the session of name.
func sessionOf(t *testing.T, s *testServer, name string) *session {
	t.Helper()
	sess := s.sessions.get(name)
	if sess == nil {
		t.Fatalf("no session for %s", name)
	}
	return sess
}

// resumeServer starts a server that grants resume (cfg: resumeConfig's
// if zero) and logs to a buffer, for waitAway.
func resumeServer(t *testing.T, cfg Config) (*testServer, *logBuffer) {
	t.Helper()
	if cfg.ResumeWindow == 0 {
		cfg = resumeConfig()
	}
	log := new(logBuffer)
	cfg.Logger = log.logger(slog.LevelInfo)
	return startServer(t, cfg), log
}

// waitAway waits until name's session has lost its connection for the
// k-th time (logged).
func waitAway(t *testing.T, log *logBuffer, name string, k int) {
	t.Helper()
	log.WaitFunc(t, fmt.Sprintf("of %s's session waiting for a resume", name), k, func(line string) bool {
		return strings.Contains(line, "the session waits for a resume") && strings.Contains(line, "user="+name+" ")
	})
}

func resumeConfig() Config { return Config{ResumeWindow: time.Minute, MaxClients: 100} }

func TestResumeNotGranted(t *testing.T) {
	s := startServer(t, Config{}) // no window: no resume
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureResume, protocol.FeatureChunkedFile}))
	c.Expect(protocol.ExtHello, protocol.FeatureChunkedFile)
	c.Write(protocol.AppendResume(nil, "bob", protocol.Token{}, 0))
	c.Expect(protocol.ErrUnknownMessage, "")

	// A contract client of a server that grants resume sees none of it.
	s2 := startServer(t, resumeConfig())
	bob := joined(t, s2, "bob")
	alice := joined(t, s2, "alice")
	alice.Send("hi", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice hi")
	bob.Write(protocol.AppendCount(nil, protocol.Received, 1)) // without the feature: unknown
	s2.expectKicked(t, bob)
	if sess := s2.sessions.get("bob"); sess != nil {
		t.Fatal("a contract client has a session")
	}
}

func TestResumeAfterLostConnection(t *testing.T) {
	s, log := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	for i := 1; i <= 3; i++ {
		alice.Send(fmt.Sprint("m", i), "bob")
	}
	bob.expectMsg("m1")
	bob.expectMsg("m2")
	bob.Write(protocol.AppendCount(nil, protocol.Received, 1))
	bob.NC.Close() // m3 was sent, maybe read by the kernel, never by bob: it must come again
	waitAway(t, log, "bob", 1)

	// Away: bob keeps his name and his place in the list, and what is
	// sent to him is kept.
	alice.Send("m4", "bob")
	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "2 alice bob")
	again := dial(t, s.addr)
	again.Join("bob")
	again.Expect(protocol.ErrUsernameUnavailable, "")
	alice.Send("m5", "bob")

	b2 := bob.resume(t, s, 2, 0)
	b2.expectMsg("m3")
	b2.expectMsg("m4")
	b2.expectMsg("m5")
	alice.Send("m6", "bob") // and on, live
	b2.expectMsg("m6")

	// Quit ends it at once, with the one line.
	b2.Write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	s.out.Wait(t, "disconnected: bob", 1)
	b2.ExpectClosed()
	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "1 alice")
	want := []string{
		"join: bob", "join: alice",
		"msg: alice", "msg: alice", "msg: alice", "msg: alice", "request_users_list: alice",
		"disconnected: username not available", "msg: alice", "msg: alice",
		"disconnected: bob", "request_users_list: alice",
	}
	if got := s.out.Lines(); !slices.Equal(got, want) {
		t.Fatalf("stdout:\n%q\nwant\n%q", got, want)
	}
	resumeRefused(t, s, "bob", bob.token, 0) // over for good
}

func TestResumeRefused(t *testing.T) {
	s, log := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	alice.Send("one", "bob")
	bob.expectMsg("one")
	bob.NC.Close()
	waitAway(t, log, "bob", 1)

	wrong := bob.token
	wrong[15] ^= 1
	resumeRefused(t, s, "bob", wrong, 1)       // wrong token
	resumeRefused(t, s, "carol", bob.token, 0) // no such session
	resumeRefused(t, s, "alice", bob.token, 0) // a user without a session
	resumeRefused(t, s, "bob", bob.token, 2)   // more than was sent
	c := dial(t, s.addr)                       // resume without asking for it
	c.Write(protocol.AppendResume(nil, "bob", bob.token, 1))
	c.Expect(protocol.ErrUnknownMessage, "")
	for _, bad := range []string{"resume 5 bob 1", "resume 300 "} {
		c := dial(t, s.addr)
		c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}))
		c.Expect(protocol.ExtHello, protocol.FeatureResume)
		c.Write([]byte(bad))
		c.Expect(protocol.ErrUnknownMessage, "")
	}
	// The session is still there for the right token.
	b2 := bob.resume(t, s, 1, 0)
	alice.Send("two", "bob")
	b2.expectMsg("two")
	if got := s.out.Lines(); slices.ContainsFunc(got, func(l string) bool { return l != "join: bob" && l != "join: alice" && l != "msg: alice" }) {
		t.Fatalf("stdout shows more than joins and messages: %q", got)
	}
}

func TestResumeTakesOverHalfOpen(t *testing.T) {
	s := startServer(t, resumeConfig())
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	alice.Send("one", "bob")
	bob.expectMsg("one")
	// bob's old connection is still open (half-open, as a NAT forgets
	// it): the resume takes over at once, without waiting for the loss.
	b2 := bob.resume(t, s, 1, 0)
	bob.ExpectEnd()
	alice.Send("two", "bob")
	b2.expectMsg("two")
	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "2 alice bob")
	if n := s.out.Count("disconnected: bob"); n != 0 {
		t.Fatalf("a takeover printed disconnected: bob (%d)", n)
	}
	if n := s.out.Count("join: bob"); n != 1 {
		t.Fatalf("join: bob printed %d times", n)
	}
}

func TestResumeWindowPasses(t *testing.T) {
	cfg := resumeConfig()
	cfg.ResumeWindow = 100 * time.Millisecond
	s := startServer(t, cfg)
	watcher := joinedResume(t, s, "watcher", protocol.FeaturePresence)
	bob := joinedResume(t, s, "bob")
	watcher.Expect(protocol.Presence, "joined bob")
	bob.NC.Close()
	s.out.Wait(t, "disconnected: bob", 1)
	watcher.Expect(protocol.Presence, "left bob")
	resumeRefused(t, s, "bob", bob.token, 0)
	// The name is free again: a new bob joins, and is announced.
	joined(t, s, "bob")
	watcher.Expect(protocol.Presence, "joined bob")
	if n := s.out.Count("disconnected: bob"); n != 1 {
		t.Fatalf("disconnected: bob printed %d times", n)
	}
}

func TestResumeBufferOverflowCounted(t *testing.T) {
	cfg := resumeConfig()
	size := len(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"alice"}, []byte("message 0")))
	cfg.ResumeBuffer = 3 * size
	s, log := resumeServer(t, cfg)
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	bob.NC.Close()
	waitAway(t, log, "bob", 1)
	// The buffer keeps the last 3 of 10.
	for i := range 10 {
		alice.Send(fmt.Sprint("message ", i), "bob")
	}
	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList)) // after the ten
	alice.Expect(protocol.ResponseUsersList, "2 alice bob")
	b2 := bob.resume(t, s, 0, 7)
	for i := 7; i < 10; i++ {
		b2.expectMsg(fmt.Sprint("message ", i))
	}
}

func TestResumeAckTrims(t *testing.T) {
	s, log := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	for i := range 5 {
		alice.Send(fmt.Sprint("m", i), "bob")
		bob.expectMsg(fmt.Sprint("m", i))
	}
	sess := sessionOf(t, s, "bob")
	kept := func() (int, int) {
		sess.mu.Lock()
		defer sess.mu.Unlock()
		return len(sess.kept) - sess.head, sess.bytes
	}
	if n, b := kept(); n != 5 || b != 5*len("forward_message 10 1 alice m0") {
		t.Fatalf("kept %d frames, %d bytes; want 5", n, b)
	}
	bob.Write(protocol.AppendCount(nil, protocol.Received, 3))
	// The ack is read before the list request that follows it.
	bob.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	bob.counted()
	if n, _ := kept(); n != 3 { // m3, m4 and the list
		t.Fatalf("kept %d frames after the ack, want 3", n)
	}
	// A resume below what was acknowledged cannot have it back.
	bob.NC.Close()
	waitAway(t, log, "bob", 1)
	b2 := bob.resume(t, s, 1, 2)
	b2.expectMsg("m3")
	// An ack past what was sent breaks the protocol.
	b2.Write(protocol.AppendCount(nil, protocol.Received, 99))
	b2.counted() // m4
	b2.counted() // the list
	b2.Expect(protocol.ErrUnknownMessage, "")
	s.out.Wait(t, "disconnected: bob sent unknown command", 1)
}

func TestResumeShutdownEndsAwaySessions(t *testing.T) {
	s, log := resumeServer(t, Config{})
	bob := joinedResume(t, s, "bob")
	joinedResume(t, s, "alice")
	bob.NC.Close()
	waitAway(t, log, "bob", 1)
	stopServerNow(t, s)
	if a, b := s.out.Count("disconnected: alice"), s.out.Count("disconnected: bob"); a != 1 || b != 1 {
		t.Fatalf("after shutdown: disconnected alice %d, bob %d times; want once each", a, b)
	}
}

// stopServerNow shuts s down (its cleanup does it again, harmlessly).
func stopServerNow(t *testing.T, s *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// A replay that does not fit the send queue cannot be given whole: the
// session ends (one disconnected: line) rather than leave the client's
// count out of step with the server's numbers.
func TestResumeReplayPastQueueEnds(t *testing.T) {
	cfg := resumeConfig()
	cfg.SendQueueBytes = 4 << 10
	cfg.PaceBacklog = 1 << 10
	cfg.ResumeBuffer = 64 << 10
	s, log := resumeServer(t, cfg)
	bob := joinedResume(t, s, "bob")
	alice := joined(t, s, "alice")
	bob.NC.Close()
	waitAway(t, log, "bob", 1)
	text := strings.Repeat("x", 100)
	for range 100 { // about 12 KB kept, three times the queue
		alice.Send(text, "bob")
	}
	alice.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	alice.Expect(protocol.ResponseUsersList, "2 alice bob")
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureResume}))
	c.Expect(protocol.ExtHello, protocol.FeatureResume)
	c.Write(protocol.AppendResume(nil, "bob", bob.token, 0))
	s.out.Wait(t, "disconnected: bob", 1)
	c.ExpectEnd()
	if n := s.out.Count("disconnected: bob"); n != 1 {
		t.Fatalf("disconnected: bob printed %d times", n)
	}
}
