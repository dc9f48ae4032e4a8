package server

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// joinedWith joins name after asking for features, which the server must
// all accept.
func joinedWith(t *testing.T, s *testServer, name string, features ...string) *rawClient {
	t.Helper()
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, features))
	c.Expect(protocol.ExtHello, strings.Join(features, " "))
	c.Join(name)
	s.out.Wait(t, "join: "+name, 1)
	return c
}

// uploader joins name with the file-upload extension.
func uploader(t *testing.T, s *testServer, name string) *rawClient {
	t.Helper()
	return joinedWith(t, s, name, protocol.FeatureFileUpload)
}

// beginUpload sends file_begin and returns the recipients online that
// the server's file_ready names, after checking its id and window.
func (c *rawClient) beginUpload(id uint64, to []string, filename string, size int64) []string {
	c.T.Helper()
	c.Write(protocol.AppendUploadBegin(nil, id, to, filename, size))
	h, p := c.Frame()
	if h.Type != protocol.FileReady {
		c.T.Fatalf("got %s %q, want file_ready", h.Name, p)
	}
	gid, window, online, err := protocol.ParseFileReady(p)
	if err != nil || gid != id || window != uploadWindow {
		c.T.Fatalf("file_ready %q: %v", p, err)
	}
	return online
}

// uploadFrames is what an uploading client sees besides its own frames.
type uploadFrames struct {
	acked  int64
	acks   []int64  // every file_ack's offset, in order
	result []string // nil until file_result
	done   bool
	other  []string // other frames, as "type payload"
}

// readUpload reads one frame for upload id into f.
func (c *rawClient) readUpload(id uint64, f *uploadFrames) {
	c.T.Helper()
	h, p := c.Frame()
	switch h.Type {
	case protocol.FileAck:
		gid, off, err := protocol.ParseFileAck(p)
		if err != nil || gid != id || off <= f.acked {
			c.T.Fatalf("file_ack %q after %d: %v", p, f.acked, err)
		}
		f.acked = off
		f.acks = append(f.acks, off)
	case protocol.FileResult:
		gid, names, err := protocol.ParseFileResult(p)
		if err != nil || gid != id {
			c.T.Fatalf("file_result %q: %v", p, err)
		}
		f.result, f.done = names, true
	default:
		f.other = append(f.other, h.Name+" "+string(p))
	}
}

// sendChunks sends data[from:to] in chunks of at most 128 KiB, keeping
// within the window, and returns what it saw. It stops early if the
// upload ends.
func (c *rawClient) sendChunks(id uint64, data []byte, from, to int, f *uploadFrames) {
	c.T.Helper()
	for off := from; off < to && !f.done; {
		if int64(off)-f.acked >= uploadWindow {
			c.readUpload(id, f)
			continue
		}
		n := min(to-off, 128<<10, int(f.acked+uploadWindow)-off)
		c.Write(append(protocol.ChunkHeader(nil, id, n), data[off:off+n]...))
		off += n
	}
}

// finishUpload sends file_end and reads until the file_result.
func (c *rawClient) finishUpload(id uint64, f *uploadFrames) {
	c.T.Helper()
	c.Write(protocol.AppendFileID(nil, protocol.FileEnd, id))
	for !f.done {
		c.readUpload(id, f)
	}
}

// readForwardFile reads a plain recipient's forward_file and returns its
// sender, filename and content.
func (c *rawClient) readForwardFile() (string, string, []byte) {
	c.T.Helper()
	h, p := c.Frame()
	if h.Type != protocol.ForwardFile {
		c.T.Fatalf("got %s, want forward_file", h.Name)
	}
	head, content, _ := bytes.Cut(p[2:], []byte{' '})
	name, content, _ := bytes.Cut(content, []byte{' '})
	return string(head), string(name), content
}

