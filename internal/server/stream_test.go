package server

import (
	"bytes"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// pipeConn returns a connection of srv named name on one end of a pipe
// that nobody reads, so that whatever is queued for it stays queued.
func pipeConn(t *testing.T, srv *Server, name string) *conn {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	c := newConn(srv, server, srv.admit.add(time.Now()))
	c.name = name
	return c
}

// reasonOf returns why c was closed.
func reasonOf(c *conn) closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// waitUntil waits, at most 10 s, for cond to hold; the state it looks at
// has no event to wait on.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGivenUpBeforeHeadKeepsPeer: a sender that gives up while it waits
// to queue the start of its forward_file (the recipient's backlog full
// with an earlier file) has queued nothing of its frame, so the recipient
// is not cut off, and the frames held behind the stream go out after
// what is queued. It once was cut off as if the frame had been left
// half-sent.
func TestGivenUpBeforeHeadKeepsPeer(t *testing.T) {
	bob := pipeConn(t, New(Config{}), "bob")
	never := make(chan struct{})
	st, err := bob.OpenFile(FileHead{ID: 1, Sender: "alice", Filename: "a", Size: 3 << 20}, never)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(Chunk{ID: 1, Data: make([]byte, 3<<20)}); err != nil {
		t.Fatal(err)
	}
	st.Close() // alice's file is whole, and more than a window of it waits

	giveUp := make(chan struct{})
	opened := make(chan error, 1)
	go func() {
		_, err := bob.OpenFile(FileHead{ID: 2, Sender: "sam", Filename: "s", Size: 1 << 20}, giveUp)
		opened <- err
	}()
	waitUntil(t, "sam waits for room in bob's queue", func() bool {
		bob.q.mu.Lock()
		defer bob.q.mu.Unlock()
		return bob.q.streaming && bob.q.space != nil
	})
	if err := bob.Send([]byte("forward_message 1 1 carol hi")); err != nil {
		t.Fatal(err)
	}
	close(giveUp)
	if err := <-opened; err == nil {
		t.Fatal("OpenFile succeeded after its sender gave up")
	}
	if isClosed(bob.done) {
		t.Fatalf("bob cut off (%v) though nothing of sam's frame was queued", reasonOf(bob))
	}
	bob.q.mu.Lock()
	defer bob.q.mu.Unlock()
	if bob.q.streaming || len(bob.q.held) != 0 {
		t.Fatalf("after the given-up open: streaming %v, %d frames held", bob.q.streaming, len(bob.q.held))
	}
	if last := bob.q.items[len(bob.q.items)-1]; !bytes.Equal(last.b, []byte("forward_message 1 1 carol hi")) {
		t.Fatalf("the message held behind the stream is not queued: last item %q", last.b)
	}
}

// TestOpenStreamGivenUpTakesNoSlot: a sender that has already given up
// does not take a free stream slot (select may pick either ready case).
func TestOpenStreamGivenUpTakesNoSlot(t *testing.T) {
	bob := pipeConn(t, New(Config{}), "bob")
	gone := make(chan struct{})
	close(gone)
	for range 100 {
		if _, err := bob.OpenFile(FileHead{ID: 1, Sender: "sam", Filename: "s", Size: 1 << 20}, gone); err == nil {
			t.Fatal("OpenFile took the slot for a sender that had given up")
		}
	}
	if isClosed(bob.done) || len(bob.q.slot) != 0 {
		t.Fatalf("bob cut off %v, slot held %v", isClosed(bob.done), len(bob.q.slot) != 0)
	}
}

// TestChunkedEndOverLimitCutsPeer: a chunked recipient whose queue cannot
// take a file's file_end is cut off as a slow consumer, like for any
// other frame; the end was once dropped silently, leaving the file open
// on the client for good.
func TestChunkedEndOverLimitCutsPeer(t *testing.T) {
	bob := pipeConn(t, New(Config{SendQueueBytes: 4096}), "bob")
	bob.chunked = true
	st, err := bob.OpenFile(FileHead{ID: 7, Sender: "alice", Filename: "a", Size: 10}, make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(Chunk{ID: 7, Data: make([]byte, 10)}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{4000, 90} { // the queue's whole frames at 4090 of 4096 bytes
		if err := bob.Send(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if !isClosed(bob.done) {
		t.Fatal("file_end did not fit bob's queue, and bob was not cut off")
	}
	if r := reasonOf(bob); r != reasonSlowConsumer {
		t.Fatalf("bob cut off for %v, want a slow consumer", r)
	}
}

// TestUploadResultBehindHeldFrame: a small upload to a plain recipient
// whose stream slot another sender's file holds names the recipient in
// its file_result only once the recipient has the file: when the other
// file fails half-way, the recipient is cut off without it, and the
// result does not name it (it once did, as soon as the frame was queued
// behind the stream).
func TestUploadResultBehindHeldFrame(t *testing.T) {
	s := startServer(t, Config{})
	alice, bob, sam := joined(t, s, "alice"), joined(t, s, "bob"), uploader(t, s, "sam")
	alice.write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "big.bin", 1<<20))
	alice.write(make([]byte, 300<<10))
	bob.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	if h, err := bob.r.ReadHeader(); err != nil || h.Type != protocol.ForwardFile {
		t.Fatalf("bob: %v %v, want the start of alice's forward_file", h, err)
	}
	if online := sam.beginUpload(1, []string{"bob"}, "s.txt", 5); !slices.Equal(online, []string{"bob"}) {
		t.Fatalf("online %v, want [bob]", online)
	}
	sam.write(append(protocol.ChunkHeader(nil, 1, 5), "hello"...))
	sam.write(protocol.AppendFileID(nil, protocol.FileEnd, 1))
	alice.nc.Close() // mid-file: bob is cut off
	s.out.wait(t, "disconnected: bob", 1)
	var f uploadFrames
	for !f.done {
		sam.readUpload(1, &f)
	}
	if slices.Contains(f.result, "bob") {
		t.Fatalf("file_result %v names bob, who was cut off before sam's file was written to him", f.result)
	}
}

// startOwnUpload has sam (uploading) start a 1 MiB file to plain bob and
// waits for the first chunk's ack: from then on, sam's upload holds bob's
// stream. It returns the rest of the upload's frames, for sam to send.
func startOwnUpload(t *testing.T, sam *rawClient) (rest []byte, f *uploadFrames) {
	t.Helper()
	return startUpload(t, sam, "bob")
}

// startUpload has up (uploading) start a 1 MiB file up.bin to plain
// user to, as startOwnUpload does.
func startUpload(t *testing.T, up *rawClient, to string) (rest []byte, f *uploadFrames) {
	t.Helper()
	sam := up
	const size, first = 1 << 20, 64 << 10
	if online := sam.beginUpload(1, []string{to}, "up.bin", size); !slices.Equal(online, []string{to}) {
		t.Fatalf("online %v, want [%s]", online, to)
	}
	sam.write(append(protocol.ChunkHeader(nil, 1, first), make([]byte, first)...)) // first ≤ MaxChunkData
	f = &uploadFrames{}
	for f.acked < first {
		sam.readUpload(1, f)
	}
	for off := first; off < size; off += protocol.MaxChunkData {
		rest = append(protocol.ChunkHeader(rest, 1, protocol.MaxChunkData), make([]byte, protocol.MaxChunkData)...)
	}
	return append(rest, protocol.AppendFileID(nil, protocol.FileEnd, 1)...), f
}

// TestSendFileBehindOwnUpload: a send_file to a plain user whose stream
// an upload of the same sender holds cannot reach that user (the upload's
// chunks come after the file's content, on the same connection): the
// server says so in its log and goes on, and the upload and the user are
// unharmed. The sender's reading once waited for the stream forever, the
// upload stalled, and the user was cut off.
func TestSendFileBehindOwnUpload(t *testing.T) {
	var logs logBuffer
	s := startServer(t, Config{StallTimeout: 3 * time.Second, Logger: logs.logger(slog.LevelWarn)})
	bob, carol, sam := joined(t, s, "bob"), joined(t, s, "carol"), uploader(t, s, "sam")
	rest, f := startOwnUpload(t, sam)
	const inline = 300 << 10 // streamed, not whole
	frames := append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "carol"}, "plain.bin", inline), make([]byte, inline)...)
	go sam.nc.Write(append(frames, rest...)) // the test reads sam's answers meanwhile

	if from, name, content := bob.readForwardFile(); from != "sam" || name != "up.bin" || len(content) != 1<<20 {
		t.Fatalf("bob got %s from %s (%d bytes), want sam's up.bin (1 MiB)", name, from, len(content))
	}
	if from, name, content := carol.readForwardFile(); from != "sam" || name != "plain.bin" || len(content) != inline {
		t.Fatalf("carol got %s from %s (%d bytes), want sam's plain.bin", name, from, len(content))
	}
	for !f.done {
		sam.readUpload(1, f)
	}
	if !slices.Equal(f.result, []string{"bob"}) {
		t.Fatalf("file_result %v, want [bob]", f.result)
	}
	logs.wait(t, "file not delivered to a user", "to=bob", "file=plain.bin")
	bob.send("still here", "bob") // bob was not cut off
	bob.expect(protocol.ForwardMessage, "1 bob still here")
}

