package server

import (
	"bytes"
	"net"
	"slices"
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
