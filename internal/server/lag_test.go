package server

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// chatDeadline is how long a message to a user who reads may take to
// arrive while another user lags: a generous bound on "at once", not a
// performance figure (those are in docs/PERFORMANCE.md).
const chatDeadline = 2 * time.Second

// expectWithin reads the next frame within d and checks its type and
// payload.
func (c *rawClient) expectWithin(d time.Duration, t protocol.Type, payload string) {
	c.T.Helper()
	c.NC.SetReadDeadline(time.Now().Add(d))
	h, err := c.R.ReadHeader()
	if err != nil {
		c.T.Fatalf("waiting %v for %s %q: %v", d, t, payload, err)
	}
	p, err := c.R.ReadPayload(nil)
	if err != nil {
		c.T.Fatalf("read payload: %v", err)
	}
	if h.Type != t || string(p) != payload {
		c.T.Fatalf("got %s %q, want %s %q", h.Name, p, t, payload)
	}
}

// stalledExt joins name with chunked files; it reads nothing until the
// test does. Its socket's receive buffer is left as it is: it grows only
// as the client reads (a small one, set, would make the reading crawl
// through a tiny window later), so until then a little over 128 KiB of
// what the server sends fits there, and the rest stays in the server.
func stalledExt(t *testing.T, s *testServer, name string) *rawClient {
	t.Helper()
	return joinedExt(t, s, name)
}

// randomBytes returns n bytes of seeded noise.
func randomBytes(n int) []byte {
	r := rand.NewChaCha8([32]byte{19, 4})
	b := make([]byte, n)
	r.Read(b)
	return b
}

// sendFileFrames returns a send_file of data to the users to.
func sendFileFrames(to []string, name string, data []byte) []byte {
	return append(protocol.AppendFileHead(nil, protocol.SendFile, to, name, int64(len(data))), data...)
}

// waitLagged waits until n chunked recipients have fallen behind.
func waitLagged(t *testing.T, s *Server, n float64) {
	t.Helper()
	chattest.WaitUntil(t, "a recipient lags", func() bool { return metricValue(t, s, "chat_file_recipients_lagged_total", "", "") >= n })
}

// laggingFile is a file from alice to bob, a chunked user who reads
// nothing, sent but for its last bytes: enough that bob has fallen
// behind. Carol is joined too.
type laggingFile struct {
	bob, alice, carol *rawClient
	data              []byte // the file
	unsent            []byte // the end of alice's send_file, not sent
}

// startLaggingFile joins bob, alice and carol to s, and has alice send bob
// a file of size bytes but for the last unsent bytes of its frame; it
// returns once bob lags.
func startLaggingFile(t *testing.T, s *testServer, size, unsent int) *laggingFile {
	t.Helper()
	f := &laggingFile{bob: stalledExt(t, s, "bob")}
	f.alice, f.carol = joined(t, s, "alice"), joined(t, s, "carol")
	f.data = randomBytes(size)
	frames := sendFileFrames([]string{"bob"}, "big.bin", f.data)
	f.alice.Write(frames[:len(frames)-unsent])
	f.unsent = frames[len(frames)-unsent:]
	waitLagged(t, s.Server, 1)
	return f
}

// checkNoSpool checks that s holds nothing for any file, and that dir,
// its spool directory, is empty.
func checkNoSpool(t *testing.T, s *Server, dir string) {
	t.Helper()
	waitSpoolsEmpty(t, s)
	if names := chattest.DirNames(t, dir); len(names) != 0 {
		t.Fatalf("left in the spool directory: %q", names)
	}
}

// TestSenderNotHeldByLaggingRecipient: a contract sender's send_file to a
// chunked user who reads nothing, then its message to another user: the
// message arrives at once, and the file reaches the slow user whole once
// it reads, held for it in memory or on disk meanwhile. The sender's
// reading once waited for the slow user's queue to drain, holding the
// message behind the file (issue 19, part 4).
func TestSenderNotHeldByLaggingRecipient(t *testing.T) {
	for _, tc := range []struct {
		name string
		mem  int64 // Config.SpoolMemoryBytes
	}{
		{"memory", 0},     // the default: 8 MiB may be held for one recipient
		{"disk", 1 << 20}, // 128 KiB: less than one buffer, so all on disk
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := startSmallServer(t, Config{SpoolDir: dir, SpoolMemoryBytes: tc.mem})
			bob := stalledExt(t, s, "bob")
			alice, carol := joined(t, s, "alice"), joined(t, s, "carol")
			data := randomBytes(4 << 20)
			frames := sendFileFrames([]string{"bob"}, "big.bin", data)
			frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"carol"}, []byte("hi"))
			go alice.NC.Write(frames)

			carol.expectWithin(chatDeadline, protocol.ForwardMessage, "1 alice hi")
			got, ended, other := bob.readChunked()
			if !ended || !bytes.Equal(got, data) || len(other) != 0 {
				t.Fatalf("bob got %d bytes (same: %v), file_end %v, and %q; want the %d bytes and file_end", len(got), bytes.Equal(got, data), ended, other, len(data))
			}
			if n := metricValue(t, s.Server, "chat_file_recipients_lagged_total", "", ""); n < 1 {
				t.Fatalf("chat_file_recipients_lagged_total %v: bob never lagged, and the test proves nothing", n)
			}
			checkNoSpool(t, s.Server, dir)
			alice.Send("again", "bob") // both still joined
			bob.Expect(protocol.ForwardMessage, "1 alice again")
		})
	}
}

