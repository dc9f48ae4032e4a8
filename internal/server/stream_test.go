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

	"github.com/gochat/chat/internal/chattest"
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

// TestPlainRecipientNotHeldBySenderMidFile: while a large file to a
// plain recipient is on its way, the recipient's other frames (a message,
// a small upload) reach it at once, and when the file's sender leaves
// mid-file the recipient keeps its connection and gets nothing of the
// file; the upload's file_result names it. Before, the forward_file
// started as the file arrived: everything else waited behind it, and the
// sender's leaving cut the recipient off (issue 19, part 5).
func TestPlainRecipientNotHeldBySenderMidFile(t *testing.T) {
	s := startServer(t, Config{})
	alice, bob, carol, sam := joined(t, s, "alice"), joined(t, s, "bob"), joined(t, s, "carol"), uploader(t, s, "sam")
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "big.bin", 1<<20))
	alice.Write(make([]byte, 300<<10))
	carol.Send("hi bob", "bob")
	bob.Expect(protocol.ForwardMessage, "1 carol hi bob")
	if online := sam.beginUpload(1, []string{"bob"}, "s.txt", 5); !slices.Equal(online, []string{"bob"}) {
		t.Fatalf("online %v, want [bob]", online)
	}
	sam.Write(append(protocol.ChunkHeader(nil, 1, 5), "hello"...))
	sam.Write(protocol.AppendFileID(nil, protocol.FileEnd, 1))
	bob.Expect(protocol.ForwardFile, "1 sam s.txt hello")
	var f uploadFrames
	for !f.done {
		sam.readUpload(1, &f)
	}
	if !slices.Equal(f.result, []string{"bob"}) {
		t.Fatalf("file_result %v, want [bob]", f.result)
	}
	alice.NC.Close() // mid-file
	s.out.Wait(t, "disconnected: alice", 1)
	carol.Send("still there?", "bob")
	bob.Expect(protocol.ForwardMessage, "1 carol still there?")
	if n := s.out.Count("disconnected: bob"); n != 0 {
		t.Fatal("bob was cut off for alice's leaving")
	}
	waitSpoolsEmpty(t, s.Server)
}

// waitSpoolsEmpty waits until s holds no spooled file.
func waitSpoolsEmpty(t *testing.T, s *Server) {
	t.Helper()
	chattest.WaitUntil(t, "every spool is given back", func() bool {
		s.spoolMu.Lock()
		defer s.spoolMu.Unlock()
		return s.spoolDisk == 0 && s.spoolMem == 0 && len(s.spools) == 0
	})
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
	const size, first = 1 << 20, ackEvery // the first ack comes once ackEvery is passed on
	if online := sam.beginUpload(1, []string{to}, "up.bin", size); !slices.Equal(online, []string{to}) {
		t.Fatalf("online %v, want [%s]", online, to)
	}
	for range first / protocol.MaxChunkData {
		sam.Write(append(protocol.ChunkHeader(nil, 1, protocol.MaxChunkData), make([]byte, protocol.MaxChunkData)...))
	}
	f = &uploadFrames{}
	for f.acked < first {
		sam.readUpload(1, f)
	}
	for off := first; off < size; off += protocol.MaxChunkData {
		rest = append(protocol.ChunkHeader(rest, 1, protocol.MaxChunkData), make([]byte, protocol.MaxChunkData)...)
	}
	return append(rest, protocol.AppendFileID(nil, protocol.FileEnd, 1)...), f
}

// TestSendFileBehindOwnUpload: a send_file to a plain user to whom an
// upload of the same sender is under way reaches that user, before the
// upload (it is whole first), and the upload and the user are unharmed.
// The sender's reading once waited forever for a stream the upload held,
// the upload stalled and the user was cut off; later the file was not
// delivered to that user at all (a warning in the log).
func TestSendFileBehindOwnUpload(t *testing.T) {
	var logs logBuffer
	s := startServer(t, Config{StallTimeout: 3 * time.Second, Logger: logs.logger(slog.LevelWarn)})
	bob, carol, sam := joined(t, s, "bob"), joined(t, s, "carol"), uploader(t, s, "sam")
	rest, f := startOwnUpload(t, sam)
	const inline = 300 << 10 // streamed, not whole
	frames := append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "carol"}, "plain.bin", inline), make([]byte, inline)...)
	go sam.NC.Write(append(frames, rest...)) // the test reads sam's answers meanwhile

	for _, want := range []struct {
		c    *rawClient
		name string
		size int
	}{{bob, "plain.bin", inline}, {bob, "up.bin", 1 << 20}, {carol, "plain.bin", inline}} {
		if from, name, content := want.c.readForwardFile(); from != "sam" || name != want.name || len(content) != want.size {
			t.Fatalf("got %s from %s (%d bytes), want sam's %s (%d bytes)", name, from, len(content), want.name, want.size)
		}
	}
	for !f.done {
		sam.readUpload(1, f)
	}
	if !slices.Equal(f.result, []string{"bob"}) {
		t.Fatalf("file_result %v, want [bob]", f.result)
	}
	if strings.Contains(logs.String(), "not delivered") {
		t.Fatalf("a file was not delivered; log:\n%s", logs.String())
	}
	bob.Send("still here", "bob") // bob was not cut off
	bob.Expect(protocol.ForwardMessage, "1 bob still here")
}

