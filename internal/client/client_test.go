package client

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// syncBuffer is a goroutine-safe bytes.Buffer that signals each write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
	return s.b.Write(p)
}

// wait returns a channel closed at the next write.
func (s *syncBuffer) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeServer accepts one connection, reads its join and runs script on
// it.
func fakeServer(t *testing.T, script func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	return serveOne(t, func(nc net.Conn, r *protocol.Reader) {
		h, err := r.ReadHeader()
		if err != nil || h.Type != protocol.Join {
			t.Errorf("first frame: %v %v, want join", h.Name, err)
			return
		}
		r.Discard()
		script(nc, r)
	})
}

// serveOne accepts one connection and runs script on it, within
// waitTimeout; it returns the address to dial.
func serveOne(t *testing.T, script func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	return serveSeq(t, script)
}

// serveSeq serves the connections to one address in turn, each with the
// next of scripts, within waitTimeout; once the last is accepted, further
// connections are refused. The test's cleanup stops it.
func serveSeq(t *testing.T, scripts ...func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, script := range scripts {
			nc, err := ln.Accept()
			if i == len(scripts)-1 {
				ln.Close()
			}
			if err != nil {
				return
			}
			func() {
				defer nc.Close() // also if script ends its goroutine
				nc.SetDeadline(time.Now().Add(waitTimeout))
				script(nc, protocol.NewReader(nc))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// sendThenAwaitQuit is the end of many scripts: it writes b to the client
// and waits for its disconnect.
func sendThenAwaitQuit(t *testing.T, nc net.Conn, r *protocol.Reader, b []byte) {
	t.Helper()
	nc.Write(b)
	expectFrame(t, r, protocol.Disconnect)
}

// nextFrame reads a whole frame for a fake server's script; a read error
// is reported, and ok is false.
func nextFrame(t *testing.T, r *protocol.Reader) (h protocol.Header, p []byte, ok bool) {
	t.Helper()
	h, err := r.ReadHeader()
	if err != nil {
		t.Errorf("read: %v", err)
		return h, nil, false
	}
	p, _ = r.ReadPayload(nil)
	return h, p, true
}

// readUntil reads frames for a fake server's script until one of type
// end, and returns its payload. It hands each frame before that one to
// each, if not nil, which returns false to stop; ok is false if each
// stopped or the connection ended first (reported).
func readUntil(t *testing.T, r *protocol.Reader, end protocol.Type, each func(h protocol.Header, p []byte) bool) (p []byte, ok bool) {
	t.Helper()
	for {
		h, p, ok := nextFrame(t, r)
		if !ok {
			return nil, false
		}
		if h.Type == end {
			return p, true
		}
		if each != nil && !each(h, p) {
			return nil, false
		}
	}
}

// expectFrame reads a frame and checks its type.
func expectFrame(t *testing.T, r *protocol.Reader, want protocol.Type) []byte {
	t.Helper()
	h, err := r.ReadHeader()
	if err != nil || h.Type != want {
		t.Errorf("got %s %v, want %s", h.Name, err, want)
		return nil
	}
	p, _ := r.ReadPayload(nil)
	return p
}

type session struct {
	stdin  *io.PipeWriter
	stdout *syncBuffer
	stderr *syncBuffer
	dir    string
	code   chan int
	signal context.CancelFunc // what SIGINT and SIGTERM do
}

// startClient runs a client joining as "me" at addr, its input on a pipe
// and its output in buffers.
func startClient(t *testing.T, addr string) *session {
	t.Helper()
	return startClientWith(t, addr, func(*client) {})
}

// startClientWith is startClient with the session changed by adjust
// before it runs.
func startClientWith(t *testing.T, addr string, adjust func(c *client)) *session {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{stdin: pw, stdout: &syncBuffer{}, stderr: &syncBuffer{}, dir: t.TempDir(), code: make(chan int, 1), signal: cancel}
	c := newClient(Config{
		User: "me", Addr: addr, DownloadDir: s.dir,
		Stdin: pr, Stdout: s.stdout, Stderr: s.stderr,
	})
	adjust(c)
	go func() {
		s.code <- c.run(ctx)
		pr.Close()
	}()
	t.Cleanup(func() {
		pw.Close()
		cancel()
	})
	return s
}

func (s *session) input(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(s.stdin, l+"\n"); err != nil {
			t.Fatalf("writing input: %v", err)
		}
	}
}

func (s *session) exit(t *testing.T) int {
	t.Helper()
	select {
	case c := <-s.code:
		return c
	case <-time.After(waitTimeout):
		t.Fatalf("client did not exit; stdout:\n%s\nstderr:\n%s", s.stdout, s.stderr)
		return -1
	}
}

func TestQuitPrintsWhatArrivesThenQuitting(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.RequestUsersList)
		if p := expectFrame(t, r, protocol.Disconnect); string(p) != "me" {
			t.Errorf("disconnect payload %q, want me", p)
		}
		nc.Write(protocol.AppendUsersList(nil, []string{"alice", "me"}))
	})
	s := startClient(t, addr)
	s.input(t, "list", "quit")
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d, want 0", c)
	}
	if got, want := s.stdout.String(), "list: alice me\nquitting\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

