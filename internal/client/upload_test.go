package client

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testcert"
)

// uploadFeatures are the features a fake server grants.
var uploadFeatures = []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline}

// fakeUploadServer is fakeServer for a client with Extensions: it grants
// chunked-file, file-upload and not-online, reads the join and runs
// script.
func fakeUploadServer(t *testing.T, script func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	// try-again not granted: the join is silent
	asks := append(slices.Clone(uploadFeatures), protocol.FeatureTryAgain, protocol.FeatureResume, protocol.FeatureTaken)
	return fakeGrantServer(t, func(asked []string) bool { return slices.Equal(asked, asks) }, uploadFeatures, script)
}

// expectQuitting checks the end of a session that quit: status 0,
// quitting alone on stdout, and want on stderr.
func (s *session) expectQuitting(t *testing.T, want string) {
	t.Helper()
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	if got := s.stdout.String(); got != "quitting\n" {
		t.Errorf("stdout %q", got)
	}
	if !strings.Contains(s.stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", s.stderr.String(), want)
	}
}

// startUploader starts a client with Extensions (on a terminal if
// interactive: files then go in the background) and a file of size bytes
// named big.bin in its folder, which it returns.
func startUploader(t *testing.T, addr string, interactive bool, size int) (*session, []byte) {
	t.Helper()
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = true
		c.cfg.Interactive = interactive
	})
	data := bytes.Repeat([]byte{1, 2, 3, 0, 255, '\n', ' '}, size/7+1)[:size]
	if err := os.WriteFile(filepath.Join(s.dir, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return s, data
}

// readUpload reads the file_begin of an upload and answers it with
// file_ready naming online, and returns the upload's id.
func readUpload(t *testing.T, nc net.Conn, r *protocol.Reader, wantNames []string, online []string, window int64) uint64 {
	t.Helper()
	p := expectFrame(t, r, protocol.FileBegin)
	id, names, filename, _, err := protocol.ParseUploadBegin(p)
	if err != nil || !slices.Equal(names, wantNames) || filename != "big.bin" {
		t.Errorf("file_begin %q: %v", p, err)
	}
	nc.Write(protocol.AppendFileReady(nil, id, window, online))
	return id
}

func TestUploadToNobodySendsNothing(t *testing.T) {
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		readUpload(t, nc, r, []string{"nobody"}, nil, 1<<20)
		// Nothing of the file comes: the next frame is the quit.
		expectFrame(t, r, protocol.Disconnect)
	})
	s, _ := startUploader(t, addr, false, 5<<20)
	s.input(t, "file 1 nobody "+filepath.Join(s.dir, "big.bin"), "quit")
	s.expectQuitting(t, "not online: nobody; big.bin was not sent")
}

// The client keeps within the window, and with piped input the next line
// waits for the file_result: output and frames follow input order.
func TestUploadKeepsWindowAndOrder(t *testing.T) {
	const window = 300 << 10
	resultSent := make(chan struct{})
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		id := readUpload(t, nc, r, []string{"bob", "ghost"}, []string{"bob"}, window)
		var got, acked int64
		if _, ok := readUntil(t, r, protocol.FileEnd, func(h protocol.Header, p []byte) bool {
			cid, data, err := protocol.ParseChunk(p)
			if h.Type != protocol.FileChunk || err != nil || cid != id {
				t.Errorf("got %s %v, want file_chunk", h.Name, err)
				return false
			}
			got += int64(len(data))
			if got-acked > window {
				t.Errorf("the client is %d bytes ahead of the last ack, window %d", got-acked, window)
			}
			if got-acked > window/2 { // acknowledge now and then
				acked = got
				nc.Write(protocol.AppendFileAck(nil, id, acked))
			}
			return true
		}); !ok {
			return
		}
		time.Sleep(50 * time.Millisecond) // a slow delivery: the scenario, not a wait
		nc.Write(protocol.AppendFileResult(nil, id, []string{"bob"}))
		close(resultSent)
		if p := expectFrame(t, r, protocol.SendMessage); string(p) != "1 bob after" {
			t.Errorf("send_message %q", p)
		}
		expectFrame(t, r, protocol.Disconnect)
	})
	s, _ := startUploader(t, addr, false, 2<<20)
	s.input(t, "file 2 bob ghost "+filepath.Join(s.dir, "big.bin"), "msg 1 bob after", "quit")
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	select {
	case <-resultSent:
	default:
		t.Error("the client ended before the file_result")
	}
	if !strings.Contains(s.stderr.String(), "not online: ghost; big.bin goes to the others only") {
		t.Errorf("stderr %q", s.stderr.String())
	}
}