// TestChatBehindOwnUpload: messages from a sender to a plain user whose
// stream that sender's own upload holds wait behind the file without
// pausing the sender's reading (which the upload's chunks need), beyond
// the pace mark too, and arrive after the file. The sender's reading once
// paused for room that only the upload could make, the upload stalled,
// and the user was cut off.
func TestChatBehindOwnUpload(t *testing.T) {
	s := startServer(t, Config{StallTimeout: 3 * time.Second, PaceBacklog: 64 << 10})
	bob, sam := joined(t, s, "bob"), uploader(t, s, "sam")
	rest, f := startOwnUpload(t, sam)
	text := strings.Repeat("x", 50<<10)
	var chat []byte
	for range 2 { // past the pace mark
		chat = protocol.AppendMessage(chat, protocol.SendMessage, []string{"bob"}, []byte(text))
	}
	go sam.nc.Write(append(chat, rest...))

	if from, name, content := bob.readForwardFile(); from != "sam" || name != "up.bin" || len(content) != 1<<20 {
		t.Fatalf("bob got %s from %s (%d bytes), want sam's up.bin (1 MiB)", name, from, len(content))
	}
	for range 2 {
		bob.expect(protocol.ForwardMessage, "1 sam "+text)
	}
	for !f.done {
		sam.readUpload(1, f)
	}
	if !slices.Equal(f.result, []string{"bob"}) {
		t.Fatalf("file_result %v, want [bob]", f.result)
	}
}