// TestMessageToLaggingRecipientOvertakesFile: the sender's message to the
// lagging recipient itself, after the file, reaches the others at once,
// and the lagging recipient once, maybe before the file's end (the
// decision in docs/PROTOCOL.md, "Chunked files").
func TestMessageToLaggingRecipientOvertakesFile(t *testing.T) {
	s := startSmallServer(t, Config{})
	bob := stalledExt(t, s, "bob")
	alice, carol := joined(t, s, "alice"), joined(t, s, "carol")
	data := randomBytes(4 << 20)
	frames := sendFileFrames([]string{"bob"}, "big.bin", data)
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob", "carol"}, []byte("did you get it?"))
	go alice.NC.Write(frames)

	carol.expectWithin(chatDeadline, protocol.ForwardMessage, "1 alice did you get it?")
	got, ended, other := bob.readChunked()
	if !ended || !bytes.Equal(got, data) {
		t.Fatalf("bob got %d bytes, file_end %v; want the whole file", len(got), ended)
	}
	msg := protocol.ForwardMessage.String() + " 1 alice did you get it?"
	if len(other) == 0 {
		bob.Expect(protocol.ForwardMessage, "1 alice did you get it?")
	} else if !slices.Equal(other, []string{msg}) {
		t.Fatalf("between the file's chunks bob got %q, want at most %q", other, msg)
	}
}

// TestLaggingRecipientSpoolFull: a lagging recipient for whom the rest of
// a file cannot be held (the spools on disk are full) gets a file_abort
// and keeps its connection; a recipient that keeps up gets the file, and
// the sender's chat goes on.
func TestLaggingRecipientSpoolFull(t *testing.T) {
	var logs logBuffer
	dir := t.TempDir()
	// 1 MiB may be held in memory for one recipient, 2 MiB on disk in
	// all: far less than the file, far more than a queue's window.
	s := startServer(t, Config{SpoolDir: dir, SpoolMemoryBytes: 8 << 20, SpoolMaxBytes: 2 << 20, Logger: logs.logger(slog.LevelWarn)})
	bob := stalledExt(t, s, "bob")
	dave := joinedExt(t, s, "dave")
	alice, carol := joined(t, s, "alice"), joined(t, s, "carol")
	data := randomBytes(24 << 20)
	var daveHas atomic.Int64
	daveGot := readChunkedAsync(dave, &daveHas)
	// The file goes in pieces, each once dave has nearly all before it:
	// dave keeps up, and never lags himself.
	alice.NC.SetWriteDeadline(time.Now().Add(waitTimeout))
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "dave"}, "big.bin", int64(len(data))))
	const piece = 256 << 10
	for off := 0; off < len(data); off += piece {
		alice.Write(data[off : off+piece])
		chattest.WaitUntil(t, "dave keeps up", func() bool { return daveHas.Load() >= int64(off) })
	}
	alice.Send("hi", "carol")
	carol.expectWithin(chatDeadline, protocol.ForwardMessage, "1 alice hi")
	if r := <-daveGot; r.err != nil || !r.ended || !bytes.Equal(r.got, data) {
		t.Fatalf("dave got %d bytes, file_end %v, %v; want the whole file", len(r.got), r.ended, r.err)
	}
	if got, ended, _ := bob.readChunked(); ended || len(got) >= len(data) {
		t.Fatalf("bob got %d bytes and file_end %v; want part of the file and file_abort", len(got), ended)
	}
	carol.Send("still there?", "bob")
	bob.Expect(protocol.ForwardMessage, "1 carol still there?")
	if n := metricValue(t, s.Server, "chat_spool_refused_total", "", ""); n != 1 {
		t.Fatalf("chat_spool_refused_total %v, want 1", n)
	}
	logs.wait(t, "fell behind", "to=bob")
	checkNoSpool(t, s.Server, dir)
}

