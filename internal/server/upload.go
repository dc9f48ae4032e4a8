package server

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Uploads: files a client sends in chunks under the file-upload extension
// (docs/PROTOCOL.md, "file-upload"). The serve goroutine reads the chunks
// between the client's other frames and hands a large file's chunks to
// the upload's own goroutine, which writes them to the recipients' file
// streams (which hold the file for a recipient that falls behind, as for
// streamFile, so one slow recipient does not hold it up for the others)
// and acknowledges them with file_acks. The client sends at most
// uploadWindow bytes beyond the last file_ack, so the serve goroutine never
// waits for a recipient to take a file, and the sender's chat goes on
// while it uploads.

const (
	// uploadWindow is the most bytes of an upload a client may have sent
	// beyond the last file_ack: what one upload holds in memory here.
	uploadWindow = 1 << 20
	// ackEvery is how much of an upload passed on earns a file_ack. An
	// ack for every chunk cost the client a wakeup and a read per 128 KiB
	// (8,192 a GiB, issue 19); with one per quarter window the client
	// always has three quarters of it to send into, more than one
	// round trip's worth on any link the window suits.
	ackEvery = uploadWindow / 4
	// maxUploads is the most uploads one connection has under way, each
	// from its file_begin until its file_result is sent.
	maxUploads = 4
)

// A small file is assembled whole before it is delivered, and is never
// acknowledged: the window must hold it.
const _ = uint(uploadWindow - smallFile)

// upload is a file a client sends in chunks.
type upload struct {
	id    uint64   // the client's id for it
	head  FileHead // as its recipients see it
	peers []Peer   // its recipients online, in the order the client named them
	small bool     // delivered whole as one forward_file once complete

	// cancel is closed on file_abort, or by endUploads as the connection
	// ends (leaving then set first): the upload stops at once, even in
	// the middle of waiting for a slow recipient.
	cancel     chan struct{}
	cancelOnce sync.Once
	leaving    atomic.Bool

	// Owned by the serve goroutine.
	got    int64  // bytes received
	frame  []byte // a small file's forward_file frame, filled as chunks arrive
	closed bool   // file_end or file_abort arrived

	acked atomic.Int64 // bytes passed on and acknowledged; written by the upload's goroutine

	mu     sync.Mutex
	chunks []Chunk       // received, not yet passed on (each holds a reference); guarded by mu
	end    protocol.Type // FileEnd or FileAbort once it arrived; guarded by mu
	wake   chan struct{} // signalled when chunks or end change
}

// handleUpload handles a client's file_begin, file_chunk, file_end or
// file_abort frame (of type t), whose header has been read.
func (c *conn) handleUpload(t protocol.Type) error {
	if !c.ext.upload {
		return fmt.Errorf("%w: %s frame without file-upload", protocol.ErrMalformed, t)
	}
	if t == protocol.FileChunk {
		return c.readChunk()
	}
	var err error
	if c.buf, err = c.r.ReadPayload(c.buf); err != nil {
		return err
	}
	if t == protocol.FileBegin {
		return c.beginUpload(c.buf)
	}
	id, err := protocol.ParseFileID(c.buf)
	if err != nil {
		return err
	}
	u := c.openUpload(id)
	if u == nil {
		return nil
	}
	switch t {
	case protocol.FileEnd:
		if u.got != u.head.Size {
			return fmt.Errorf("%w: upload %d ends after %d of %d bytes", protocol.ErrMalformed, id, u.got, u.head.Size)
		}
		u.closed = true
		if u.small {
			return c.deliverSmall(u)
		}
	default:
		u.closed = true
		if u.small {
			c.finishUpload(u, nil)
			return nil
		}
		u.stop()
		return nil
	}
	u.mu.Lock()
	u.end = t
	u.mu.Unlock()
	u.signal()
	return nil
}

// openUpload returns the upload id still taking frames, or nil. Frames
// for an upload that is over (every recipient left, it stalled, its end
// came) are ignored: its file_result is on its way, and the client may
// have sent them before it learnt so.
func (c *conn) openUpload(id uint64) *upload {
	c.ext.mu.Lock()
	u := c.ext.uploads[id]
	c.ext.mu.Unlock()
	if u == nil || u.closed {
		return nil
	}
	return u
}

