package server

import (
	"sync"
	"sync/atomic"

	"github.com/gochat/chat/internal/protocol"
)

// fileBufSize is the size of the buffers a file's content is read into.
const fileBufSize = 512 << 10

// fileBuf is a pooled buffer of file content shared by the send queues of
// a file's recipients. Each queued part holds a reference; the buffer goes
// back to the pool when the last is released. A part never released (its
// queue failed) just leaves the buffer to the garbage collector.
type fileBuf struct {
	b    []byte
	refs atomic.Int32
	pool *sync.Pool // where it goes back; nil: fileBufPool
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
		if fb.pool != nil {
			fb.pool.Put(fb)
		} else {
			fileBufPool.Put(fb)
		}
	}
}

// NewChunk returns an empty chunk of transfer id whose Data lies in a
// pooled buffer: content appended to Data within its capacity stays in
// that buffer, so a stream queues it without a copy. Release it once it
// has been written to every stream.
func NewChunk(id uint64) Chunk {
	fb := getFileBuf()
	return Chunk{ID: id, Data: fb.b[:0], ref: fb}
}

// Release gives back the caller's reference to the pooled buffer of a
// chunk from NewChunk; the streams that queued it hold their own.
func (c Chunk) Release() {
	if c.ref != nil {
		c.ref.release()
	}
}

// chunkedStream is a FileStream delivering file_* frames, which need no
// slot: other frames may come between them. It is used by the sender's
// serve goroutine only.
type chunkedStream struct {
	q      *sendQueue
	id     uint64
	cancel <-chan struct{}
	send   func([]byte) error // queues a whole frame, cutting the peer off if its queue overflows
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
		// A peer whose queue cannot take the end is cut off: a file
		// that never ends would hold one of its files open.
		s.send(protocol.AppendFileID(nil, t, s.id))
	}
}