func TestQuitGivesUpAfterQuitWait(t *testing.T) {
	release := make(chan struct{})
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.Disconnect)
		<-release // never closes by itself
	})
	defer close(release)
	s := startClient(t, addr)
	s.stdin.Close() // end of input is quit
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d, want 0", c)
	}
	if got := s.stdout.String(); got != "quitting\n" {
		t.Errorf("stdout %q, want quitting", got)
	}
}

func TestErrorFramesEndSession(t *testing.T) {
	for typ, line := range map[protocol.Type]string{
		protocol.ErrServerFull:          "disconnected: server full",
		protocol.ErrUsernameUnavailable: "disconnected: username not available",
		protocol.ErrUnknownMessage:      "disconnected: server received an unknown command",
	} {
		t.Run(typ.String(), func(t *testing.T) {
			sent := make(chan struct{})
			addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
				nc.Write([]byte(typ.String() + " 3 odd")) // acted on whatever the payload
				close(sent)
				io.Copy(io.Discard, nc)
			})
			s := startClient(t, addr)
			<-sent
			waitFor(t, s.stdout, line+"\n")
			// Input after the disconnection is read and discarded.
			s.input(t, "list", "help", "bogus")
			s.stdin.Close()
			if c := s.exit(t); c != 1 {
				t.Errorf("exit %d, want 1", c)
			}
			if got := s.stdout.String(); got != line+"\n" {
				t.Errorf("stdout %q, want %q", got, line)
			}
		})
	}
}

func TestReceivedFiles(t *testing.T) {
	content := bytes.Repeat([]byte{0, 1, 2, 3, 255, '\n'}, 50000)
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		var b []byte
		for _, name := range []string{"../x", "..", ".", "a\x00b", "a\x01b", "a/b", "a\\b", strings.Repeat("n", 201)} {
			b = protocol.AppendFileHead(b, protocol.ForwardFile, []string{"bob"}, name, 3)
			b = append(b, "bad"...)
		}
		// A saved name over 255 bytes is refused.
		b = protocol.AppendFileHead(b, protocol.ForwardFile, []string{"bob"}, strings.Repeat("n", 253), 3)
		b = append(b, "bad"...)
		b = protocol.AppendFileHead(b, protocol.ForwardFile, []string{"bob"}, "data.bin", int64(len(content)))
		b = append(b, content...)
		b = protocol.AppendFileHead(b, protocol.ForwardFile, []string{"bob"}, "empty", 0)
		b = append(b, "mystery 4 abcd"...) // an unknown type is skipped
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after  all"))
		sendThenAwaitQuit(t, nc, r, b)
	})
	s := startClient(t, addr)
	s.quitAfter(t, "msg: bob: after  all\n")
	want := "file: bob: data.bin\nfile: bob: empty\nmsg: bob: after  all\nquitting\n"
	if got := s.stdout.String(); got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	got, err := os.ReadFile(filepath.Join(s.dir, "me_data.bin"))
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("saved file differs (err %v)", err)
	}
	s.expectFiles(t, "me_data.bin", "me_empty")
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.dir), "x")); err == nil {
		t.Error("a file escaped the download folder")
	}
}

func TestDropMidFileLeavesNothing(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendFileHead(nil, protocol.ForwardFile, []string{"bob"}, "f.bin", 1<<20))
		nc.Write(make([]byte, 1000))
	})
	s := startClient(t, addr)
	if c := s.quitAfter(t, "disconnected: connection to server lost\n"); c != 1 {
		t.Errorf("exit %d, want 1", c)
	}
	s.expectFiles(t)
}