// With piped input, a message to none of the file's recipients and a
// list go at once while the file waits for its recipient (issue 19 part 4:
// held, `msg 1 carol` waited for the file_result, which a recipient who
// reads nothing delays until it is cut off), and a message to the file's
// recipient still waits for the file_result.
func TestPipedMessageOvertakesFile(t *testing.T) {
	const window = 256 << 10
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		next := func() (protocol.Header, []byte) { // the next frame that is not a chunk
			for {
				h, p, ok := nextFrame(t, r)
				if !ok {
					return h, nil
				}
				if h.Type != protocol.FileChunk {
					return h, p
				}
			}
		}
		// The file's head, then carol's message and the list, which
		// wait for its file_ready (the server's lines keep the input's
		// order); no ack: the file stops at its window, as for a
		// recipient who reads nothing.
		var id uint64
		var msg, list bool
		for id == 0 || !msg || !list {
			h, p := next()
			switch {
			case h.Type == protocol.FileBegin && id == 0:
				gid, names, _, _, err := protocol.ParseUploadBegin(p)
				if err != nil || !slices.Equal(names, []string{"bob"}) {
					t.Errorf("file_begin %q: %v", p, err)
				}
				id = gid
				nc.Write(protocol.AppendFileReady(nil, id, window, []string{"bob"}))
			case h.Type == protocol.SendMessage && string(p) == "1 carol hi" && id != 0 && !msg:
				msg = true
			case h.Type == protocol.RequestUsersList && msg && !list:
				list = true
				nc.Write(protocol.AppendUsersList(nil, []string{"alice", "bob", "carol"}))
			default:
				t.Errorf("got %s %q", h.Name, p)
				return
			}
		}
		nc.Write(protocol.AppendFileAck(nil, id, 5<<20))
		if h, _ := next(); h.Type != protocol.FileEnd {
			t.Errorf("got %s, want file_end", h.Name)
			return
		}
		// Before the file_result, bob's message stays with the client.
		nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if h, err := r.ReadHeader(); err == nil {
			t.Errorf("got %s before the file_result", h.Name)
			return
		}
		nc.SetReadDeadline(time.Time{})
		nc.Write(protocol.AppendFileResult(nil, id, []string{"bob"}))
		if p := expectFrame(t, r, protocol.SendMessage); string(p) != "1 bob after" {
			t.Errorf("send_message %q", p)
		}
		expectFrame(t, r, protocol.Disconnect)
	})
	s, _ := startUploader(t, addr, false, 5<<20)
	s.input(t, "file 1 bob "+filepath.Join(s.dir, "big.bin"), "msg 1 carol hi", "list", "msg 1 bob after", "quit")
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	if got := s.stdout.String(); got != "list: alice bob carol\nquitting\n" {
		t.Errorf("stdout %q", got)
	}
}

// abortedStillHere is a fake server's end of a test of an upload the
// client aborts: it checks that abort, the file_abort's payload, names
// upload id, closes aborted, answers the abort, and expects the session
// to go on (stillHere) until the quit.
func abortedStillHere(t *testing.T, nc net.Conn, r *protocol.Reader, id uint64, abort []byte, aborted chan struct{}) {
	t.Helper()
	if gid, _ := protocol.ParseFileID(abort); gid != id {
		t.Errorf("file_abort %q", abort)
	}
	close(aborted)
	nc.Write(protocol.AppendFileResult(nil, id, nil))
	if p := expectFrame(t, r, protocol.SendMessage); string(p) != "1 bob still here" {
		t.Errorf("send_message %q", p)
	}
	expectFrame(t, r, protocol.Disconnect)
}