// readChunked reads a chunked recipient's frames for one file: its
// content, whether it ended with file_end (or file_abort), and the other
// frames that came between.
func (c *rawClient) readChunked() ([]byte, bool, []string) {
	c.T.Helper()
	var content []byte
	var other []string
	for {
		h, p := c.Frame()
		switch h.Type {
		case protocol.FileBegin:
		case protocol.FileChunk:
			_, data, _ := protocol.ParseChunk(p)
			content = append(content, data...)
		case protocol.FileEnd, protocol.FileAbort:
			return content, h.Type == protocol.FileEnd, other
		default:
			other = append(other, h.Name+" "+string(p))
		}
	}
}

func TestUploadToNobodySendsNothing(t *testing.T) {
	s := startServer(t, Config{})
	alice := uploader(t, s, "alice")
	if online := alice.beginUpload(1, []string{"nobody", "ghost", "nobody"}, "big.bin", 50<<20); len(online) != 0 {
		t.Fatalf("online %q", online)
	}
	// The lines of send_file, exactly.
	s.out.Wait(t, "file: alice to non-existent user ghost", 1)
	if got := s.out.Lines(); !slices.Equal(got[len(got)-3:], []string{"file: alice", "file: alice to non-existent user nobody", "file: alice to non-existent user ghost"}) {
		t.Fatalf("stdout %q", got)
	}
	// The upload is over: nothing more comes for it, and the id is free.
	alice.Send("next", "alice")
	alice.Expect(protocol.ForwardMessage, "1 alice next")
	if online := alice.beginUpload(1, []string{"alice"}, "f", 0); !slices.Equal(online, []string{"alice"}) {
		t.Fatalf("online %q", online)
	}
}

func TestUploadSmallFileIsWhole(t *testing.T) {
	s := startServer(t, Config{})
	bob := joined(t, s, "bob")
	carol := joinedExt(t, s, "carol")
	alice := uploader(t, s, "alice")
	data := []byte("hello \x00\xff world")
	if online := alice.beginUpload(9, []string{"bob", "nobody", "carol", "bob"}, "s.txt", int64(len(data))); !slices.Equal(online, []string{"bob", "carol"}) {
		t.Fatalf("online %q", online)
	}
	var f uploadFrames
	alice.sendChunks(9, data, 0, 6, &f)
	alice.sendChunks(9, data, 6, len(data), &f)
	alice.finishUpload(9, &f)
	if !slices.Equal(f.result, []string{"bob", "carol"}) || f.acked != 0 || f.other != nil {
		t.Fatalf("alice saw %+v", f)
	}
	bob.Expect(protocol.ForwardFile, "1 alice s.txt "+string(data))
	carol.Expect(protocol.ForwardFile, "1 alice s.txt "+string(data))
	if s.out.Count("file: alice") != 1 || s.out.Count("file: alice to non-existent user nobody") != 1 {
		t.Fatalf("stdout %q", s.out.Lines())
	}
}

// A large upload: the sender's chat to a third user arrives while the
// sender still holds most of the file back, a plain recipient gets one
// forward_file, a chunked one the file in chunks, and the sender learns
// both got it.
func TestUploadDoesNotBlockChat(t *testing.T) {
	s := startServer(t, Config{})
	plain := joined(t, s, "plain")
	bob := joinedExt(t, s, "bob")
	carol := joined(t, s, "carol")
	alice := uploader(t, s, "alice")
	data := bytes.Repeat([]byte("0123456789abcdef\x00\xff\n"), 300000) // 5.7 MB
	alice.beginUpload(3, []string{"plain", "bob"}, "big.bin", int64(len(data)))

	plainGot := make(chan []byte, 1)
	go func() {
		_, _, content := plain.readForwardFile()
		plainGot <- content
	}()
	type chunked struct {
		content []byte
		ok      bool
		other   []string
	}
	bobGot := make(chan chunked, 1)
	go func() {
		c, ok, other := bob.readChunked()
		bobGot <- chunked{c, ok, other}
	}()

	var f uploadFrames
	alice.sendChunks(3, data, 0, 2<<20, &f)
	alice.Send("mid-upload", "carol", "bob")
	carol.Expect(protocol.ForwardMessage, "1 alice mid-upload") // with 3.7 MB still to send
	alice.sendChunks(3, data, 2<<20, len(data), &f)
	alice.finishUpload(3, &f)
	if !slices.Equal(f.result, []string{"plain", "bob"}) || f.acked != int64(len(data)) || f.other != nil {
		t.Fatalf("alice saw result %q, acked %d, other %q", f.result, f.acked, f.other)
	}
	if got := <-plainGot; !bytes.Equal(got, data) {
		t.Fatalf("plain got %d bytes, damaged", len(got))
	}
	b := <-bobGot
	if !b.ok || !bytes.Equal(b.content, data) || !slices.Equal(b.other, []string{"forward_message 1 alice mid-upload"}) {
		t.Fatalf("bob got %d bytes (end %v), other frames %q", len(b.content), b.ok, b.other)
	}
}

