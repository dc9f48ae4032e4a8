package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
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
	mark    int           // bytes of whole frames above which senders are paced (0: never)
	timeout time.Duration // a write making no progress this long fails
	onFail  func(error)   // called once by the writer when a write fails, before waiters learn of it

	slot chan struct{} // holds a token while a stream is open
	over atomic.Bool   // size is at least mark; written under mu

	mu        sync.Mutex
	items     []qitem       // ready to write; guarded by mu
	held      []qitem       // whole frames behind the open stream; guarded by mu
	size      int           // bytes of whole frames in items and held; guarded by mu
	inStream  int           // bytes of stream parts in items; guarded by mu
	streaming bool          // a stream is open; guarded by mu
	writing   bool          // a writer goroutine runs; guarded by mu
	closing   bool          // no more frames are taken; guarded by mu
	failed    bool          // a write failed; guarded by mu
	drained   chan struct{} // closed when closing and the writer has stopped; guarded by mu
	space     chan struct{} // made for a waiter, closed when bytes leave the queue or it closes; guarded by mu
	spare     []qitem       // reused batch slice; owned by the writer
}

type qitem struct {
	b      []byte
	stream bool
	ref    *fileBuf // if not nil, b lies in it; released once written
}

func newSendQueue(nc net.Conn, limit, mark int, timeout time.Duration, onFail func(error)) *sendQueue {
	return &sendQueue{
		nc:      nc,
		limit:   limit,
		mark:    mark,
		timeout: timeout,
		onFail:  onFail,
		slot:    make(chan struct{}, 1),
	}
}

// push queues a whole frame. It returns ErrSlowConsumer if the queue
// would exceed its limit, and errQueueClosed after close.
func (q *sendQueue) push(b []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		return errQueueClosed
	}
	if q.size+len(b) > q.limit {
		return ErrSlowConsumer
	}
	q.addSizeLocked(len(b))
	if q.streaming {
		q.held = append(q.held, qitem{b: b})
		return nil
	}
	q.items = append(q.items, qitem{b: b})
	q.kickLocked()
	return nil
}

// kickLocked starts the writer if it is not running.
func (q *sendQueue) kickLocked() {
	if !q.writing && len(q.items) > 0 && !q.failed {
		q.writing = true
		go q.writeLoop()
	}
}

// writeLoop writes batches of queued frames until the queue is empty. It
// is started by kickLocked and owned by the queue; it ends when nothing is
// left to write or a write fails.
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
		if err != nil {
			// Say why first, so that whoever waits on the queue and
			// learns of the failure finds the reason recorded.
			q.onFail(err)
		}

		for _, it := range batch {
			if it.ref != nil {
				it.ref.release()
			}
		}
		clear(batch) // let the frames be collected
		q.mu.Lock()
		q.spare = batch[:0]
		q.addSizeLocked(-whole)
		q.inStream -= parts
		if err != nil {
			q.failed = true
		}
		q.wakePacedLocked()
		q.mu.Unlock()
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
	q.dropHeldLocked()
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

// dropHeldLocked discards the frames held behind the open stream.
func (q *sendQueue) dropHeldLocked() {
	for _, it := range q.held {
		q.addSizeLocked(-len(it.b))
	}
	q.held = nil
}

// addSizeLocked adds n to the bytes of whole frames queued, and notes
// whether they reach the pace mark.
func (q *sendQueue) addSizeLocked(n int) {
	q.size += n
	if over := q.mark > 0 && q.size >= q.mark; over != q.over.Load() {
		q.over.Store(over)
	}
}

// backlog returns nil while the whole frames queued are below the pace
// mark; otherwise a channel closed when bytes leave the queue or it
// closes. It costs an atomic load unless the queue is over the mark.
func (q *sendQueue) backlog() <-chan struct{} {
	if !q.over.Load() {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.size < q.mark || q.closing || q.failed {
		return nil
	}
	return q.spaceLocked()
}

// spaceLocked returns the channel closed when bytes next leave the queue
// or it closes.
func (q *sendQueue) spaceLocked() <-chan struct{} {
	if q.space == nil {
		q.space = make(chan struct{})
	}
	return q.space
}

// openStream waits for the queue's stream slot, giving up when cancel or
// gone is closed.
func (q *sendQueue) openStream(cancel, gone <-chan struct{}) error {
	select {
	case q.slot <- struct{}{}:
	case <-gone:
		return ErrPeerGone
	case <-cancel:
		return ErrPeerGone
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		<-q.slot
		return ErrPeerGone
	}
	q.streaming = true
	return nil
}

// closeStream ends the open stream. A complete stream lets the frames
// held behind it go; an incomplete one drops them, since its peer is cut
// off.
func (q *sendQueue) closeStream(complete bool) {
	q.mu.Lock()
	q.streaming = false
	if complete {
		q.items = append(q.items, q.held...)
		q.held = nil
		q.kickLocked()
	} else {
		q.dropHeldLocked()
	}
	q.mu.Unlock()
	<-q.slot
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
		space := q.spaceLocked()
		q.mu.Unlock()
		select {
		case <-space:
		case <-cancel:
			return ErrPeerGone
		}
	}
}

// wakePacedLocked wakes every writer waiting in pushPaced, if any.
func (q *sendQueue) wakePacedLocked() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}