// stillHere is the user's end of abortedStillHere: a message to bob after
// the aborted upload, then quit.
func (s *session) stillHere(t *testing.T) {
	t.Helper()
	s.input(t, "msg 1 bob still here", "quit")
	s.expectQuitting(t, "")
}

// cancel, typed while a file goes in the background: file_abort, and the
// session goes on.
func TestUploadCancel(t *testing.T) {
	aborted, full := make(chan struct{}), make(chan struct{})
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		id := readUpload(t, nc, r, []string{"bob"}, []string{"bob"}, 256<<10)
		got := 0
		abort, ok := readUntil(t, r, protocol.FileAbort, func(h protocol.Header, p []byte) bool {
			if h.Type != protocol.FileChunk {
				t.Errorf("got %s", h.Name)
			} else if got += len(p) - 2; got == 256<<10 { // no ack: the client stops at the window
				close(full)
			}
			return true
		})
		if ok {
			abortedStillHere(t, nc, r, id, abort, aborted)
		}
	})
	s, _ := startUploader(t, addr, true, 5<<20)
	s.input(t, "file 1 bob "+filepath.Join(s.dir, "big.bin"))
	s.await(t, full, "the window is full")
	s.input(t, "cancel")
	s.await(t, aborted, "the upload is aborted")
	waitFor(t, s.stderr, "client: cancelled big.bin after 256.0 KiB of 5.0 MiB; nobody got it\n")
	s.stillHere(t)
}

// A file that shrinks while it is sent: the chunk whose bytes the file no
// longer has is filled with zeros (its header, with the length, went
// first: sendfile sends the bytes after it), so the stream stays in step,
// and the upload is aborted with a message; the session goes on.
func TestUploadFileShrinks(t *testing.T) {
	path := make(chan string, 1)
	aborted := make(chan struct{})
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		p := expectFrame(t, r, protocol.FileBegin)
		id, _, _, _, err := protocol.ParseUploadBegin(p)
		if err != nil {
			t.Errorf("file_begin %q: %v", p, err)
		}
		if err := os.Truncate(<-path, 100<<10); err != nil {
			t.Error(err)
		}
		nc.Write(protocol.AppendFileReady(nil, id, 1<<20, []string{"bob"}))
		var data []byte
		abort, ok := readUntil(t, r, protocol.FileAbort, func(h protocol.Header, p []byte) bool {
			cid, chunk, err := protocol.ParseChunk(p)
			if h.Type != protocol.FileChunk || err != nil || cid != id {
				t.Errorf("got %s %v, want file_chunk", h.Name, err)
				return false
			}
			data = append(data, chunk...)
			return true
		})
		if !ok {
			return
		}
		if len(data) > uploadChunk {
			t.Errorf("%d bytes sent after the file shrank to 100 KiB, want at most a chunk", len(data))
		}
		if len(data) > 100<<10 && slices.ContainsFunc(data[100<<10:], func(b byte) bool { return b != 0 }) {
			t.Error("the bytes past the file's new end are not zeros")
		}
		abortedStillHere(t, nc, r, id, abort, aborted)
	})
	s, _ := startUploader(t, addr, true, 1<<20)
	path <- filepath.Join(s.dir, "big.bin")
	s.input(t, "file 1 bob "+filepath.Join(s.dir, "big.bin"))
	s.await(t, aborted, "the upload is aborted")
	waitFor(t, s.stderr, "client: cannot read big.bin after 0 B of 1.0 MiB (unexpected EOF); cancelled, nobody got it\n")
	s.stillHere(t)
}

// Quitting (Ctrl-C, a signal, end of input) mid-upload cancels the file
// first, even with a server that has stopped acknowledging.
func TestUploadQuitCancels(t *testing.T) {
	started := make(chan struct{})
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		readUpload(t, nc, r, []string{"bob"}, []string{"bob"}, 256<<10)
		expectFrame(t, r, protocol.FileChunk)
		close(started)
		if _, ok := readUntil(t, r, protocol.FileAbort, nil); ok {
			expectFrame(t, r, protocol.Disconnect)
		}
	})
	s, _ := startUploader(t, addr, true, 5<<20)
	s.input(t, "file 1 bob "+filepath.Join(s.dir, "big.bin"))
	s.await(t, started, "the upload started")
	s.stdin.Close()
	s.expectQuitting(t, "cancelled big.bin after")
}