// TestUploadAcksByQuarterWindow: the server acknowledges an upload once a
// quarter of the window more has been passed on, and all of it before its
// file_result, not every chunk (issue 19: a wakeup of the client a chunk).
func TestUploadAcksByQuarterWindow(t *testing.T) {
	s := startServer(t, Config{})
	bob := joinedExt(t, s, "bob")
	alice := uploader(t, s, "alice")
	data := make([]byte, 2*uploadWindow+100<<10)
	alice.beginUpload(1, []string{"bob"}, "big.bin", int64(len(data)))
	bobGot := make(chan int, 1)
	go func() {
		content, _, _ := bob.readChunked()
		bobGot <- len(content)
	}()
	var f uploadFrames
	alice.sendChunks(1, data, 0, len(data), &f)
	alice.finishUpload(1, &f)
	if n := <-bobGot; n != len(data) {
		t.Fatalf("bob got %d bytes of %d", n, len(data))
	}
	if len(f.acks) == 0 || f.acks[len(f.acks)-1] != int64(len(data)) {
		t.Fatalf("acks %v: the last must be the whole %d bytes", f.acks, len(data))
	}
	for i, off := range f.acks[:len(f.acks)-1] {
		if gap := off - append([]int64{0}, f.acks...)[i]; gap < uploadWindow/4 {
			t.Fatalf("acks %v: ack %d came after only %d bytes more, want at least a quarter window", f.acks, i, gap)
		}
	}
}

// A client that sends past its window breaks the protocol.
func TestUploadWindowIsEnforced(t *testing.T) {
	s := startServer(t, Config{})
	bob := joinedExt(t, s, "bob")
	bob.NC.(*net.TCPConn).SetReadBuffer(4 << 10) // takes little: few acks
	alice := uploader(t, s, "alice")
	alice.beginUpload(1, []string{"bob"}, "big.bin", 64<<20)
	chunk := make([]byte, 128<<10)
	go func() {
		for range 64 << 20 / len(chunk) {
			if _, err := alice.NC.Write(append(protocol.ChunkHeader(nil, 1, len(chunk)), chunk...)); err != nil {
				return
			}
		}
	}()
	s.out.Wait(t, "disconnected: alice sent unknown command", 1)
}

func TestUploadNeedsTheFeature(t *testing.T) {
	s := startServer(t, Config{})
	alice := joinedExt(t, s, "alice") // chunked-file only
	alice.Write(protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 1))
	s.expectKicked(t, alice)
}

