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

	progress atomic.Int64 // when the writer last moved bytes (or started), in Unix nanoseconds

	mu        sync.Mutex
	items     []qitem       // ready to write; guarded by mu
	held      []qitem       // whole frames behind the open stream; guarded by mu
	size      int           // bytes of whole frames in items and held; guarded by mu
	pushed    int           // whole frames ever queued (tests wait on it); guarded by mu
	inStream  int           // bytes of stream parts in items; guarded by mu
	streaming bool          // a stream is open; guarded by mu
	owner     string        // the sender of the open stream's file; guarded by mu
	writing   bool          // a writer goroutine runs; guarded by mu
	closing   bool          // no more frames are taken; guarded by mu
	failed    bool          // a write failed; guarded by mu
	drained   chan struct{} // closed when closing and the writer has stopped; guarded by mu
	space     chan struct{} // made for a waiter, closed when bytes leave the queue or it closes; guarded by mu
	spare     []qitem       // reused batch slice; owned by the writer
	deadline  time.Time     // the write deadline last set; owned by the writer
}

type qitem struct {
	b      []byte
	stream bool
	ref    *fileBuf      // if not nil, b lies in it; released once written
	sent   chan struct{} // if not nil, closed once b (and all before it) is written
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
// would exceed its limit, and errQueueClosed after close. A paced push
// queues nothing while the frame would take the queue past its pace mark
// and the peer is still taking bytes (or has been for less than
// paceGrace); it returns a channel closed when bytes leave the queue
// instead, to be pushed again then.
func (q *sendQueue) push(b []byte, paced bool) (retry <-chan struct{}, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		return nil, errQueueClosed
	}
	if paced && q.mark > 0 && q.size > 0 && q.size+len(b) > q.mark && q.takingLocked() {
		return q.spaceLocked(), nil
	}
	if q.size+len(b) > q.limit {
		return nil, ErrSlowConsumer
	}
	q.size += len(b)
	q.pushed++
	if q.streaming {
		q.held = append(q.held, qitem{b: b})
		return nil, nil
	}
	q.items = append(q.items, qitem{b: b})
	q.kickLocked()
	return nil, nil
}

// takingLocked reports whether the peer is taking what is queued: the
// writer is idle, or has moved bytes within paceGrace. Frames held behind
// an open stream that has moved nothing for paceGrace wait for the
// stream's sender, not for the peer: then nobody is held back for them
// (a sender paced on them may be the one the stream waits for, through
// other users' queues or across cluster nodes).
func (q *sendQueue) takingLocked() bool {
	if !q.writing {
		return !q.streaming || len(q.held) == 0 || q.sinceProgress() < paceGrace
	}
	return q.sinceProgress() < paceGrace
}

// kickLocked starts the writer if it is not running.
func (q *sendQueue) kickLocked() {
	if !q.writing && len(q.items) > 0 && !q.failed {
		q.writing = true
		q.noteProgress() // idle until now, so not behind
		go q.writeLoop()
	}
}

