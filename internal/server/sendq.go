package server

import (
	"errors"
	"fmt"
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
// writing. A forward_file for a peer taking whole frames is queued only
// once the server holds the whole file (a spool, spool.go), and the
// writer reads it from there as it writes; chunked files' frames are
// interleaved with the others as they come (pushPaced).
//
// Its states, from the fields writing, closing and failed:
//
//	            a push (kickLocked
//	            starts the writer)               a write fails (onFail;
//	  idle  ----------------------->  writing  ---------------------->  failed
//	   |    <-----------------------    |        what waits dropped)     |
//	   |     the queue is empty:        |                                |
//	   |     the writer ends            | close                          |
//	   |                                v                                |
//	   |  close, with a     ---->  draining: closing, writing;           |
//	   |  last frame               takes nothing more                    |
//	   |                                |                                |
//	   |                                | the queue is empty,            |
//	   | close, without                 | or a write fails               | close
//	   v                                v                                v
//	closed: close's channel is closed; pushes get errQueueClosed (or
//	ErrPeerGone) and startFeeder starts nothing
//
// Pushes are refused from the moment close is called (closing) or a write
// fails (failed); only the writer moves the queue out of writing.
type sendQueue struct {
	nc      net.Conn
	limit   int           // most bytes of whole frames that may wait
	mark    int           // bytes of whole frames above which senders are paced (0: never)
	timeout time.Duration // a write making no progress this long fails
	onFail  func(error)   // called once by the writer when a write fails, before waiters learn of it

	progress atomic.Int64 // when the writer last moved bytes (or started), in Unix nanoseconds

	mu       sync.Mutex
	items    []qitem        // ready to write; guarded by mu
	size     int            // bytes of whole frames in items (a spooled file's content not counted); guarded by mu
	pushed   int            // whole frames ever queued (tests wait on it); guarded by mu
	inStream int            // bytes of stream parts in items; guarded by mu
	writing  bool           // a writer goroutine runs; guarded by mu
	closing  bool           // no more frames are taken; guarded by mu
	failed   bool           // a write failed; guarded by mu
	drained  chan struct{}  // closed when closing and the writer has stopped; guarded by mu
	space    chan struct{}  // made for a waiter, closed when bytes leave the queue or it closes; guarded by mu
	feeders  sync.WaitGroup // lagging file streams' feeders (lag.go); close's caller waits for them
	spare    []qitem        // reused batch slice; owned by the writer
	deadline time.Time      // the write deadline last set; owned by the writer
}

type qitem struct {
	b      []byte
	stream bool
	ref    *fileBuf      // if not nil, b lies in it; released once written
	spool  *spool        // if not nil, the content that follows b (a forward_file's head), read from the spool as it is written; released once written or dropped
	sent   chan struct{} // if not nil, closed once b (and all before it) is written
}

func newSendQueue(nc net.Conn, limit, mark int, timeout time.Duration, onFail func(error)) *sendQueue {
	return &sendQueue{
		nc:      nc,
		limit:   limit,
		mark:    mark,
		timeout: timeout,
		onFail:  onFail,
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
	q.items = append(q.items, qitem{b: b})
	q.kickLocked()
	return nil, nil
}

// takingLocked reports whether the peer is taking what is queued: the
// writer is idle, or has moved bytes within paceGrace. Everything queued
// waits for the peer alone (a spooled file is whole before it is queued),
// so a sender paced on it waits for nobody else.
func (q *sendQueue) takingLocked() bool {
	return !q.writing || q.sinceProgress() < paceGrace
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
//
// It is one of four batching writers (printer.flushLoop, the web's
// wsConn.flush, the cluster's outbound.run) that share a shape (take what
// waits under the lock, write it without, until nothing waits) but not
// what matters, so they are not one piece (issue 24 item 10). Here a batch
// is a list of frames, not bytes: each may hold a pooled buffer or a spool
// to give back once written, or be a mark (writtenMark) to close; they go
// out with writev in steps whose deadlines measure the peer's progress,
// which pacing reads; a failure is final and drops what waits; and bytes
// leaving wake the senders paced on this queue.
func (q *sendQueue) writeLoop() {
	var ws *writeScratch // taken on the first batch, given back at the end
	for {
		q.mu.Lock()
		if len(q.items) == 0 || q.failed {
			q.writing = false
			q.dropItemsLocked() // after a failure: nothing more is written
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
		var err error
		for _, it := range batch {
			if len(it.b) > 0 && err == nil { // a mark (writtenMark) writes nothing
				bufs = append(bufs, it.b)
			}
			if it.stream {
				parts += len(it.b)
			} else {
				whole += len(it.b)
			}
			if it.spool != nil && err == nil {
				// The frames before it and its head go first; then its
				// content, read from the spool as it is written.
				if err = q.write(bufs, ws); err == nil {
					err = q.writeSpool(it.spool, ws)
				}
				bufs = bufs[:0]
			}
		}
		if err == nil {
			err = q.write(bufs, ws)
		}
		ws.bufs = bufs[:0]      // keep a grown array for the next batch
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
			if it.spool != nil {
				it.spool.release()
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

// writeSpool writes a spooled file's content, reading it in pieces of a
// pooled buffer, so that a 1 GiB file costs the writer one buffer.
func (q *sendQueue) writeSpool(sp *spool, ws *writeScratch) error {
	if sp.mem != nil {
		return q.write(net.Buffers{sp.mem}, ws)
	}
	fb := getFileBuf()
	defer fb.release()
	for off := int64(0); off < sp.head.Size; {
		n, err := sp.f.ReadAt(fb.b[:min(int64(len(fb.b)), sp.head.Size-off)], off)
		if n == 0 && err != nil {
			return fmt.Errorf("reading the spooled file %s: %w", sp.head.Filename, err)
		}
		off += int64(n)
		if err := q.write(net.Buffers{fb.b[:n]}, ws); err != nil {
			return err
		}
	}
	return nil
}

// dropItemsLocked drops what waits in the queue unwritten, giving back
// the spools it holds (a spool on disk is removed once nobody holds it).
func (q *sendQueue) dropItemsLocked() {
	for _, it := range q.items {
		if it.spool != nil {
			it.spool.release()
		}
		if !it.stream {
			q.size -= len(it.b)
		}
	}
	clear(q.items)
	q.items = q.items[:0]
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
// of it (or failed).
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
	if last != nil {
		q.items = append(q.items, qitem{b: last})
	}
	if q.writing {
		q.drained = done
	} else if len(q.items) > 0 && !q.failed {
		q.drained = done
		q.kickLocked()
	} else {
		q.dropItemsLocked()
		close(done)
	}
	return done
}

// spaceLocked returns the channel closed when bytes next leave the queue
// or it closes.
func (q *sendQueue) spaceLocked() <-chan struct{} {
	if q.space == nil {
		q.space = make(chan struct{})
	}
	return q.space
}

// pushSpooled queues a forward_file whose head is head and whose
// content the whole of sp holds, taking a reference to sp. Only head
// counts against the queue's limit: the content is read from the spool
// as it is written. It returns errQueueClosed after close.
func (q *sendQueue) pushSpooled(head []byte, sp *spool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		return errQueueClosed
	}
	sp.hold()
	q.size += len(head)
	q.pushed++
	q.items = append(q.items, qitem{b: head, spool: sp})
	q.kickLocked()
	return nil
}

// pushPaced queues head (if any) and b as stream bytes, together,
// waiting while a window's worth of them is already queued. If ref is not
// nil, b lies in it, and the queue takes a reference.
func (q *sendQueue) pushPaced(head, b []byte, ref *fileBuf, cancel <-chan struct{}) error {
	for {
		space, err := q.pushStream(head, b, ref, false)
		if space == nil || err != nil {
			return err
		}
		select {
		case <-space:
		case <-cancel:
			return ErrPeerGone
		}
	}
}

// pushStream queues head (if any) and b as stream bytes, as pushPaced
// does, without waiting: if a window's worth of stream bytes is already
// queued (and force is not set), it queues nothing and returns a channel
// closed when bytes next leave the queue. It returns ErrPeerGone once the
// queue takes nothing more.
func (q *sendQueue) pushStream(head, b []byte, ref *fileBuf, force bool) (full <-chan struct{}, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		return nil, ErrPeerGone
	}
	if q.inStream >= streamWindow && !force {
		return q.spaceLocked(), nil
	}
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
	return nil, nil
}

// startFeeder runs feed in a goroutine owned by the queue, whose closer
// waits for it (feeders): a closed queue wakes whatever waits to push, so
// it ends. It starts nothing and returns false once the queue takes
// nothing more.
func (q *sendQueue) startFeeder(feed func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		return false
	}
	q.feeders.Add(1) // before close, which the Wait follows
	go func() {
		defer q.feeders.Done()
		feed()
	}()
	return true
}

// wakePacedLocked wakes every writer waiting in pushPaced, if any.
func (q *sendQueue) wakePacedLocked() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}