// file_abort mid-file: a chunked recipient is told, a plain one, sent
// nothing of the file until it is whole, gets nothing and stays (it was
// once cut off, its forward_file half-sent), and the sender chats on.
func TestUploadAbort(t *testing.T) {
	s := startServer(t, Config{})
	plain := joined(t, s, "plain")
	bob := joinedExt(t, s, "bob")
	alice := uploader(t, s, "alice")
	data := make([]byte, 8<<20)
	alice.beginUpload(5, []string{"bob", "plain"}, "big.bin", int64(len(data)))
	bobGot := make(chan bool, 1)
	go func() {
		_, ok, _ := bob.readChunked()
		bobGot <- ok
	}()
	var f uploadFrames
	alice.sendChunks(5, data, 0, 1<<20, &f)
	alice.Write(protocol.AppendFileID(nil, protocol.FileAbort, 5))
	for !f.done {
		alice.readUpload(5, &f)
	}
	if len(f.result) != 0 {
		t.Fatalf("result %q after an abort", f.result)
	}
	if <-bobGot {
		t.Fatal("bob's copy ended with file_end")
	}
	alice.Send("still here", "bob", "plain")
	bob.Expect(protocol.ForwardMessage, "1 alice still here")
	plain.Expect(protocol.ForwardMessage, "1 alice still here")
	waitSpoolsEmpty(t, s.Server)
	// Late frames for the upload are ignored.
	alice.Write(protocol.AppendFileID(nil, protocol.FileEnd, 5))
	alice.Send("after", "alice")
	alice.Expect(protocol.ForwardMessage, "1 alice after")
}

// A recipient that takes whole frames and never reads: the server takes
// the whole file without waiting for it (it holds the file until whole),
// the recipient is cut off as a slow consumer once its forward_file stalls,
// the sender learns that nobody got the file, and chats on meanwhile.
func TestUploadToRecipientThatNeverReads(t *testing.T) {
	s := startServer(t, Config{StallTimeout: 3 * time.Second})
	bob := joined(t, s, "bob") // never reads
	bob.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
	carol := joined(t, s, "carol")
	alice := uploader(t, s, "alice")
	data := make([]byte, 64<<20)
	alice.beginUpload(2, []string{"bob"}, "huge.bin", int64(len(data)))
	type outcome struct {
		result []string
		acked  int64
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		r, a, err := uploadAsync(alice, 2, data)
		done <- outcome{r, a, err}
	}()
	// Her chat flows while the file waits for bob.
	alice.Write(protocol.AppendMessage(nil, protocol.SendMessage, []string{"carol"}, []byte("while bob is stuck")))
	carol.Expect(protocol.ForwardMessage, "1 alice while bob is stuck")
	select {
	case o := <-done:
		t.Fatalf("the upload ended (%+v) before her message went through", o)
	default:
	}
	o := <-done
	if o.err != nil || len(o.result) != 0 || o.acked != int64(len(data)) {
		t.Fatalf("result %q, acked %d of %d, err %v", o.result, o.acked, len(data), o.err)
	}
	s.out.Wait(t, "disconnected: bob", 1)
	alice.Send("after", "carol")
	carol.Expect(protocol.ForwardMessage, "1 alice after")
}

// uploadAsync sends data as upload id within the window, from a goroutine
// other than the test's, until the upload's file_result: it returns the
// users it names and the last offset acknowledged.
func uploadAsync(c *rawClient, id uint64, data []byte) ([]string, int64, error) {
	var acked int64
	off := 0
	for {
		for off < len(data) && int64(off)-acked < uploadWindow {
			n := min(len(data)-off, 128<<10, int(acked+uploadWindow)-off)
			if _, err := c.NC.Write(append(protocol.ChunkHeader(nil, id, n), data[off:off+n]...)); err != nil {
				return nil, acked, err
			}
			off += n
		}
		if off == len(data) {
			if _, err := c.NC.Write(protocol.AppendFileID(nil, protocol.FileEnd, id)); err != nil {
				return nil, acked, err
			}
			off++ // sent
		}
		c.NC.SetReadDeadline(time.Now().Add(waitTimeout))
		h, err := c.R.ReadHeader()
		if err != nil {
			return nil, acked, err
		}
		p, err := c.R.ReadPayload(nil)
		if err != nil {
			return nil, acked, err
		}
		switch h.Type {
		case protocol.FileAck:
			if _, acked, err = protocol.ParseFileAck(p); err != nil {
				return nil, acked, err
			}
		case protocol.FileResult:
			_, names, err := protocol.ParseFileResult(p)
			return names, acked, err
		default:
			return nil, acked, fmt.Errorf("unexpected %s %q", h.Name, p)
		}
	}
}