func TestUndecodableStream(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.Write([]byte("forward_message x "))
		io.Copy(io.Discard, nc)
	})
	s := startClient(t, addr)
	waitFor(t, s.stdout, "disconnected: connection to server lost\n")
	s.input(t, "quit")
	if c := s.exit(t); c != 1 {
		t.Errorf("exit %d, want 1", c)
	}
	if got := s.stdout.String(); got != "disconnected: connection to server lost\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestSendFileFrames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my dir")
	os.Mkdir(dir, 0o755)
	path := filepath.Join(dir, "notes.txt")
	os.WriteFile(path, []byte("hello\x00world"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad name"), nil, 0o644)
	got := make(chan []byte, 1)
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		got <- expectFrame(t, r, protocol.SendFile)
		expectFrame(t, r, protocol.Disconnect)
	})
	s := startClient(t, addr)
	s.input(t, "file 2 bob carol "+filepath.Join(dir, "missing"), "file 1 bob "+dir, "file 1 bob "+filepath.Join(dir, "bad name"), "file 2 bob carol "+path, "quit")
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	if p := <-got; string(p) != "2 bob carol notes.txt hello\x00world" {
		t.Errorf("send_file payload %q", p)
	}
	if s.stdout.String() != "quitting\n" {
		t.Errorf("stdout %q, want only quitting", s.stdout.String())
	}
	if !strings.Contains(s.stderr.String(), "missing") {
		t.Errorf("no stderr report of the missing file: %q", s.stderr.String())
	}
}

// quitAfter waits until stdout holds line, then ends the input, which is
// quit, and returns the exit code.
func (s *session) quitAfter(t *testing.T, line string) int {
	t.Helper()
	waitFor(t, s.stdout, line)
	s.stdin.Close()
	return s.exit(t)
}

// expectFiles requires the download folder to hold exactly the files
// named in want, in order.
func (s *session) expectFiles(t *testing.T, want ...string) {
	t.Helper()
	if names := chattest.DirNames(t, s.dir); !slices.Equal(names, want) {
		t.Errorf("download folder holds %q, want %q", names, want)
	}
}

// expectNoPartFiles requires the download folder to hold no temporary
// file.
func (s *session) expectNoPartFiles(t *testing.T) {
	t.Helper()
	if parts := partFiles(t, s.dir); len(parts) != 0 {
		t.Errorf("temporary files left: %v", parts)
	}
}

// await waits until ch is closed; what names the event in the failure.
func (s *session) await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting until %s; stdout %q, stderr %q", what, s.stdout, s.stderr)
	}
}

// waitFor waits until b's content contains want.
func waitFor(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		ch := b.wait()
		if strings.Contains(b.String(), want) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %q; have %q", want, b.String())
		}
	}
}

func TestRefusalBeforeInput(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendEmpty(nil, protocol.ErrUsernameUnavailable))
		io.Copy(io.Discard, nc)
	})
	s := startClient(t, addr)
	// Input already waiting when the refusal arrives is never acted on.
	go io.WriteString(s.stdin, "help\nbogus\nquit\n")
	if c := s.exit(t); c != 1 {
		t.Errorf("exit %d, want 1", c)
	}
	if got := s.stdout.String(); got != "disconnected: username not available\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestOutputFollowsInputOrder(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.RequestUsersList)
		time.Sleep(50 * time.Millisecond) // a slow server: the scenario, not a wait
		nc.Write(protocol.AppendUsersList(nil, []string{"me"}))
		expectFrame(t, r, protocol.SendMessage)
		time.Sleep(50 * time.Millisecond)
		sendThenAwaitQuit(t, nc, r, protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"me"}, []byte("to myself")))
	})
	// The replies take 50 ms of the 300 ms the client waits; a wait of 2 s
	// keeps that margin on a loaded machine.
	s := startClientWith(t, addr, func(c *client) { c.replyWait = 2 * time.Second })
	s.input(t, "list", "bogus", "msg 1 me to myself", "help x", "quit")
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	want := "list: me\nincorrect user input format\nmsg: me: to myself\nincorrect user input format\nquitting\n"
	if got := s.stdout.String(); got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}