// TestChatBehindOwnUpload: messages from a sender to a plain user to whom
// that sender's own upload is under way, past the pace mark, arrive
// before the file (which is queued only once whole), and the upload goes
// on. The sender's reading once paused for room that only the upload
// could make, the upload stalled, and the user was cut off.
func TestChatBehindOwnUpload(t *testing.T) {
	s := startServer(t, Config{StallTimeout: 3 * time.Second, PaceBacklog: 64 << 10})
	bob, sam := joined(t, s, "bob"), uploader(t, s, "sam")
	rest, f := startOwnUpload(t, sam)
	text := strings.Repeat("x", 50<<10)
	var chat []byte
	for range 2 { // past the pace mark
		chat = protocol.AppendMessage(chat, protocol.SendMessage, []string{"bob"}, []byte(text))
	}
	go sam.NC.Write(append(chat, rest...))

	for range 2 {
		bob.Expect(protocol.ForwardMessage, "1 sam "+text)
	}
	if from, name, content := bob.readForwardFile(); from != "sam" || name != "up.bin" || len(content) != 1<<20 {
		t.Fatalf("bob got %s from %s (%d bytes), want sam's up.bin (1 MiB)", name, from, len(content))
	}
	for !f.done {
		sam.readUpload(1, f)
	}
	if !slices.Equal(f.result, []string{"bob"}) {
		t.Fatalf("file_result %v, want [bob]", f.result)
	}
}

// TestCrossUploadsDoNotDeadlock: x uploads to b and chats to a, while y
// uploads to a and chats to b, both past the pace mark. Everything
// arrives: a file is queued for its recipient only once whole, so no
// chat waits behind a file still to come. (Each one's chat once waited
// behind the other's upload, whose chunks the other's reading brings:
// both uploads stalled, and a and b were cut off.)
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
	go x.NC.Write(append(chat("a"), xRest...))
	go y.NC.Write(append(chat("b"), yRest...))

	for _, r := range []struct {
		c                *rawClient
		uploader, talker string
	}{{a, "y", "x"}, {b, "x", "y"}} {
		// Two messages and a file, from two senders: their order is
		// not set.
		var msgs, files int
		for msgs+files < 3 {
			h, p := r.c.Frame()
			switch {
			case h.Type == protocol.ForwardMessage && string(p) == "1 "+r.talker+" "+text:
				msgs++
			case h.Type == protocol.ForwardFile && bytes.HasPrefix(p, []byte("1 "+r.uploader+" up.bin ")) && len(p) == len("1  up.bin ")+len(r.uploader)+1<<20:
				files++
			default:
				t.Fatalf("got %s of %d bytes", h.Name, len(p))
			}
		}
		if msgs != 2 || files != 1 {
			t.Fatalf("got %d messages and %d files, want 2 and 1", msgs, files)
		}
	}
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
	out := chattest.NewLineLog()
	srv := New(Config{Stdout: out})
	addr, served := listenAndServe(t, srv, nil)
	holder := dial(t, addr) // accepted first (the kernel keeps the order), sends nothing
	late := dial(t, addr)
	late.Join("late")
	chattest.WaitUntil(t, "the join waits for the earlier connection", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*admission).wait(")
	})
	stopServer(t, srv, served)
	late.ExpectEnd()
	holder.ExpectEnd()
	if n := out.Count("join: late"); n != 0 {
		t.Fatalf("stdout shows the join of a connection cut off while it waited: %q", out.Lines())
	}
}