// midUpload joins bob (chunked-file) and alice (file-upload), and has
// alice send the first MiB of a 4 MiB file to bob, as upload 4.
func midUpload(t *testing.T, s *testServer) (bob, alice *rawClient, f *uploadFrames) {
	t.Helper()
	bob = joinedExt(t, s, "bob")
	alice = uploader(t, s, "alice")
	data := make([]byte, 4<<20)
	alice.beginUpload(4, []string{"bob"}, "big.bin", int64(len(data)))
	f = &uploadFrames{}
	alice.sendChunks(4, data, 0, 1<<20, f)
	return bob, alice, f
}

// A sender that stops sending mid-file holds its recipients for the stall
// timeout only.
func TestUploadStalledSender(t *testing.T) {
	s := startServer(t, Config{StallTimeout: time.Second})
	bob, alice, f := midUpload(t, s)
	for !f.done {
		alice.readUpload(4, f)
	}
	if len(f.result) != 0 {
		t.Fatalf("result %q", f.result)
	}
	if _, ok, _ := bob.readChunked(); ok {
		t.Fatal("bob's copy ended with file_end")
	}
	alice.Send("awake", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice awake")
}

// A sender that leaves mid-file: chunked recipients get a file_abort.
func TestUploadSenderLeaves(t *testing.T) {
	s := startServer(t, Config{})
	bob, alice, _ := midUpload(t, s)
	alice.NC.Close()
	if _, ok, _ := bob.readChunked(); ok {
		t.Fatal("bob's copy ended with file_end")
	}
	s.out.Wait(t, "disconnected: alice", 1)
}

func TestUploadLimits(t *testing.T) {
	for name, frames := range map[string][][]byte{
		"over the file size": {protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 2<<20)},
		"id in use": {
			protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 5),
			protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "g", 5),
		},
		"too many at once": {
			protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 5),
			protocol.AppendUploadBegin(nil, 2, []string{"alice"}, "f", 5),
			protocol.AppendUploadBegin(nil, 3, []string{"alice"}, "f", 5),
			protocol.AppendUploadBegin(nil, 4, []string{"alice"}, "f", 5),
			protocol.AppendUploadBegin(nil, 5, []string{"alice"}, "f", 5),
		},
		"more than its size": {
			protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 5),
			append(protocol.ChunkHeader(nil, 1, 6), "123456"...),
		},
		"ends early": {
			protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 5),
			append(protocol.ChunkHeader(nil, 1, 4), "1234"...),
			protocol.AppendFileID(nil, protocol.FileEnd, 1),
		},
		"chunk too long": {
			protocol.AppendUploadBegin(nil, 1, []string{"alice"}, "f", 1<<20),
			append(protocol.ChunkHeader(nil, 1, protocol.MaxUploadChunk+1), make([]byte, protocol.MaxUploadChunk+1)...),
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, Config{MaxFileSize: 1 << 20})
			alice := uploader(t, s, "alice")
			for _, f := range frames {
				alice.Write(f)
			}
			s.out.Wait(t, "disconnected: alice sent unknown command", 1)
		})
	}
}