// With the plain protocol a signal mid-file cuts the send_file short
// (the only way to stop it) instead of waiting for a server that takes
// nothing; stdout says quitting, and no line claims the file went.
func TestPlainUploadSignalCutsIt(t *testing.T) {
	release := make(chan struct{})
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.(*net.TCPConn).SetReadBuffer(16 << 10)
		h, err := r.ReadHeader()
		if err != nil || h.Type != protocol.SendFile {
			t.Errorf("got %s %v", h.Name, err)
		}
		<-release // reads nothing more
	})
	defer close(release)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var moving <-chan struct{}
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Interactive = true
		moving = transferStarted(c, "send")
	})
	io.WriteString(s.stdin, "file 1 bob "+filepath.Join(dir, "big.bin")+"\n")
	// And soon the buffers are full: the client waits on the server.
	s.await(t, moving, "the file started")
	s.signal()
	if got := s.exit(t); got != 0 {
		t.Errorf("exit %d", got)
	}
	if got := s.stdout.String(); got != "quitting\n" {
		t.Errorf("stdout %q", got)
	}
	if e := s.stderr.String(); !strings.Contains(e, "cut the connection to stop sending big.bin") || strings.Contains(e, "sent big.bin") {
		t.Errorf("stderr %q", e)
	}
}

// A server that gives up early (every recipient gone): the client stops
// sending and says who the file did not reach.
func TestUploadEarlyResult(t *testing.T) {
	addr := fakeUploadServer(t, func(nc net.Conn, r *protocol.Reader) {
		id := readUpload(t, nc, r, []string{"bob"}, []string{"bob"}, 256<<10)
		expectFrame(t, r, protocol.FileChunk)
		nc.Write(protocol.AppendFileResult(nil, id, nil))
		// The rest of the window, at most, then the quit.
		readUntil(t, r, protocol.Disconnect, func(h protocol.Header, _ []byte) bool {
			if h.Type != protocol.FileChunk {
				t.Errorf("got %s", h.Name)
			}
			return true
		})
	})
	s, _ := startUploader(t, addr, false, 5<<20)
	s.input(t, "file 1 bob "+filepath.Join(s.dir, "big.bin"), "quit")
	s.expectQuitting(t, "big.bin did not reach bob (they left or stopped reading; the server gave up after")
}

func TestNotices(t *testing.T) {
	addr := serveOne(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.ExtHello)
		nc.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureNotOnline, protocol.FeaturePresence}))
		expectFrame(t, r, protocol.Join)
		var b []byte
		b = protocol.AppendNotOnline(b, []string{"ghost", "nobody"})
		b = protocol.AppendPresence(b, protocol.PresenceJoined, "bob")
		b = protocol.AppendPresence(b, protocol.PresenceLeft, "bob")
		b = protocol.AppendPresence(b, protocol.PresencePaused, "100")
		b = protocol.AppendPresence(b, protocol.PresenceResumed, "")
		b = append(b, "presence 5 hello"...)
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("end"))
		sendThenAwaitQuit(t, nc, r, b)
	})
	var seen []string
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions, c.cfg.Presence = true, true
		c.cfg.Hooks.Users = func(names []string) { seen = append(seen, names...) }
	})
	s.quitAfter(t, "msg: bob: end\n")
	want := "client: not online: ghost, nobody; they did not get it\nclient: bob joined\nclient: bob left\n" +
		"client: more than 100 users online: join and leave notices pause\nclient: join and leave notices resume\n"
	if e := s.stderr.String(); !strings.HasPrefix(e, want) || !strings.Contains(e, "ignoring malformed presence") {
		t.Errorf("stderr %q", e)
	}
	if got := s.stdout.String(); got != "msg: bob: end\nquitting\n" {
		t.Errorf("stdout %q", got)
	}
	if !slices.Contains(seen, "bob") {
		t.Errorf("names seen %q", seen)
	}
}

