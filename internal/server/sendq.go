package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// streamWindow is how many bytes of an open stream may wait in a send
// queue before the stream's writer is paced.
const streamWindow = 2 << 20

// errQueueClosed is returned for frames offered to a closed queue.
var errQueueClosed = errors.New("send queue closed")

// sendQueue is a connection's outgoing frames. Enqueueing never blocks:
// a writer goroutine is started when there is something to write and ends
// when the queue is empty, so an idle connection holds no goroutine for
// writing. The frames of at most one stream at a time are interleaved into
// the queue; other frames wait behind the stream until it is closed.
type sendQueue struct {
	nc      net.Conn
	limit   int           // most bytes of whole frames that may wait
	timeout time.Duration // a write making no progress this long fails
	onFail  func(error)   // called once by the writer when a write fails

	slot chan struct{} // holds a token while a stream is open

	mu        sync.Mutex
	items     []qitem       // ready to write; guarded by mu
	held      []qitem       // frames behind the open stream; guarded by mu
	size      int           // bytes of whole frames in items and held; guarded by mu
	inStream  int           // bytes of stream parts in items; guarded by mu
	streaming bool          // a stream is open; guarded by mu
	writing   bool          // a writer goroutine runs; guarded by mu
	closing   bool          // no more frames are taken; guarded by mu
	failed    bool          // a write failed; guarded by mu
	drained   chan struct{} // closed when closing and the writer has stopped; guarded by mu
	spare     []qitem       // reused batch slice; owned by the writer
	space     chan struct{} // closed and replaced when bytes leave the queue or it closes; guarded by mu
}

type qitem struct {
	b      []byte
	stream bool
	ref    *fileBuf // if not nil, b lies in it; released once written
}

// fileBufSize is the size of the buffers a file's content is read into.
const fileBufSize = 512 << 10

// fileBuf is a pooled buffer of file content shared by the send queues of
// a file's recipients. Each queued part holds a reference; the buffer goes
// back to the pool when the last is released. A part never released (its
// queue failed) just leaves the buffer to the garbage collector.
type fileBuf struct {
	b    []byte
	refs atomic.Int32
}

var fileBufPool = sync.Pool{New: func() any { return &fileBuf{b: make([]byte, fileBufSize)} }}

// getFileBuf returns a buffer holding one reference, the caller's.
func getFileBuf() *fileBuf {
	fb := fileBufPool.Get().(*fileBuf)
	fb.refs.Store(1)
	return fb
}

// release drops one reference.
func (fb *fileBuf) release() {
	if fb.refs.Add(-1) == 0 {
		fileBufPool.Put(fb)
	}
}

func newSendQueue(nc net.Conn, limit int, timeout time.Duration, onFail func(error)) *sendQueue {
	return &sendQueue{
		nc:      nc,
		limit:   limit,
		timeout: timeout,
		onFail:  onFail,
		slot:    make(chan struct{}, 1),
		space:   make(chan struct{}),
	}
}

// push queues a whole frame. It returns ErrSlowConsumer if the queue
// would exceed its limit, and errQueueClosed after close.
func (q *sendQueue) push(b []byte) error {
	q.mu.Lock()
	if q.closing || q.failed {
		q.mu.Unlock()
		return errQueueClosed
	}
	if q.size+len(b) > q.limit {
		q.mu.Unlock()
		return ErrSlowConsumer
	}
	q.size += len(b)
	if q.streaming {
		q.held = append(q.held, qitem{b: b})
		q.mu.Unlock()
		return nil
	}
	q.items = append(q.items, qitem{b: b})
	q.kickLocked()
	q.mu.Unlock()
	return nil
}

// kickLocked starts the writer if it is not running.
func (q *sendQueue) kickLocked() {
	if !q.writing && len(q.items) > 0 && !q.failed {
		q.writing = true
		go q.writeLoop()
	}
}

// writeLoop writes batches of queued frames until the queue is empty.
func (q *sendQueue) writeLoop() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 || q.failed {
			q.writing = false
			if q.closing && q.drained != nil {
				close(q.drained)
				q.drained = nil
			}
			q.mu.Unlock()
			return
		}
		batch := q.items
		q.items = q.spare[:0]
		q.mu.Unlock()

		whole, parts := 0, 0
		bufs := make(net.Buffers, 0, len(batch))
		for _, it := range batch {
			bufs = append(bufs, it.b)
			if it.stream {
				parts += len(it.b)
			} else {
				whole += len(it.b)
			}
		}
		err := q.write(bufs)

		for _, it := range batch {
			if it.ref != nil {
				it.ref.release()
			}
		}
		clear(batch) // let the frames be collected
		q.mu.Lock()
		q.spare = batch[:0]
		q.size -= whole
		q.inStream -= parts
		if err != nil {
			q.failed = true
		}
		q.wakePacedLocked()
		q.mu.Unlock()
		if err != nil {
			q.onFail(err)
		}
	}
}