func TestNotOnlineNotice(t *testing.T) {
	s := startServer(t, Config{})
	bob := joined(t, s, "bob")
	alice := joinedWith(t, s, "alice", protocol.FeatureNotOnline)
	alice.Send("hi", "bob", "ghost", "bob", "nobody", "ghost")
	bob.Expect(protocol.ForwardMessage, "1 alice hi")
	alice.Expect(protocol.NotOnline, "2 ghost nobody")
	alice.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"ghost"}, "f", 1), 'x'))
	alice.Expect(protocol.NotOnline, "1 ghost")
	alice.Send("to all", "bob", "alice")
	alice.Expect(protocol.ForwardMessage, "1 alice to all") // and no notice
	bob.Expect(protocol.ForwardMessage, "1 alice to all")
	// Without the feature, nothing: the notice would come first.
	bob.Send("hey", "ghost", "bob")
	bob.Expect(protocol.ForwardMessage, "1 bob hey")
	bob.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	bob.Expect(protocol.ResponseUsersList, "2 alice bob")
}

func TestPresence(t *testing.T) {
	s := startServer(t, Config{MaxClients: presenceLimit + 5})
	watcher := joinedWith(t, s, "watcher", protocol.FeaturePresence)
	other := joinedWith(t, s, "other", protocol.FeaturePresence)
	watcher.Expect(protocol.Presence, "joined other")
	plain := joined(t, s, "plain")
	watcher.Expect(protocol.Presence, "joined plain")
	other.Expect(protocol.Presence, "joined plain")
	plain.NC.Close()
	watcher.Expect(protocol.Presence, "left plain")
	other.Expect(protocol.Presence, "left plain")

	// Up to the limit, one by one; above it, paused once.
	var users []*rawClient
	for i := 0; s.cfg.Hub.Len() < presenceLimit+1; i++ {
		name := "u" + strconv.Itoa(i)
		users = append(users, joined(t, s, name))
		if s.cfg.Hub.Len() <= presenceLimit {
			watcher.Expect(protocol.Presence, "joined "+name)
		}
	}
	watcher.Expect(protocol.Presence, "paused "+strconv.Itoa(presenceLimit))
	late := joinedWith(t, s, "late", protocol.FeaturePresence) // told at once
	late.Expect(protocol.Presence, "paused "+strconv.Itoa(presenceLimit))
	late.NC.Close()
	s.out.Wait(t, "disconnected: late", 1)
	users[0].NC.Close()
	s.out.Wait(t, "disconnected: u0", 1)
	// Back at the limit: resumed, and the leave that made it so.
	watcher.Expect(protocol.Presence, "resumed")
	watcher.Expect(protocol.Presence, "left u0")
	other.NC.Close()
	watcher.Expect(protocol.Presence, "left other")
}

// A file handed whole to the queue of a recipient that then never takes
// it did not reach him: file_result waits for the last byte to be
// written to his socket, and does not name him. (What his system takes
// into its buffers for a program that never reads is written as far as
// any server can tell: the file is that much larger.)
func TestUploadResultWaitsForDelivery(t *testing.T) {
	s := startServer(t, Config{StallTimeout: time.Second})
	bob := joined(t, s, "bob") // never reads
	bob.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
	carol := joinedExt(t, s, "carol")
	alice := uploader(t, s, "alice")
	// Queued whole (less than a stream's window beyond what the system
	// takes), yet never all written.
	data := make([]byte, absorbed(t)+1<<20)
	alice.beginUpload(6, []string{"bob", "carol"}, "f.bin", int64(len(data)))
	go carol.readChunked()
	var f uploadFrames
	alice.sendChunks(6, data, 0, len(data), &f)
	alice.finishUpload(6, &f)
	if !slices.Equal(f.result, []string{"carol"}) {
		t.Fatalf("result %q, want carol alone", f.result)
	}
	s.out.Wait(t, "disconnected: bob", 1)
}

// absorbed returns how many bytes the system takes into its buffers for a
// TCP connection on 127.0.0.1 whose other end, set up as bob's is, never
// reads.
func absorbed(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.(*net.TCPConn).SetReadBuffer(4 << 10)
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	buf := make([]byte, 64<<10)
	total := 0
	for {
		// Once a write makes no progress for a while, the buffers are
		// full.
		nc.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := nc.Write(buf)
		total += n
		if err != nil {
			return total
		}
	}
}
