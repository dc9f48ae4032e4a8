package server

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
)

// newTestQueue returns a queue writing to one end of a pipe whose other
// end nobody reads, and a channel that receives the queue's write failure.
func newTestQueue(t *testing.T) (*sendQueue, <-chan error) {
	t.Helper()
	client, server := net.Pipe()
	failed := make(chan error, 1)
	q := newSendQueue(server, 1<<20, 0, waitTimeout, func(err error) { failed <- err })
	t.Cleanup(func() {
		client.Close()
		server.Close()
		q.mu.Lock()
		writing := q.writing
		q.mu.Unlock()
		if writing {
			<-failed // the writer ends once its write fails
		}
	})
	return q, failed
}

func (q *sendQueue) queuedBytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

// A spooled file waiting in a queue that closes, or whose writer fails,
// is given back: its bytes leave the spool budget and its file is closed.
func TestSendQueueDropsSpooled(t *testing.T) {
	for _, end := range []struct {
		name string
		end  func(q *sendQueue, client net.Conn)
	}{
		// Closing flushes: the writer goes on until its peer is gone.
		{"close", func(q *sendQueue, client net.Conn) { q.close(nil); client.Close() }},
		{"write fails", func(_ *sendQueue, client net.Conn) { client.Close() }},
	} {
		t.Run(end.name, func(t *testing.T) {
			srv := New(Config{SpoolMemoryBytes: 1}) // every spool on disk
			client, server := net.Pipe()
			defer client.Close()
			failed := make(chan error, 1)
			q := newSendQueue(server, 1<<20, 0, waitTimeout, func(err error) { failed <- err })
			// A frame the writer blocks on, then two spooled files.
			if _, err := q.push([]byte("forward_message 6 1 a hi"), false); err != nil {
				t.Fatal(err)
			}
			head := FileHead{ID: 1, Sender: "a", Filename: "f", Size: 3}
			st, err := srv.openSpool(head, q)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Write(Chunk{ID: 1, Data: []byte("abc")}); err != nil {
				t.Fatal(err)
			}
			f := st.sp.f
			st.Close()
			if got := srv.spoolDisk; got != 3 {
				t.Fatalf("spooled on disk: %d bytes, want 3", got)
			}
			end.end(q, client)
			<-failed
			<-q.close(nil)
			chattest.WaitUntil(t, "the spool is given back", func() bool {
				srv.spoolMu.Lock()
				defer srv.spoolMu.Unlock()
				return srv.spoolDisk == 0
			})
			if _, err := f.Stat(); err == nil {
				t.Fatal("the spool's file is still open")
			}
			if got := q.queuedBytes(); got != 0 {
				t.Errorf("size after %s = %d, want 0", end.name, got)
			}
		})
	}
}

// Bytes leaving the queue make no wake-up channel unless a paced writer
// waits for one.
func TestSendQueueWakesOnlyWaiters(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	q := newSendQueue(server, 1<<20, 0, waitTimeout, func(error) {})
	read := make(chan struct{})
	go func() {
		defer close(read)
		b := make([]byte, 64)
		for n := 0; n < 3*len("forward_message 6 1 a hi"); {
			k, err := client.Read(b)
			if err != nil {
				return
			}
			n += k
		}
	}()
	for range 3 {
		q.push([]byte("forward_message 6 1 a hi"), false)
	}
	<-read
	q.mu.Lock()
	space := q.space
	q.mu.Unlock()
	if space != nil {
		t.Error("a wake-up channel was made with nobody waiting")
	}
	server.Close()
}

// A paced push queues nothing while the frame would take the queue past
// its pace mark and the peer still takes bytes; an empty queue takes any
// frame; a peer that has taken nothing for paceGrace holds nobody back.
func TestSendQueuePacedPush(t *testing.T) {
	q, _ := newTestQueue(t)
	q.mark = 100
	big := make([]byte, 150)
	if retry, err := q.push(big, true); retry != nil || err != nil {
		t.Fatalf("empty queue refused a frame over the mark: %v, %v", retry, err)
	}
	frame := make([]byte, 10)
	retry, err := q.push(frame, true)
	if retry == nil || err != nil {
		t.Fatalf("paced push past the mark = %v, %v; want a retry channel", retry, err)
	}
	if got := q.queuedBytes(); got != 150 {
		t.Fatalf("size after a refused paced push = %d, want 150", got)
	}
	if retry, err := q.push(frame, false); retry != nil || err != nil {
		t.Fatalf("unpaced push = %v, %v", retry, err)
	}
	// The writer is stuck on the unread pipe: once it has moved nothing
	// for paceGrace, paced pushes go through.
	q.progress.Add(-int64(paceGrace))
	if retry, err := q.push(frame, true); retry != nil || err != nil {
		t.Fatalf("paced push to a peer taking nothing = %v, %v; want queued", retry, err)
	}
	if got := q.queuedBytes(); got != 170 {
		t.Fatalf("size = %d, want 170", got)
	}
}

// writtenMark closes only once what was queued before it has been
// written, and is nil for a closed queue.
func TestSendQueueWrittenMark(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	q := newSendQueue(server, 1<<20, 0, waitTimeout, func(error) {})
	q.push([]byte("file_end 1 7"), false)
	mark := q.writtenMark()
	select {
	case <-mark:
		t.Fatal("marked written before anything was read")
	default:
	}
	b := make([]byte, len("file_end 1 7"))
	if _, err := io.ReadFull(client, b); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mark:
	case <-time.After(waitTimeout):
		t.Fatal("not marked written once read")
	}
	<-q.close(nil)
	if q.writtenMark() != nil {
		t.Fatal("a closed queue gave a mark")
	}
}

// A chunk from NewChunk keeps what is appended to it in its pooled
// buffer, and the buffer goes back only once the caller released it and
// the queue wrote it.
func TestNewChunkHoldsItsBuffer(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	q := newSendQueue(server, 1<<20, 0, waitTimeout, func(error) {})
	never := make(chan struct{})
	c := NewChunk(7)
	if c.ID != 7 || len(c.Data) != 0 || cap(c.Data) != fileBufSize || c.ref.refs.Load() != 1 {
		t.Fatalf("NewChunk(7) = id %d, %d bytes of %d, %d references", c.ID, len(c.Data), cap(c.Data), c.ref.refs.Load())
	}
	c.Data = append(c.Data, "piece one, "...)
	c.Data = append(c.Data, "piece two"...)
	if &c.Data[0] != &c.ref.b[0] {
		t.Fatal("appending moved the content out of the pooled buffer")
	}
	if err := q.pushPaced(nil, c.Data, c.ref, never); err != nil {
		t.Fatal(err)
	}
	c.Release()
	if got := c.ref.refs.Load(); got > 1 { // 0 once written
		t.Fatalf("after the caller's release, %d references; want the queue's 1 at most", got)
	}
	mark := q.writtenMark()
	got := make([]byte, len("piece one, piece two"))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "piece one, piece two" {
		t.Fatalf("read %q, %v", got, err)
	}
	select {
	case <-mark:
	case <-time.After(waitTimeout):
		t.Fatal("not marked written once read")
	}
	if got := c.ref.refs.Load(); got != 0 {
		t.Fatalf("written and released, the buffer still has %d references", got)
	}
	<-q.close(nil)
}
