package client

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// TestSignalWhileWriteBlocked: a signal ends the session within the quit
// wait even while the client is stuck writing to a server that reads
// nothing (a dead link, or a server pacing an earlier file): the main loop
// sees the signal only between commands, and quit's own disconnect had
// no deadline either. It once hung until the server read again.
func TestSignalWhileWriteBlocked(t *testing.T) {
	release := make(chan struct{})
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.(*net.TCPConn).SetReadBuffer(16 << 10)
		<-release // reads nothing more
	})
	defer close(release)
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Interactive = true
		c.cfg.QuitWait = 500 * time.Millisecond
	})
	line := "msg 1 bob " + strings.Repeat("x", 60000) + "\n"
	go func() { // feeds until the client stops taking lines
		for range 1000 {
			if _, err := io.WriteString(s.stdin, line); err != nil {
				return
			}
		}
	}()
	chattest.WaitUntil(t, "the client is stuck writing to the server", func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return strings.Contains(stacks, "(*client).writeTaken(") && strings.Contains(stacks, "waitWrite")
	})
	s.signal() // SIGINT
	select {
	case got := <-s.code:
		if got != ExitOK {
			t.Errorf("exit %d after the signal, want %d", got, ExitOK)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("client still running 5 s after the signal (quit wait 0.5 s); stderr %q", s.stderr)
	}
	if got := s.stdout.String(); got != "quitting\n" {
		t.Errorf("stdout %q, want quitting", got)
	}
}

// pausingConn pauses the first SetWriteDeadline call until proceed is
// closed: it stands for the scheduler preempting stopUploads between its
// snapshot of c.ups and acting on it.
type pausingConn struct {
	net.Conn
	once    sync.Once
	entered chan struct{}
	proceed chan struct{}
}

func (p *pausingConn) SetWriteDeadline(t time.Time) error {
	p.once.Do(func() {
		close(p.entered)
		<-p.proceed
	})
	return p.Conn.SetWriteDeadline(t)
}

// TestQuitAfterPlainUploadWentWhole: quit gives up the uploads it finds
// under way, but a send_file that goes whole meanwhile is not cut: the
// session still sends disconnect and says nothing of a file nobody got.
// (quit once acted on its list of uploads as it was: it cut the
// connection without disconnect, and said a file that went whole was
// lost.)
func TestQuitAfterPlainUploadWentWhole(t *testing.T) {
	cliEnd, srvEnd := net.Pipe()
	pc := &pausingConn{Conn: cliEnd, entered: make(chan struct{}), proceed: make(chan struct{})}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(path, make([]byte, 200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newClient(Config{User: "me", Addr: "x", DownloadDir: dir, Stdout: stdout, Stderr: stderr,
		Interactive: true, Input: eofSource{}})
	c.nc = pc
	c.w = bufio.NewWriterSize(pc, 64<<10)
	go c.receive(protocol.NewReader(pc))

	u := c.sendFile([]string{"bob"}, path) // plain: blocks on the pipe
	if u == nil {
		t.Fatal("no upload")
	}
	code := make(chan int, 1)
	go func() { code <- c.quit() }() // the user types quit mid-file
	<-pc.entered                     // stopUploads has its snapshot: [u]

	// Meanwhile the server reads the whole file, and the upload ends.
	frames := make(chan string, 4)
	go func() {
		defer close(frames)
		r := protocol.NewReader(srvEnd)
		for {
			h, err := r.ReadHeader()
			if err != nil {
				return
			}
			frames <- h.Name
		}
	}()
	<-u.done
	close(pc.proceed) // stopUploads resumes on its stale snapshot

	if got := <-code; got != ExitOK {
		t.Errorf("exit %d", got)
	}
	var got []string
	for f := range frames {
		got = append(got, f)
	}
	srvEnd.Close()
	if len(got) != 2 || got[1] != "disconnect" {
		t.Errorf("server got %v, want [send_file disconnect]; stderr %q", got, stderr)
	}
	if strings.Contains(stderr.String(), "nobody gets it") {
		t.Errorf("stderr says the file was lost: %q", stderr)
	}
}

type eofSource struct{}

func (eofSource) ReadLine() (string, error) { return "", io.EOF }

// TestLateReplyIsNotTheNextCommands: an answer that comes after the
// client stopped waiting for it (a slow link) does not count as the
// answer to the next command, whose own answer is still printed before
// the next line's output. (It once did, and a bad command's line came
// before the list that was typed first.) The server's pauses stand for a
// slow link.
func TestLateReplyIsNotTheNextCommands(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.SendMessage)
		time.Sleep(1500 * time.Millisecond) // a slow echo (> the reply wait)
		nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"me"}, []byte("a")))
		expectFrame(t, r, protocol.RequestUsersList)
		time.Sleep(100 * time.Millisecond) // well within list's own reply wait
		sendThenAwaitQuit(t, nc, r, protocol.AppendUsersList(nil, []string{"me"}))
	})
	// A reply wait of 1 s instead of 300 ms: the margins of the server's
	// pauses above hold on a loaded machine.
	s := startClientWith(t, addr, func(c *client) { c.replyWait = time.Second })
	s.input(t, "msg 1 me a", "list", "bogus", "quit")
	s.exit(t)
	want := "msg: me: a\nlist: me\nincorrect user input format\nquitting\n"
	if got := s.stdout.String(); got != want {
		t.Errorf("stdout\n%q\nwant\n%q", got, want)
	}
}

// TestSignalWhileHelloUnanswered: a signal while the client waits for a
// server's answer to ext_hello ends the session at once, not after the
// connect timeout.
func TestSignalWhileHelloUnanswered(t *testing.T) {
	heard := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	addr := serveOne(t, func(nc net.Conn, r *protocol.Reader) {
		if h, err := r.ReadHeader(); err != nil || h.Type != protocol.ExtHello {
			t.Errorf("first frame: %v %v, want ext_hello", h.Name, err)
		}
		close(heard)
		<-release // never answers
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	c := newClient(Config{User: "me", Addr: addr, DownloadDir: t.TempDir(), Extensions: true,
		ConnectTimeout: time.Minute, Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr})
	c.helloWait = time.Minute // the signal, not the fallback, must end the wait
	code := make(chan int, 1)
	go func() { code <- c.run(ctx) }()
	select {
	case <-heard:
	case <-time.After(10 * time.Second):
		t.Fatal("the client never asked for extensions")
	}
	cancel()
	select {
	case got := <-code:
		if got != ExitDisconnected {
			t.Errorf("exit %d, want %d", got, ExitDisconnected)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client still waiting for the answer 5 s after the signal")
	}
	if strings.Contains(stderr.String(), "declined") {
		t.Errorf("stderr blames the server: %q", stderr)
	}
}