// writeLoop writes batches of queued frames until the queue is empty. It
// is started by kickLocked and owned by the queue; it ends when nothing is
// left to write or a write fails.
func (q *sendQueue) writeLoop() {
	var ws *writeScratch // taken on the first batch, given back at the end
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

		if ws == nil {
			ws = writeScratchPool.Get().(*writeScratch)
			defer ws.release()
		}
		whole, parts := 0, 0
		bufs := ws.bufs[:0]
		for _, it := range batch {
			if len(it.b) > 0 { // a mark (writtenMark) writes nothing
				bufs = append(bufs, it.b)
			}
			if it.stream {
				parts += len(it.b)
			} else {
				whole += len(it.b)
			}
		}
		ws.bufs = bufs[:0] // keep a grown array for the next batch
		err := q.write(bufs, ws)
		clear(bufs[:cap(bufs)]) // let the frames be collected
		if err != nil {
			// Say why first, so that whoever waits on the queue and
			// learns of the failure finds the reason recorded.
			q.onFail(err)
		}

		for _, it := range batch {
			if it.ref != nil {
				it.ref.release()
			}
			if it.sent != nil && err == nil {
				close(it.sent)
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
	}
}

// write writes bufs, failing once no byte has moved for q.timeout. On a
// TCP socket it writes with short deadlines, noting each time bytes moved,
// so that the queue knows whether its peer is still taking them. Other
// connections (TLS) cannot resume a write that timed out: there each step
// is small and gets the whole timeout.
func (q *sendQueue) write(bufs net.Buffers, ws *writeScratch) error {
	_, resumable := q.nc.(*net.TCPConn)
	step, wait := 64<<10, q.timeout
	if resumable {
		step, wait = 1<<20, min(progressTick, q.timeout)
	}
	for len(bufs) > 0 {
		// Take at most step bytes, so a step's deadline measures
		// progress, not size. A batch of chat (most batches) fits in
		// one step and is written as it is.
		chunk := ws.chunk[:0]
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
		ws.chunk = chunk[:0]
		for len(chunk) > 0 {
			if err := q.setDeadline(resumable, wait); err != nil {
				return err
			}
			moved, err := chunk.WriteTo(q.nc) // consumes what it wrote
			if moved > 0 {
				q.noteProgress()
			}
			if err == nil {
				break
			}
			var ne net.Error
			if !resumable || !errors.As(err, &ne) || !ne.Timeout() || q.sinceProgress() >= q.timeout {
				return err
			}
		}
	}
	return nil
}

// setDeadline gives the next write wait to make progress. On a resumable
// connection a deadline still at least wait/2 away is kept, since a
// timeout there only makes write look at the progress and go on: moving a
// deadline is a runtime timer update (a lock and a heap fix) that showed
// in the profile of every batch of chat (issue 19). Elsewhere a timeout is
// final, so each write gets the whole wait. Only the writer sets the
// connection's write deadline, so the one it remembers is the one set.
func (q *sendQueue) setDeadline(resumable bool, wait time.Duration) error {
	now := time.Now()
	if resumable && q.deadline.Sub(now) >= wait/2 {
		return nil
	}
	q.deadline = now.Add(wait)
	return q.nc.SetWriteDeadline(q.deadline)
}

// writeScratch holds the writer's slices of buffers between batches. It is
// pooled rather than kept by each queue, since a queue is idle most of the
// time and its connection should then hold as little as it can.
type writeScratch struct {
	bufs, chunk net.Buffers
}

var writeScratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

// release clears the slices (they point at written frames) and gives ws
// back to the pool.
func (ws *writeScratch) release() {
	clear(ws.bufs[:cap(ws.bufs)])
	clear(ws.chunk[:cap(ws.chunk)])
	writeScratchPool.Put(ws)
}

// progressTick is how often a blocked write on a TCP socket looks at
// whether bytes are still moving.
const progressTick = 250 * time.Millisecond

// paceGrace is how long after its last progress a peer still counts as
// taking its bytes, and so still holds back the senders that fill its
// queue: a peer that takes nothing for this long no longer does, and
// overflows its queue (or stalls) to be cut off.
const paceGrace = 5 * time.Second

func (q *sendQueue) noteProgress() { q.progress.Store(time.Now().UnixNano()) }

func (q *sendQueue) sinceProgress() time.Duration {
	return time.Duration(time.Now().UnixNano() - q.progress.Load())
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
		q.size -= len(it.b)
	}
	q.held = nil
}

// spaceLocked returns the channel closed when bytes next leave the queue
// or it closes.
func (q *sendQueue) spaceLocked() <-chan struct{} {
	if q.space == nil {
		q.space = make(chan struct{})
	}
	return q.space
}

// openStream waits for the queue's stream slot for a file of head,
// giving up when cancel or gone is closed, or (for an inline file) once
// an upload of the same sender holds the slot.
func (q *sendQueue) openStream(head FileHead, cancel, gone <-chan struct{}) error {
	var recheck <-chan time.Time
	if head.Inline {
		// An upload of the sender may take the slot while this waits:
		// that is seen within a moment.
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		recheck = t.C
	}
	for waiting := true; waiting; {
		if head.Inline && q.streamOf(head.Sender) {
			return ErrOwnUpload
		}
		select {
		case q.slot <- struct{}{}:
			waiting = false
		case <-gone:
			return ErrPeerGone
		case <-cancel:
			return ErrPeerGone
		case <-recheck:
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-cancel: // both were ready, and select chose the slot
		<-q.slot
		return ErrPeerGone
	default:
	}
	if q.closing || q.failed {
		<-q.slot
		return ErrPeerGone
	}
	q.streaming = true
	q.owner = head.Sender
	return nil
}

// streamOf reports whether the open stream carries a file of sender.
func (q *sendQueue) streamOf(sender string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.streaming && q.owner == sender
}

// closeStream ends the open stream. A complete stream lets the frames
// held behind it go; an incomplete one drops them, since its peer is cut
// off.
func (q *sendQueue) closeStream(complete bool) {
	q.mu.Lock()
	q.streaming = false
	q.owner = ""
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