// TestLaggingRecipientSenderLeaves: a sender that leaves mid-file while a
// recipient lags: the recipient gets a file_abort (after what it had
// queued), keeps its connection, and nothing stays held.
func TestLaggingRecipientSenderLeaves(t *testing.T) {
	for _, tc := range []struct {
		name string
		mem  int64
	}{{"memory", 0}, {"disk", 1 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := startSmallServer(t, Config{SpoolDir: dir, SpoolMemoryBytes: tc.mem})
			f := startLaggingFile(t, s, 4<<20, 1<<20)
			f.alice.NC.Close()
			s.out.Wait(t, "disconnected: alice", 1)

			got, ended, other := f.bob.readChunked()
			if ended || !bytes.HasPrefix(f.data, got) {
				t.Fatalf("bob got %d bytes (a prefix: %v), file_end %v; want a prefix and file_abort", len(got), bytes.HasPrefix(f.data, got), ended)
			}
			if len(other) != 0 {
				t.Fatalf("bob got %q too", other)
			}
			f.carol.Send("still there?", "bob")
			f.bob.Expect(protocol.ForwardMessage, "1 carol still there?")
			checkNoSpool(t, s.Server, dir)
		})
	}
}

// TestLaggingRecipientLeaves: a lagging recipient that leaves mid-file
// lets go of what was held for it, and the sender goes on.
func TestLaggingRecipientLeaves(t *testing.T) {
	dir := t.TempDir()
	s := startSmallServer(t, Config{SpoolDir: dir, SpoolMemoryBytes: 1 << 20})
	f := startLaggingFile(t, s, 8<<20, 4<<20)
	f.bob.NC.Close()
	s.out.Wait(t, "disconnected: bob", 1)
	waitSpoolsEmpty(t, s.Server)
	frames := protocol.AppendMessage(f.unsent, protocol.SendMessage, []string{"carol"}, []byte("hi"))
	go f.alice.NC.Write(frames)
	f.carol.expectWithin(chatDeadline, protocol.ForwardMessage, "1 alice hi")
	checkNoSpool(t, s.Server, dir)
}

// TestShutdownWhileRecipientLags: a server shut down while a recipient
// lags has given back everything held for it once Shutdown returns.
func TestShutdownWhileRecipientLags(t *testing.T) {
	dir := t.TempDir()
	out := chattest.NewLineLog()
	srv := New(Config{SpoolDir: dir, SpoolMemoryBytes: 1 << 20, Stdout: out})
	addr, served := listenAndServe(t, srv, smallListener)
	s := &testServer{Server: srv, addr: addr, out: out}
	stalledExt(t, s, "bob")
	alice := joined(t, s, "alice")
	alice.Write(sendFileFrames([]string{"bob"}, "big.bin", randomBytes(4<<20))[:3<<20])
	waitLagged(t, srv, 1)

	stopServer(t, srv, served)
	srv.spoolMu.Lock()
	mem, disk := srv.spoolMem, srv.spoolDisk
	srv.spoolMu.Unlock()
	if mem != 0 || disk != 0 {
		t.Fatalf("after Shutdown %d bytes are held in memory, %d on disk", mem, disk)
	}
	if names := chattest.DirNames(t, dir); len(names) != 0 {
		t.Fatalf("left in the spool directory: %q", names)
	}
}

// TestLaggingStreamSpoolFails: a lagging recipient's stream whose spool
// file cannot be written, or read back, gives the file up for it with a
// file_abort (after what it had queued) and gives back what it held.
func TestLaggingStreamSpoolFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write bool // the failure comes on writing (else on reading back)
	}{{"write", true}, {"read", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := New(Config{SpoolDir: dir, SpoolMemoryBytes: 1})
			client, server := net.Pipe()
			defer client.Close()
			bob := newConn(srv, server, srv.admit.add(time.Now()))
			bob.name, bob.chunked = "bob", true
			st, err := bob.OpenFile(FileHead{ID: 7, Sender: "alice", Filename: "f", Size: 4 << 20}, nil)
			if err != nil {
				t.Fatal(err)
			}
			cs := st.(*chunkedStream)
			data := randomBytes(4 << 20)
			write := func(from, to int) error {
				c := NewChunk(7)
				c.Data = append(c.Data, data[from:to]...)
				defer c.Release()
				return st.Write(c)
			}
			off := 0
			// A window's worth is queued, two buffers' worth held
			// on disk: the feeder reads the first back, and waits for
			// the window (nobody reads the pipe yet).
			for ; off < streamWindow+2*fileBufSize; off += fileBufSize {
				if err := write(off, off+fileBufSize); err != nil {
					t.Fatal(err)
				}
			}
			cs.mu.Lock()
			lagging, f := cs.lagging, cs.f
			cs.mu.Unlock()
			if !lagging || f == nil {
				t.Fatalf("lagging %v, spool file %v: want both", lagging, f)
			}
			f.Close() // the spool fails
			if tc.write {
				if err := write(off, off+fileBufSize); err == nil {
					t.Fatal("a write to a failed spool succeeded")
				}
			}
			r := protocol.NewReader(client)
			var got []byte
			for {
				client.SetReadDeadline(time.Now().Add(waitTimeout))
				h, err := r.ReadHeader()
				if err != nil {
					t.Fatal(err)
				}
				p, err := r.ReadPayload(nil)
				if err != nil {
					t.Fatal(err)
				}
				if h.Type == protocol.FileChunk {
					_, d, _ := protocol.ParseChunk(p)
					got = append(got, d...)
					continue
				}
				if h.Type == protocol.FileAbort {
					break
				}
				if h.Type != protocol.FileBegin {
					t.Fatalf("got %s", h.Name)
				}
			}
			if !bytes.HasPrefix(data, got) || len(got) < streamWindow {
				t.Fatalf("got %d bytes before file_abort (a prefix: %v)", len(got), bytes.HasPrefix(data, got))
			}
			st.Abort() // the writer learns late: nothing more is sent
			if n := metricValue(t, srv, "chat_spool_failures_total", "", ""); n != 1 {
				t.Fatalf("chat_spool_failures_total %v, want 1", n)
			}
			<-bob.q.close(nil)
			bob.q.feeders.Wait()
			checkNoSpool(t, srv, dir)
		})
	}
}

