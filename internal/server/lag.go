package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Lagging recipients: a chunked file's bytes go straight into its
// recipient's send queue while the recipient keeps up. Once a window's
// worth (streamWindow) waits there, the recipient lags: the stream holds
// the file's next bytes for it (in memory, then in a spool file, within
// the spools' budgets: spool.go) and a feeder goroutine queues them at the
// recipient's own pace, then the file's end. The sender's reading never
// waits for the recipient, so a recipient that reads slowly, or not at
// all, holds none of the sender's frames to others (issue 19, part 4: a
// send_file's later frames come only after its last byte, so pacing the
// sender to one recipient held its chat to everybody else). Once the
// feeder has caught up, the stream queues directly again.
//
// What the stream holds in memory is the senders' pooled buffers, by
// reference (a chunk filling at least half of its buffer, charged the
// whole buffer) or copied (a smaller one): a recipient that keeps up
// costs no copy, one that falls behind for a moment costs none either. A
// recipient may hold at most an eighth of Config.SpoolMemoryBytes in
// memory, and all spools together Config.SpoolMemoryBytes; beyond that
// its stream writes to a spool file, and where that would take the
// spools on disk past Config.SpoolMaxBytes (or the file cannot be
// written), the recipient gets a file_abort for the file and keeps its
// connection, while the others get the file.

// chunkedStream is a FileStream delivering file_* frames, which need no
// slot: other frames may come between them. Write, Close and Abort are
// called by the transfer's one writing goroutine (the sender's); while its
// peer lags, the stream's feeder queues what it holds.
type chunkedStream struct {
	srv    *Server
	q      *sendQueue
	to     string // the peer's name, for logs
	head   FileHead
	send   func([]byte) error // queues a whole frame, cutting the peer off if its queue overflows
	cancel <-chan struct{}    // closed when the writer gives up (its sender gone)
	done   bool               // Close or Abort was called; owned by the writer
	opened time.Time          // when the file began
	waited time.Duration      // the writer waited for the peer's window in all; owned by the writer
	timer  *time.Timer        // for those waits; owned by the writer

	// finished is closed once the file's end has been queued for the
	// peer, or the stream gave up on it; ok says which (set before).
	finished   chan struct{}
	finishOnce sync.Once
	ok         bool

	mu      sync.Mutex
	lagging bool          // a feeder runs; guarded by mu
	stop    chan struct{} // the feeder's: closed when end is set to FileAbort; guarded by mu
	end     protocol.Type // the end the feeder is to queue once all is queued; guarded by mu
	over    error         // set once the stream takes nothing more; guarded by mu
	held    []heldPart    // content held in memory, in order; guarded by mu
	heldMem int64         // memory budget charged for held; guarded by mu
	f       *os.File      // content held on disk, after held; guarded by mu
	fname   string        // f's name, while it is still to be removed; guarded by mu
	fw, fr  int64         // bytes written to and queued from f; guarded by mu
}

// heldPart is file content a lagging stream holds in memory.
type heldPart struct {
	data []byte
	ref  *fileBuf // if not nil, data lies in it, and the part holds a reference
	cost int64    // memory budget charged
}

func newChunkedStream(c *conn, head FileHead, cancel <-chan struct{}) *chunkedStream {
	return &chunkedStream{
		srv:      c.srv,
		q:        c.q,
		to:       c.name,
		head:     head,
		send:     c.Send,
		cancel:   cancel,
		opened:   time.Now(),
		finished: make(chan struct{}),
	}
}

