package client

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// fakeExtServer is fakeServer for a client started with Extensions: it
// accepts the ext_hello, grants chunked-file only, reads the join and
// runs script.
func fakeExtServer(t *testing.T, script func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	asks := func(asked []string) bool { return slices.Contains(asked, protocol.FeatureChunkedFile) }
	return fakeGrantServer(t, asks, []string{protocol.FeatureChunkedFile}, script)
}

// fakeGrantServer is fakeServer for a client started with Extensions: it
// checks the features asked for with asks, grants grant, reads the join
// and runs script.
func fakeGrantServer(t *testing.T, asks func([]string) bool, grant []string, script func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	return serveOne(t, func(nc net.Conn, r *protocol.Reader) {
		if p := expectFrame(t, r, protocol.ExtHello); !asks(strings.Fields(string(p))) {
			t.Errorf("ext_hello %q", p)
			return
		}
		nc.Write(protocol.AppendExtHello(nil, grant))
		expectFrame(t, r, protocol.Join)
		script(nc, r)
	})
}

// delivery is how a test's fake server delivers files to the client: as
// one forward_file, or in chunks to a client started with Extensions.
type delivery struct{ chunked bool }

// forEachDelivery runs test for files delivered as one forward_file and
// in chunks.
func forEachDelivery(t *testing.T, test func(t *testing.T, d delivery)) {
	t.Run("forward_file", func(t *testing.T) { test(t, delivery{}) })
	t.Run("chunked", func(t *testing.T) { test(t, delivery{chunked: true}) })
}

// serve starts the fake server of d: fakeServer, or fakeExtServer for
// chunks.
func (d delivery) serve(t *testing.T, script func(nc net.Conn, r *protocol.Reader)) string {
	t.Helper()
	if d.chunked {
		return fakeExtServer(t, script)
	}
	return fakeServer(t, script)
}

// start is startClientWith for d: the client asks for Extensions when
// d is chunked, and is then changed by adjust, if given.
func (d delivery) start(t *testing.T, addr string, adjust ...func(c *client)) *session {
	t.Helper()
	return startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = d.chunked
		for _, f := range adjust {
			f(c)
		}
	})
}

// partFiles returns the temporary files in dir.
func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	var parts []string
	for _, name := range chattest.DirNames(t, dir) {
		if strings.HasSuffix(name, ".part") {
			parts = append(parts, name)
		}
	}
	return parts
}

// transferStarted sets c's progress hook to close the returned channel
// once the first bytes of a file have moved in direction dir ("send" or
// "recv") and the file is not finished yet.
func transferStarted(c *client, dir string) <-chan struct{} {
	started := make(chan struct{})
	var once sync.Once
	c.cfg.Hooks.Progress = func(_ uint64, d, _ string, done, _ int64, finished bool) {
		if d == dir && done > 0 && !finished {
			once.Do(func() { close(started) })
		}
	}
	return started
}

// A chunked file is dropped as soon as more than its declared size
// arrives, not at file_end: a hostile server cannot fill the disk with a
// file declared small.
func TestChunkedFileOverflowAbortsAtOnce(t *testing.T) {
	step := make(chan struct{})
	addr := fakeExtServer(t, func(nc net.Conn, r *protocol.Reader) {
		b := protocol.AppendFileBegin(nil, 7, "bob", "small.txt", 10)
		b = protocol.ChunkHeader(b, 7, 6)
		b = append(b, "123456"...)
		b = protocol.ChunkHeader(b, 7, protocol.MaxChunkData)
		b = append(b, make([]byte, protocol.MaxChunkData)...)
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("marker"))
		nc.Write(b)
		<-step
		b = protocol.ChunkHeader(nil, 7, protocol.MaxChunkData)
		b = append(b, make([]byte, protocol.MaxChunkData)...)
		b = protocol.AppendFileID(b, protocol.FileEnd, 7)
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
		sendThenAwaitQuit(t, nc, r, b)
	})
	s := startExtClient(t, addr)
	waitFor(t, s.stdout, "msg: bob: marker\n")
	// The file is still open on the server's side (no file_end yet), yet
	// the client has already given it up.
	if parts := partFiles(t, s.dir); len(parts) != 0 {
		t.Errorf("after 65,542 bytes of a 10-byte file, the download folder holds %v", parts)
	}
	if !strings.Contains(s.stderr.String(), `more than the 10 bytes declared for "small.txt"`) {
		t.Errorf("stderr does not say why the file was dropped: %q", s.stderr.String())
	}
	close(step)
	s.quitAfter(t, "msg: bob: after\n")
	if got := s.stdout.String(); got != "msg: bob: marker\nmsg: bob: after\nquitting\n" {
		t.Errorf("stdout %q: the overflowing file must not be saved", got)
	}
	s.expectFiles(t)
}