// TestUploadNotHeldByLaggingRecipient: an upload to a chunked user who
// reads nothing and to one who reads: the reader gets the file at the
// sender's pace, the sender's message to a third user arrives at once,
// and the slow user gets the file whole once it reads; the file_result
// names both. The upload was once paced by the slowest recipient, so the
// reader waited for the slow one. (Its sender's chat never waited: the
// upload's chunks are read between its other frames.)
func TestUploadNotHeldByLaggingRecipient(t *testing.T) {
	dir := t.TempDir()
	s := startSmallServer(t, Config{SpoolDir: dir})
	bob := stalledExt(t, s, "bob")
	dave := joinedExt(t, s, "dave")
	carol := joined(t, s, "carol")
	sam := uploader(t, s, "sam")
	data := randomBytes(6 << 20)
	if online := sam.beginUpload(1, []string{"bob", "dave"}, "up.bin", int64(len(data))); !slices.Equal(online, []string{"bob", "dave"}) {
		t.Fatalf("online %v", online)
	}
	daveGot := readChunkedAsync(dave, nil)
	type result struct {
		names []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		names, _, err := uploadAsync(sam, 1, data)
		done <- result{names, err}
	}()
	if r := <-daveGot; r.err != nil || !r.ended || !bytes.Equal(r.got, data) {
		t.Fatalf("dave got %d bytes, file_end %v, %v; want the whole file", len(r.got), r.ended, r.err)
	}
	waitLagged(t, s.Server, 1) // bob lags, and reads nothing yet
	sam.Send("hi", "carol")
	carol.expectWithin(chatDeadline, protocol.ForwardMessage, "1 sam hi")
	got, ended, _ := bob.readChunked()
	if !ended || !bytes.Equal(got, data) {
		t.Fatalf("bob got %d bytes, file_end %v; want the whole file", len(got), ended)
	}
	if r := <-done; r.err != nil || !slices.Equal(r.names, []string{"bob", "dave"}) {
		t.Fatalf("file_result %q, %v; want [bob dave]", r.names, r.err)
	}
	checkNoSpool(t, s.Server, dir)
}

// chunkedResult is what readChunkedAsync read.
type chunkedResult struct {
	got   []byte
	ended bool // with file_end (else file_abort)
	err   error
}

// readChunkedAsync reads one chunked file's frames from c in a goroutine
// of its own (which must not fail the test) and sends what it read.
func readChunkedAsync(c *rawClient, has *atomic.Int64) <-chan chunkedResult {
	ch := make(chan chunkedResult, 1)
	go func() {
		var r chunkedResult
		defer func() { ch <- r }()
		for {
			c.NC.SetReadDeadline(time.Now().Add(waitTimeout))
			h, err := c.R.ReadHeader()
			if err != nil {
				r.err = err
				return
			}
			p, err := c.R.ReadPayload(nil)
			if err != nil {
				r.err = err
				return
			}
			switch h.Type {
			case protocol.FileChunk:
				_, data, _ := protocol.ParseChunk(p)
				r.got = append(r.got, data...)
				if has != nil {
					has.Store(int64(len(r.got)))
				}
			case protocol.FileEnd, protocol.FileAbort:
				r.ended = h.Type == protocol.FileEnd
				return
			}
		}
	}()
	return ch
}