// Write implements FileStream. It waits for a peer that keeps up, and
// holds the content for one that lags (see lagGrace).
func (s *chunkedStream) Write(c Chunk) error {
	s.mu.Lock()
	if s.over != nil {
		err := s.over
		s.mu.Unlock()
		return err
	}
	if s.lagging {
		err := s.holdLocked(c.Data, c.ref)
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	for data := c.Data; len(data) > 0; {
		part := data[:min(len(data), protocol.MaxChunkData)]
		full, err := s.q.pushStream(protocol.ChunkHeader(nil, s.head.ID, len(part)), part, c.ref, false)
		if err != nil {
			return err
		}
		if full != nil {
			if err := s.wait(full); err == errLag {
				return s.lag(data, c.ref)
			} else if err != nil {
				return err
			}
			continue // the same part again
		}
		data = data[len(part):]
	}
	return nil
}

// The pace a recipient may set: one that takes what waits in its queue
// within lagGrace, and has not held its sender more than lagBudget plus
// half the time since the file began, keeps up, and its sender waits for
// it; past either, it lags. So a recipient that stops lags within
// lagGrace (the sender's chat to others waits that long for it at most),
// and one that takes less than half of what the sender brings, soon
// after; one that keeps up holds its sender at most about as long again
// as the sender's own transfer takes. Holding the file costs more than
// waiting for a recipient that keeps up: on loopback, where a chunked
// recipient reads a little slower than the sender sends, lagging at the
// first wait cost the files workload up to half of its MB/s, and a
// budget of 250 ms in all still about a sixth (docs/PERFORMANCE.md).
const (
	lagGrace  = 50 * time.Millisecond
	lagBudget = 250 * time.Millisecond
)

// errLag is wait's answer when the peer lags.
var errLag = errors.New("the recipient lags")

// wait waits for room in the peer's queue (full is closed then), within
// the stream's budget: it returns nil once there is room, errLag once the
// peer is to lag, ErrPeerGone if the writer gives up meanwhile.
func (s *chunkedStream) wait(full <-chan struct{}) error {
	d := min(lagGrace, lagBudget+time.Since(s.opened)/2-s.waited)
	if d <= 0 {
		return errLag
	}
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	start := time.Now()
	defer func() { s.waited += time.Since(start) }()
	select {
	case <-full:
		s.timer.Stop()
		return nil
	case <-s.timer.C:
		return errLag
	case <-s.cancel:
		s.timer.Stop()
		return ErrPeerGone
	}
}

// lag starts holding the file's content for the peer, from data (lying
// in ref, if not nil) on, and the feeder that queues it.
func (s *chunkedStream) lag(data []byte, ref *fileBuf) error {
	s.mu.Lock()
	s.lagging = true
	s.stop = make(chan struct{})
	err := s.holdLocked(data, ref)
	s.mu.Unlock()
	if !s.q.startFeeder(s.feed) {
		s.mu.Lock()
		s.over = ErrPeerGone
		s.lagging = false
		s.dropLocked()
		s.mu.Unlock()
		return ErrPeerGone
	}
	s.srv.metrics.lagged.Inc()
	return err
}

// holdLocked appends data (lying in ref, if not nil) to what the stream
// holds: in memory while its budget has room, then on disk. When it
// cannot, the stream gives the file up for its peer.
func (s *chunkedStream) holdLocked(data []byte, ref *fileBuf) error {
	srv, cfg := s.srv, &s.srv.cfg
	n := int64(len(data))
	if s.f == nil {
		part := heldPart{data: data, ref: ref, cost: n}
		if ref != nil && 2*n >= int64(len(ref.b)) {
			part.cost = int64(len(ref.b))
		} else {
			part.ref = nil
		}
		srv.spoolMu.Lock()
		fits := s.heldMem+part.cost <= cfg.SpoolMemoryBytes/8 && srv.spoolMem+part.cost <= cfg.SpoolMemoryBytes
		if fits {
			srv.spoolMem += part.cost
		}
		srv.spoolMu.Unlock()
		if fits {
			if part.ref != nil {
				part.ref.refs.Add(1)
			} else {
				part.data = bytes.Clone(data)
			}
			s.heldMem += part.cost
			s.held = append(s.held, part)
			return nil
		}
		f, err := os.CreateTemp(cfg.SpoolDir, spoolPattern)
		if err != nil {
			return s.failLocked(fmt.Errorf("spooling a file: %w", err))
		}
		s.f = f
		if removeWhileOpen {
			os.Remove(f.Name()) // the descriptor keeps the content
		} else {
			s.fname = f.Name()
		}
	}
	srv.spoolMu.Lock()
	fits := srv.spoolDisk+n <= cfg.SpoolMaxBytes
	if fits {
		srv.spoolDisk += n
	}
	srv.spoolMu.Unlock()
	if !fits {
		return s.failLocked(ErrSpoolFull)
	}
	s.fw += n // charged: given back with the file
	if _, err := s.f.WriteAt(data, s.fw-n); err != nil {
		return s.failLocked(fmt.Errorf("spooling a file: %w", err))
	}
	return nil
}

// failLocked gives the file up for the peer, which gets a file_abort from
// the feeder and keeps its connection, and returns err.
func (s *chunkedStream) failLocked(err error) error {
	if s.over == nil {
		s.over = err
	}
	if s.end == protocol.FileAbort {
		return err // given up already (a failed write, then a failed read)
	}
	if err == ErrSpoolFull {
		s.srv.metrics.spoolRefused.Inc()
	} else {
		s.srv.metrics.spoolFailed.Inc()
	}
	s.srv.cfg.Logger.Warn("cannot hold the rest of a file for a recipient that fell behind; it gets file_abort", "to", s.to, "sender", s.head.Sender, "file", s.head.Filename, "size", s.head.Size, "err", err)
	s.abortLocked()
	return err
}

// abortLocked has the feeder drop what it holds and queue a file_abort.
func (s *chunkedStream) abortLocked() {
	if s.end != protocol.FileAbort {
		s.end = protocol.FileAbort
		close(s.stop)
	}
}

// Close implements FileStream.
func (s *chunkedStream) Close() { s.finish(protocol.FileEnd) }

// Abort implements FileStream.
func (s *chunkedStream) Abort() { s.finish(protocol.FileAbort) }

// finish ends the file with t: at once if the peer does not lag, by the
// feeder after what it holds (a file_abort at once) if it does.
func (s *chunkedStream) finish(t protocol.Type) {
	if s.done {
		return
	}
	s.done = true
	s.mu.Lock()
	if s.lagging {
		if t == protocol.FileAbort {
			s.abortLocked()
		} else if s.end == protocol.Unknown {
			s.end = t
		}
		s.mu.Unlock()
		return
	}
	over := s.over
	s.mu.Unlock()
	if over != nil {
		s.finished1(false) // the feeder gave up, and said so
		return
	}
	// A peer whose queue cannot take the end is cut off: a file that
	// never ends would hold one of its files open.
	s.finished1(s.send(protocol.AppendFileID(nil, t, s.head.ID)) == nil && t == protocol.FileEnd)
}

// finished1 closes finished, once, saying whether the file's end was
// queued.
func (s *chunkedStream) finished1(ok bool) {
	s.finishOnce.Do(func() {
		s.ok = ok
		close(s.finished)
	})
}

// waitQueued waits until the stream has queued the whole file and its
// file_end for the peer (true), or has given it up, or stop is closed
// (false). Call it after Close.
func (s *chunkedStream) waitQueued(stop <-chan struct{}) bool {
	select {
	case <-s.finished:
		return s.ok
	case <-stop:
		return false
	}
}

// feed queues what the stream holds, at the peer's pace, until it has
// caught up (the stream queues directly again), or queued the file's end,
// or the file is aborted, or the peer is gone. It is started by lag and
// owned by the peer's send queue, whose closer waits for it.
func (s *chunkedStream) feed() {
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if s.end == protocol.FileAbort {
			s.quitLocked()
			s.mu.Unlock()
			s.send(protocol.AppendFileID(nil, protocol.FileAbort, s.head.ID))
			s.finished1(false)
			return
		}
		var err error
		switch {
		case len(s.held) > 0:
			p := s.held[0]
			s.held[0] = heldPart{}
			s.held = s.held[1:]
			s.mu.Unlock()
			err = s.queue(p.data, p.ref, stop)
			if p.ref != nil {
				p.ref.release()
			}
			s.mu.Lock()
			s.heldMem -= p.cost
			s.srv.spoolMu.Lock()
			s.srv.spoolMem -= p.cost
			s.srv.spoolMu.Unlock()
			s.mu.Unlock()
		case s.f != nil && s.fr < s.fw:
			f, off, n := s.f, s.fr, min(s.fw-s.fr, fileBufSize)
			s.mu.Unlock()
			err = s.queueFrom(f, off, n, stop)
			s.mu.Lock()
			s.fr += n
			s.mu.Unlock()
		default:
			end := s.end
			s.quitLocked()
			if end == protocol.Unknown {
				s.mu.Unlock() // caught up: the writer queues directly again
				return
			}
			s.over = errStreamEnded
			s.mu.Unlock()
			s.finished1(s.send(protocol.AppendFileID(nil, end, s.head.ID)) == nil)
			return
		}
		if errors.Is(err, errFeedRead) {
			s.mu.Lock()
			s.failLocked(err)
			s.mu.Unlock()
			continue // to the file_abort
		}
		if err != nil && !isClosed(stop) {
			// The peer is gone: there is nobody to tell.
			s.mu.Lock()
			s.over = ErrPeerGone
			ended := s.end != protocol.Unknown
			s.quitLocked()
			s.mu.Unlock()
			if ended {
				s.finished1(false)
			}
			return
		}
	}
}

