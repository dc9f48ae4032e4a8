package server

import (
	"sync"
	"sync/atomic"
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