// beginUpload starts the upload that the file_begin payload p describes:
// it prints the event lines as for send_file, tells the client who is
// online, and, if anybody is, gets ready for the content.
func (c *conn) beginUpload(p []byte) error {
	s := c.srv
	id, names, filename, size, err := protocol.ParseUploadBegin(p)
	if err != nil {
		return err
	}
	if size > s.cfg.MaxFileSize {
		c.logAt(slog.LevelInfo, "file too large", "size", size)
		return &endError{reason: reasonProtocolError, last: frameUnknown}
	}
	c.ext.mu.Lock()
	_, dup := c.ext.uploads[id]
	n := len(c.ext.uploads)
	c.ext.mu.Unlock()
	if dup || n >= maxUploads {
		return fmt.Errorf("%w: upload %d is under way, or %d are", protocol.ErrMalformed, id, n)
	}
	peers := c.recipients(nil, "file: ", names)
	online := make([]string, len(peers))
	for i, p := range peers {
		online[i] = p.Name()
	}
	c.Send(protocol.AppendFileReady(nil, id, uploadWindow, online))
	if len(peers) == 0 {
		return nil // nobody to send it to: the client sends nothing more
	}
	c.m.fileBytes.Add(float64(size))
	u := &upload{
		id:     id,
		head:   FileHead{ID: s.nextFileID.Add(1), Sender: c.name, Filename: filename, Size: size},
		peers:  peers,
		small:  size <= smallFile,
		cancel: make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	c.ext.mu.Lock()
	if c.ext.uploads == nil {
		c.ext.uploads = make(map[uint64]*upload)
	}
	c.ext.uploads[id] = u
	c.ext.mu.Unlock()
	if u.small {
		head := protocol.AppendFileHead(nil, protocol.ForwardFile, []string{c.name}, filename, size)
		u.frame = slices.Grow(head, int(size))
		return nil
	}
	c.ext.wg.Add(1)
	go c.streamUpload(u)
	return nil
}

// uploadBufPool holds the buffers a file_chunk is read into: as
// fileBufPool's, shared by the recipients' queues, and back once all
// have written it.
var uploadBufPool = sync.Pool{New: func() any {
	return &fileBuf{b: make([]byte, (protocol.Limits{}).MaxPayload(protocol.ToServer, protocol.FileChunk))}
}}

// readChunk reads a file_chunk frame, whose header has been read, into a
// pooled buffer and takes its data for its upload.
func (c *conn) readChunk() error {
	fb := uploadBufPool.Get().(*fileBuf)
	fb.pool = &uploadBufPool
	fb.refs.Store(1)
	defer fb.release() // the reader's reference: queues take their own
	p, err := c.r.ReadPayload(fb.b[:0])
	if err != nil {
		return err
	}
	id, data, err := protocol.ParseChunk(p)
	if err != nil {
		return err
	}
	u := c.openUpload(id)
	if u == nil {
		return nil
	}
	n := int64(len(data))
	if n == 0 || n > protocol.MaxUploadChunk {
		return fmt.Errorf("%w: upload %d: chunk of %d bytes", protocol.ErrMalformed, u.id, n)
	}
	if u.got+n > u.head.Size || u.got+n-u.acked.Load() > uploadWindow {
		return fmt.Errorf("%w: upload %d: %d bytes more than its size or window allow", protocol.ErrMalformed, u.id, n)
	}
	u.got += n
	if u.small {
		u.frame = append(u.frame, data...)
		return nil
	}
	fb.refs.Add(1) // the upload's, released once passed on
	u.mu.Lock()
	u.chunks = append(u.chunks, Chunk{ID: u.head.ID, Data: data, ref: fb})
	u.mu.Unlock()
	u.signal()
	return nil
}

// stop cancels u.
func (u *upload) stop() { u.cancelOnce.Do(func() { close(u.cancel) }) }

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// signal wakes the upload's goroutine.
func (u *upload) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// take returns the chunks received since the last call, and how the
// upload ended if it has. The caller releases the chunks.
func (u *upload) take() ([]Chunk, protocol.Type) {
	u.mu.Lock()
	defer u.mu.Unlock()
	chunks := u.chunks
	u.chunks = nil
	return chunks, u.end
}

// releaseChunks drops the references chunks hold.
func releaseChunks(chunks []Chunk) {
	for _, ch := range chunks {
		ch.ref.release()
	}
}

// deliverSmall delivers a small file whole, as send_file does, and
// reports who got it once they have.
func (c *conn) deliverSmall(u *upload) error {
	frame := u.frame
	u.frame = nil
	if err := c.deliver(u.peers, protocol.ForwardFile, frame); err != nil {
		return err
	}
	c.ext.wg.Add(1)
	go func() {
		defer c.ext.wg.Done()
		c.reportUpload(u, u.peers, nil)
	}()
	return nil
}

// fileTarget is a recipient of a streamed upload and its stream.
type fileTarget struct {
	p  Peer
	st FileStream
}

// streamUpload passes the chunks of a large upload on to its recipients
// as they arrive, acknowledging each, until the upload ends, is
// cancelled, every recipient is gone, the client sends nothing for the
// stall timeout, or the connection ends. It is started by beginUpload and
// owned by the connection, which waits for it in endUploads.
func (c *conn) streamUpload(u *upload) {
	defer c.ext.wg.Done()
	// Open streams in name order, so two senders never wait on each other.
	order := slices.SortedFunc(slices.Values(u.peers), func(a, b Peer) int { return strings.Compare(a.Name(), b.Name()) })
	var live []fileTarget
	defer func() {
		for _, t := range live {
			t.st.Abort() // the file is incomplete on every path out but one
		}
	}()
	for _, p := range order {
		if st, err := p.OpenFile(u.head, u.cancel); err == nil {
			live = append(live, fileTarget{p, st})
		}
	}
	stall := time.NewTimer(c.srv.cfg.StallTimeout)
	defer stall.Stop()
	floor := rateFloor{min: c.srv.cfg.MinUploadRate, window: c.srv.cfg.MinUploadWindow}
	var passed int64
	var waited time.Duration // for the client, since the last chunks taken
	for {
		chunks, end := u.take()
		if len(chunks) == 0 && end == protocol.Unknown {
			// Everything received is passed on, and less than
			// ackEvery of it is unacknowledged: the client has room in
			// its window to send, and the stall timeout runs from now.
			stall.Reset(c.srv.cfg.StallTimeout)
			start := time.Now()
			select {
			case <-u.wake:
				waited += time.Since(start)
				continue
			case <-u.cancel:
				c.finishUpload(u, nil)
				return
			case <-stall.C:
				// Everything it sent is acknowledged, yet it sends
				// nothing: it holds its recipients' streams for nothing.
				c.srv.cfg.Logger.Info("upload stalled", "conn", c.id, "user", c.name, "file", u.head.Filename, "after", passed)
				c.finishUpload(u, nil)
				return
			}
		}
		var got int64
		for _, ch := range chunks {
			got += int64(len(ch.Data))
		}
		if floor.add(waited, got) {
			// It holds its recipients' streams, and the server's
			// spool, for too little: the file is given up, its
			// sender's session goes on.
			releaseChunks(chunks)
			c.m.slowSenders.Inc()
			c.srv.cfg.Logger.Warn("upload below the minimum rate; giving it up", "conn", c.id, "user", c.name, "file", u.head.Filename, "after", passed,
				"min_rate", c.srv.cfg.MinUploadRate, "window", c.srv.cfg.MinUploadWindow)
			c.finishUpload(u, nil)
			return
		}
		waited = 0
		for i, ch := range chunks {
			if isClosed(u.cancel) {
				releaseChunks(chunks[i:])
				break
			}
			live = slices.DeleteFunc(live, func(t fileTarget) bool {
				if err := t.st.Write(ch); err != nil {
					t.st.Abort()
					return true
				}
				return false
			})
			ch.ref.release()
			passed += int64(len(ch.Data))
			if passed-u.acked.Load() >= ackEvery {
				u.acked.Store(passed)
				c.Send(protocol.AppendFileAck(nil, u.id, passed))
			}
		}
		switch {
		case len(live) == 0, isClosed(u.cancel):
			// Nobody to send it to, or given up (maybe with chunks
			// left): the deferred Abort tells whoever is left.
			c.finishUpload(u, nil)
			return
		case end == protocol.FileEnd:
			if passed > u.acked.Load() { // all of it, before the result
				u.acked.Store(passed)
				c.Send(protocol.AppendFileAck(nil, u.id, passed))
			}
			sent := make([]Peer, len(live))
			streams := make([]FileStream, len(live))
			for i, t := range live {
				t.st.Close()
				sent[i], streams[i] = t.p, t.st
			}
			live = nil
			c.reportUpload(u, sent, streams)
			return
		}
	}
}

// reportUpload waits until the file has reached each of sent (the
// recipients it was wholly handed to, through streams if not nil) or they
// are gone, then sends the client its file_result. It gives up if the
// connection ends.
func (c *conn) reportUpload(u *upload, sent []Peer, streams []FileStream) {
	var delivered []string
	for _, p := range u.peers {
		i := slices.Index(sent, p)
		if i < 0 {
			continue
		}
		ok := true
		if streams != nil {
			if cs, chunked := streams[i].(*chunkedStream); chunked {
				// A recipient that fell behind has the rest of the
				// file queued by its stream's feeder, maybe not yet.
				ok = cs.waitQueued(u.cancel)
			}
		}
		ok = ok && written(p, u.cancel)
		if u.leaving.Load() {
			return
		}
		if ok {
			delivered = append(delivered, p.Name())
		}
	}
	c.finishUpload(u, delivered)
}

// written waits until everything queued for p so far has been written to
// its socket (true), or p is cut off or stop is closed (false). Of a peer
// that is not a connection of this server, all that is known is that the
// file was handed to it (true).
func written(p Peer, stop <-chan struct{}) bool {
	pc := peerConn(p)
	if pc == nil {
		_, away := p.(*session)
		return !away // of a remote peer, only that it was handed over is known
	}
	mark := pc.q.writtenMark()
	if mark == nil {
		return false
	}
	select {
	case <-mark:
		return true
	case <-stop:
		return false
	case <-pc.done:
	}
	// It is closing: cut off, or flushing what it was sent.
	pc.mu.Lock()
	killed := pc.killed
	pc.mu.Unlock()
	if killed {
		return false
	}
	t := time.NewTimer(pc.srv.cfg.closeFlushTimeout)
	defer t.Stop()
	select {
	case <-mark:
		return true
	case <-stop:
	case <-t.C:
	}
	return false
}

// writtenMark returns a channel closed once everything queued so far has been
// written, or nil if the queue takes nothing more.
func (q *sendQueue) writtenMark() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing || q.failed {
		return nil
	}
	ch := make(chan struct{})
	q.items = append(q.items, qitem{sent: ch})
	q.kickLocked()
	return ch
}

// finishUpload forgets u and, unless the connection ends, sends the
// client its file_result naming the users it was delivered to. The slot
// is free before the client learns so.
func (c *conn) finishUpload(u *upload, delivered []string) {
	c.ext.mu.Lock()
	delete(c.ext.uploads, u.id)
	c.ext.mu.Unlock()
	if !u.leaving.Load() {
		c.Send(protocol.AppendFileResult(nil, u.id, delivered))
	}
}

// endUploads gives up every upload under way, as the connection ends, and
// waits for their goroutines. A streamed file's recipients get a
// file_abort, or are cut off if they take whole frames only.
func (c *conn) endUploads() {
	c.ext.mu.Lock()
	for _, u := range c.ext.uploads {
		u.leaving.Store(true)
		u.stop()
	}
	c.ext.mu.Unlock()
	c.ext.wg.Wait()
}