// errStreamEnded is what a stream whose feeder queued its end returns to
// a Write (the writer ended it: none comes).
var errStreamEnded = errors.New("file stream ended")

// errFeedRead says the feeder could not read back what the stream held
// on disk.
var errFeedRead = errors.New("reading a spooled file back")

// queue queues data (lying in ref, if not nil) as file_chunk frames, at
// the peer's pace.
func (s *chunkedStream) queue(data []byte, ref *fileBuf, stop <-chan struct{}) error {
	for len(data) > 0 {
		part := data[:min(len(data), protocol.MaxChunkData)]
		data = data[len(part):]
		if err := s.q.pushPaced(protocol.ChunkHeader(nil, s.head.ID, len(part)), part, ref, stop); err != nil {
			return err
		}
	}
	return nil
}

// queueFrom queues n bytes of f from off, at the peer's pace.
func (s *chunkedStream) queueFrom(f *os.File, off, n int64, stop <-chan struct{}) error {
	fb := getFileBuf()
	defer fb.release()
	if k, err := f.ReadAt(fb.b[:n], off); int64(k) < n {
		return fmt.Errorf("%w: %v", errFeedRead, err)
	}
	return s.queue(fb.b[:n], fb, stop)
}

// quitLocked ends the feeder's run: what the stream holds is dropped, and
// the stream queues directly again (if it takes anything more).
func (s *chunkedStream) quitLocked() {
	s.lagging = false
	s.stop = nil
	s.dropLocked()
}

// dropLocked lets go of what the stream holds, giving back its budgets
// (a spool file is closed, and removed if it is still there).
func (s *chunkedStream) dropLocked() {
	var mem int64
	for i, p := range s.held {
		if p.ref != nil {
			p.ref.release()
		}
		mem += p.cost
		s.held[i] = heldPart{}
	}
	s.held = nil
	s.heldMem -= mem
	srv := s.srv
	srv.spoolMu.Lock()
	srv.spoolMem -= mem
	srv.spoolDisk -= s.fw
	srv.spoolMu.Unlock()
	if s.f != nil {
		s.f.Close()
		if s.fname != "" {
			os.Remove(s.fname)
		}
	}
	s.f, s.fname, s.fw, s.fr = nil, "", 0, 0
}