// At most maxIncoming chunked files are open at once; more file_begin
// frames are refused (noted on stderr) and their chunks skipped, and the
// files already open still arrive whole.
func TestChunkedFilesCapped(t *testing.T) {
	const begun = 3000
	step := make(chan struct{})
	addr := fakeExtServer(t, func(nc net.Conn, r *protocol.Reader) {
		var b []byte
		for id := range uint64(begun) {
			b = protocol.AppendFileBegin(b, id+1, "bob", "f.bin", 3)
		}
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("marker"))
		nc.Write(b)
		<-step
		b = b[:0]
		for id := range uint64(begun) {
			b = protocol.ChunkHeader(b, id+1, 3)
			b = append(b, "abc"...)
			b = protocol.AppendFileID(b, protocol.FileEnd, id+1)
		}
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
		sendThenAwaitQuit(t, nc, r, b)
	})
	s := startExtClient(t, addr)
	waitFor(t, s.stdout, "msg: bob: marker\n")
	if n := len(partFiles(t, s.dir)); n != maxIncoming {
		t.Errorf("%d file_begin frames left %d temporary files open, want the cap of %d", begun, n, maxIncoming)
	}
	if n := strings.Count(s.stderr.String(), "already receiving"); n != begun-maxIncoming {
		t.Errorf("stderr notes %d refusals, want %d", n, begun-maxIncoming)
	}
	close(step)
	s.quitAfter(t, "msg: bob: after\n")
	if n := strings.Count(s.stdout.String(), "file: bob: f.bin\n"); n != maxIncoming {
		t.Errorf("%d files saved, want the %d taken", n, maxIncoming)
	}
	if got, err := os.ReadFile(filepath.Join(s.dir, "me_f.bin")); err != nil || string(got) != "abc" {
		t.Errorf("saved file %q, %v", got, err)
	}
	s.expectNoPartFiles(t)
}

// The chunked path reads every frame into one buffer, and hands content
// to the saver in buffers it reuses: receiving 64 MiB in 64 KiB chunks
// allocates at most the saver's budget (saveBudget, when the disk falls
// behind) and a little more.
func TestChunkedFileReusesOneBuffer(t *testing.T) {
	const chunks = 1024
	data := bytes.Repeat([]byte{'x'}, protocol.MaxChunkData)
	frames := protocol.AppendFileBegin(nil, 1, "bob", "big.bin", chunks*protocol.MaxChunkData)
	for range chunks {
		frames = protocol.ChunkHeader(frames, 1, len(data))
		frames = append(frames, data...)
	}
	frames = protocol.AppendFileID(frames, protocol.FileEnd, 1)

	var stdout syncBuffer
	c := newClient(Config{User: "me", DownloadDir: t.TempDir(), Stdout: &stdout, Stderr: io.Discard})
	c.chunked = true
	nc, peer := net.Pipe()
	defer peer.Close()
	c.nc = nc
	r := protocol.NewReader(bytes.NewReader(frames))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.receive(r) // returns at the end of frames
	runtime.ReadMemStats(&after)
	if !strings.Contains(stdout.String(), "file: bob: big.bin\n") {
		t.Fatalf("file not saved: stdout %q", stdout.String())
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("receiving %d MiB in chunks allocated %.2f MiB", chunks*len(data)>>20, float64(got)/(1<<20))
	if got > saveBudget+4<<20 {
		t.Errorf("receiving %d MiB in chunks allocated %.1f MiB", chunks*len(data)>>20, float64(got)/(1<<20))
	}
}

// A users list longer than the limits table allows (DefaultMaxListUsers
// names of the longest kind) is skipped unread, with a note.
func TestUsersListBounded(t *testing.T) {
	limit := protocol.Limits{}.MaxPayload(protocol.ToClient, protocol.ResponseUsersList)
	name := strings.Repeat("u", protocol.MaxUsernameRunes)
	n := int(limit)/(len(name)+1) + 1000
	names := make([]string, n)
	for i := range names {
		names[i] = name
	}
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		b := protocol.AppendUsersList(nil, names)
		if int64(len(b)) <= limit {
			t.Errorf("test list of %d bytes is within the limit of %d", len(b), limit)
		}
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
		sendThenAwaitQuit(t, nc, r, b)
	})
	s := startClient(t, addr)
	s.quitAfter(t, "msg: bob: after\n")
	if got := s.stdout.String(); got != "msg: bob: after\nquitting\n" {
		t.Errorf("stdout starts %.60q: the oversized list was printed", got)
	}
	if !strings.Contains(s.stderr.String(), "ignoring response_users_list of") {
		t.Errorf("stderr %q: no note of the skipped list", s.stderr.String())
	}
}

// A saved file is synced before it is renamed into place, and the folder
// after, so that a crash never leaves a reported file empty.
func TestSavedFileSyncedBeforeRename(t *testing.T) {
	forEachDelivery(t, func(t *testing.T, d delivery) {
		addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
			sendThenAwaitQuit(t, nc, r, fileFrames(d.chunked, "notes.txt", []byte("hello")))
		})
		var ops []string
		s := d.start(t, addr, func(c *client) {
			real := c.disk
			c.disk.sync = func(f *os.File) error {
				ops = append(ops, "sync "+filepath.Base(f.Name()))
				return real.sync(f)
			}
			c.disk.rename = func(from, to string) error {
				ops = append(ops, "rename "+filepath.Base(from)+" "+filepath.Base(to))
				return real.rename(from, to)
			}
			c.disk.syncDir = func(dir string) error {
				ops = append(ops, "syncdir "+dir)
				return real.syncDir(dir)
			}
		})
		s.quitAfter(t, "file: bob: notes.txt\n") // ops is written by the receiver, which has ended
		if len(ops) != 3 || !strings.HasPrefix(ops[0], "sync .chat-recv-") ||
			ops[1] != "rename "+strings.TrimPrefix(ops[0], "sync ")+" me_notes.txt" || ops[2] != "syncdir "+s.dir {
			t.Errorf("file operations %q, want sync, rename, syncdir", ops)
		}
		if got, err := os.ReadFile(filepath.Join(s.dir, "me_notes.txt")); err != nil || string(got) != "hello" {
			t.Errorf("saved %q, %v", got, err)
		}
	})
}