// A plain client against a TLS server says what is wrong, whether it
// first asked for extensions or not.
func TestTLSServerHint(t *testing.T) {
	cert := testcert.New(t).TLS
	for _, ext := range []bool{false, true} {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				// The handshake fails on the join (or ext_hello), as a TLS
				// server's does, or succeeds for the probe.
				nc.(*tls.Conn).Handshake()
				nc.Close()
			}
		}()
		s := startClientWith(t, ln.Addr().String(), func(c *client) { c.cfg.Extensions = ext })
		if c := s.quitAfter(t, "disconnected: connection to server lost\n"); c != 1 {
			t.Errorf("extensions %v: exit %d", ext, c)
		}
		if e := s.stderr.String(); !strings.Contains(e, "seems to speak TLS: start the client with --tls") {
			t.Errorf("extensions %v: stderr %q", ext, e)
		}
		ln.Close()
		<-served
	}
}

// The Joined hook runs once the join stands, and never for a refusal.
func TestJoinedHook(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
			if refuse {
				nc.Write(protocol.AppendEmpty(nil, protocol.ErrServerFull))
			}
			io.Copy(io.Discard, nc)
		})
		joined := make(chan struct{}, 1)
		s := startClientWith(t, addr, func(c *client) { c.cfg.Hooks.Joined = func() { joined <- struct{}{} } })
		s.stdin.Close()
		s.exit(t)
		if got := len(joined) == 1; got == refuse {
			t.Errorf("refused %v: joined hook called %v", refuse, got)
		}
	}
}

func TestExpandHome(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	for in, want := range map[string]string{
		"~/notes.txt": filepath.Join(home, "notes.txt"), "~": home, "~bob/x": "~bob/x", "a/~/b": "a/~/b", "/abs": "/abs",
	} {
		if got := expandHome(in); got != want {
			t.Errorf("expandHome(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFileNameProblems(t *testing.T) {
	dir := t.TempDir()
	spaced := filepath.Join(dir, "my notes.txt")
	os.WriteFile(spaced, []byte("x"), 0o644)
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.Disconnect) // nothing was sent
	})
	s := startClient(t, addr)
	s.input(t, "file 1 bob "+spaced, "file 1 bob "+filepath.Join(dir, strings.Repeat("n", 201)), "quit")
	s.exit(t)
	e := s.stderr.String()
	for _, want := range []string{
		"my notes.txt: its name contains whitespace, which file names on the chat cannot",
		"its name is longer than 200 bytes",
	} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr %q lacks %q", e, want)
		}
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
	if got := summary(10<<20, 2*time.Second); got != "10.0 MiB in 2s, 5.0 MiB/s" {
		t.Errorf("summary = %q", got)
	}
	if got := summary(8, time.Millisecond); got != "8 B" {
		t.Errorf("summary = %q", got)
	}
}

// Bytes counted after the last report are reported soon after, even if
// no more come: a transfer that stops shows how far it got.
func TestProgressReportsTheLastBytes(t *testing.T) {
	reports := make(chan int64, 10)
	p := &progressCounter{fn: func(_ uint64, _, _ string, done, _ int64, finished bool) {
		if !finished {
			reports <- done
		}
	}, total: 100}
	p.Write(make([]byte, 10)) // reported at once
	p.Write(make([]byte, 10)) // within the interval: later
	for _, want := range []int64{10, 20} {
		select {
		case got := <-reports:
			if got != want {
				t.Fatalf("reported %d, want %d", got, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no report of %d", want)
		}
	}
	p.mu.Lock()
	p.last = time.Now() // a report just now: the next bytes wait for the trailing one
	p.mu.Unlock()
	p.Write(make([]byte, 5))
	p.finish() // the trailing report is off: nothing after the end
	p.Write(make([]byte, 5))
	time.Sleep(2 * progressEvery) // that nothing comes: the scenario, not a wait
	if len(reports) != 0 {
		t.Fatalf("reported %d after the end", <-reports)
	}
}