// write writes bufs, failing if no byte moves for q.timeout.
func (q *sendQueue) write(bufs net.Buffers) error {
	const step = 1 << 20
	for len(bufs) > 0 {
		// Bound each write so the deadline measures progress, not size.
		var chunk net.Buffers
		n := 0
		for len(bufs) > 0 && n < step {
			b := bufs[0]
			if n+len(b) > step {
				k := step - n
				chunk = append(chunk, b[:k])
				bufs[0] = b[k:]
				n = step
				break
			}
			chunk = append(chunk, b)
			n += len(b)
			bufs = bufs[1:]
		}
		if err := q.nc.SetWriteDeadline(time.Now().Add(q.timeout)); err != nil {
			return err
		}
		if _, err := chunk.WriteTo(q.nc); err != nil {
			return err
		}
	}
	return nil
}

// close stops taking frames, queues last (if not nil) after what is
// queued, and returns a channel closed once the writer has written all
// of it (or failed). Frames held behind an open stream are dropped, since
// the stream's frame can no longer be completed.
func (q *sendQueue) close(last []byte) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	done := make(chan struct{})
	if q.closing {
		close(done)
		return done
	}
	q.closing = true
	q.wakePacedLocked()
	if !q.streaming && last != nil {
		q.items = append(q.items, qitem{b: last})
	}
	q.held = nil
	if q.writing {
		q.drained = done
	} else if len(q.items) > 0 && !q.failed {
		q.drained = done
		q.kickLocked()
	} else {
		close(done)
	}
	return done
}

// plainStream is a FileStream delivering one forward_file frame in parts
// through a sendQueue's stream slot.
type plainStream struct {
	q      *sendQueue
	cancel <-chan struct{}
	kill   func() // cuts the peer off
	done   bool
}

// openStream waits for the queue's stream slot.
func (q *sendQueue) openStream(cancel, gone <-chan struct{}, kill func()) (*plainStream, error) {
	select {
	case q.slot <- struct{}{}:
	case <-gone:
		return nil, ErrPeerGone
	case <-cancel:
		return nil, ErrPeerGone
	}
	q.mu.Lock()
	if q.closing || q.failed {
		q.mu.Unlock()
		<-q.slot
		return nil, ErrPeerGone
	}
	q.streaming = true
	q.mu.Unlock()
	return &plainStream{q: q, cancel: cancel, kill: kill}, nil
}

// pushPaced queues head (if any) and b as stream bytes, together,
// waiting while a window's worth of them is already queued. If ref is not
// nil, b lies in it, and the queue takes a reference.
func (q *sendQueue) pushPaced(head, b []byte, ref *fileBuf, cancel <-chan struct{}) error {
	for {
		q.mu.Lock()
		if q.closing || q.failed {
			q.mu.Unlock()
			return ErrPeerGone
		}
		if q.inStream < streamWindow {
			if len(head) > 0 {
				q.inStream += len(head)
				q.items = append(q.items, qitem{b: head, stream: true})
			}
			if ref != nil {
				ref.refs.Add(1)
			}
			q.inStream += len(b)
			q.items = append(q.items, qitem{b: b, stream: true, ref: ref})
			q.kickLocked()
			q.mu.Unlock()
			return nil
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-cancel:
			return ErrPeerGone
		}
	}
}

// wakePacedLocked wakes every writer waiting in pushPaced.
func (q *sendQueue) wakePacedLocked() {
	close(q.space)
	q.space = make(chan struct{})
}

// Write implements FileStream.
func (s *plainStream) Write(c Chunk) error { return s.q.pushPaced(nil, c.Data, c.ref, s.cancel) }

// writeHead queues the start of the forward_file frame.
func (s *plainStream) writeHead(b []byte) error { return s.q.pushPaced(nil, b, nil, s.cancel) }

// Close implements FileStream.
func (s *plainStream) Close() {
	if s.done {
		return
	}
	s.done = true
	q := s.q
	q.mu.Lock()
	q.streaming = false
	q.items = append(q.items, q.held...)
	q.held = nil
	q.kickLocked()
	q.mu.Unlock()
	<-q.slot
}

// Abort implements FileStream.
func (s *plainStream) Abort() {
	if s.done {
		return
	}
	s.done = true
	s.kill()
	q := s.q
	q.mu.Lock()
	q.streaming = false
	q.held = nil
	q.mu.Unlock()
	<-q.slot
}

// chunkedStream is a FileStream delivering file_* frames, which need no
// slot: other frames may come between them.
type chunkedStream struct {
	q      *sendQueue
	id     uint64
	cancel <-chan struct{}
	done   bool
}

// Write implements FileStream.
func (s *chunkedStream) Write(c Chunk) error {
	for data := c.Data; len(data) > 0; {
		part := data[:min(len(data), protocol.MaxChunkData)]
		data = data[len(part):]
		if err := s.q.pushPaced(protocol.ChunkHeader(nil, s.id, len(part)), part, c.ref, s.cancel); err != nil {
			return err
		}
	}
	return nil
}

// Close implements FileStream.
func (s *chunkedStream) Close() { s.end(protocol.FileEnd) }

// Abort implements FileStream.
func (s *chunkedStream) Abort() { s.end(protocol.FileAbort) }

func (s *chunkedStream) end(t protocol.Type) {
	if !s.done {
		s.done = true
		s.q.push(protocol.AppendFileID(nil, t, s.id))
	}
}