// TestCrossUploadsDoNotDeadlock: x uploads to b and chats to a, while y
// uploads to a and chats to b, both past the pace mark. Each one's chat
// waits behind the other's upload, whose chunks the other's reading
// brings: once the held-up stream has moved nothing for paceGrace, its
// backlog paces nobody, both go on, and everything arrives. (Both
// uploads once stalled, and a and b were cut off.)
func TestCrossUploadsDoNotDeadlock(t *testing.T) {
	s := startServer(t, Config{StallTimeout: 20 * time.Second, PaceBacklog: 64 << 10})
	a, b := joined(t, s, "a"), joined(t, s, "b")
	x, y := uploader(t, s, "x"), uploader(t, s, "y")
	xRest, xf := startUpload(t, x, "b")
	yRest, yf := startUpload(t, y, "a")
	text := strings.Repeat("z", 50<<10)
	chat := func(to string) []byte {
		var frames []byte
		for range 2 {
			frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{to}, []byte(text))
		}
		return frames
	}
	go x.nc.Write(append(chat("a"), xRest...))
	go y.nc.Write(append(chat("b"), yRest...))

	for _, r := range []struct {
		c        *rawClient
		uploader string
	}{{a, "y"}, {b, "x"}} {
		r.c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
		if from, name, content := r.c.readForwardFile(); from != r.uploader || name != "up.bin" || len(content) != 1<<20 {
			t.Fatalf("got %s from %s (%d bytes), want %s's up.bin (1 MiB)", name, from, len(content), r.uploader)
		}
	}
	a.expect(protocol.ForwardMessage, "1 x "+text)
	a.expect(protocol.ForwardMessage, "1 x "+text)
	b.expect(protocol.ForwardMessage, "1 y "+text)
	b.expect(protocol.ForwardMessage, "1 y "+text)
	for _, u := range []struct {
		c  *rawClient
		f  *uploadFrames
		to string
	}{{x, xf, "b"}, {y, yf, "a"}} {
		for !u.f.done {
			u.c.readUpload(1, u.f)
		}
		if !slices.Equal(u.f.result, []string{u.to}) {
			t.Fatalf("file_result %v, want [%s]", u.f.result, u.to)
		}
	}
}

// TestShutdownDuringAdmission: a connection whose join waits for an
// earlier-accepted one's first frame, when the server shuts down, never
// joins (its stdout once showed it joining as it was cut off).
func TestShutdownDuringAdmission(t *testing.T) {
	out := newLineLog()
	srv := New(Config{Stdout: out})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	holder := dial(t, ln.Addr().String()) // accepted first (the kernel keeps the order), sends nothing
	late := dial(t, ln.Addr().String())
	late.join("late")
	waitUntil(t, "the join waits for the earlier connection", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*admission).wait(")
	})
	stopServer(t, srv, served)
	late.expectEnd()
	holder.expectEnd()
	if n := out.count("join: late"); n != 0 {
		t.Fatalf("stdout shows the join of a connection cut off while it waited: %q", out.all())
	}
}
