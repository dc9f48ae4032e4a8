package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Spools: a large file for a user who takes whole frames only (the
// contract's forward_file) is held by the server until it is complete,
// and only then queued for that user (issue 19, part 5). Once a
// forward_file's head is on a socket nothing else can pass until its last
// byte, so a file streamed as it arrived let a crawling sender hold every
// other frame for its recipient, and a sender that then went away cost
// the recipient its connection. Held whole first, a file costs its
// recipient only the time its own socket takes to write it, and a sender
// that crawls or leaves costs the recipient nothing. The sender is no
// longer paced by such recipients either, so nobody's pace holds its
// reading (part 4).
//
// A spool is held in memory when the file is small enough and the memory
// budget (Config.SpoolMemoryBytes) has room, otherwise in a file in
// Config.SpoolDir, within Config.SpoolMaxBytes for all spools on disk.
// On Unix the file is removed as soon as it is created: the open
// descriptor keeps its content, the space goes back when the last reader
// closes it, and a crash or a kill leaves nothing behind. The recipients
// of one transfer share its spool.

// spoolPattern names spool files (os.CreateTemp's pattern).
const spoolPattern = "gochatd-spool-*"

// removeWhileOpen says whether an open file may be removed and still be
// read: everywhere but Windows.
var removeWhileOpen = runtime.GOOS != "windows"

// Spool errors. OpenFile returns them, and the file does not reach that
// recipient.
var (
	// ErrSpoolFull is returned when a file would take the spools on disk
	// past Config.SpoolMaxBytes.
	ErrSpoolFull = errors.New("the server's spool for files is full")
	// errSpoolOutOfStep is returned for a chunk that does not follow the
	// spool's content (a programming error).
	errSpoolOutOfStep = errors.New("chunk out of step with the spooled file")
)

// spool holds one file's content for its recipients taking whole frames.
// Its content is written by the transfer's one writing goroutine (the
// sender's), through the spoolStreams of its recipients, and read by their
// send queues' writers once it is whole.
type spool struct {
	srv  *Server
	head FileHead
	mem  []byte   // the content, when held in memory (capacity head.Size)
	f    *os.File // the content, when held on disk
	disk bool     // its bytes count against the disk budget
	name string   // f's name, while it is still to be removed

	// Owned by the writing goroutine.
	written int64 // bytes held
	err     error // the first failure to hold a chunk

	refs    atomic.Int32 // open streams and queued deliveries
	writers int          // streams not yet closed or aborted; guarded by srv.spoolMu
}

// spoolStream is a FileStream to a peer taking whole frames: it writes
// the content into the file's spool and queues the forward_file on Close.
// It is used by the sender's goroutine only.
type spoolStream struct {
	sp   *spool
	q    *sendQueue
	head []byte // the forward_file's head
	off  int64  // bytes of the file this stream was given
	done bool
}

// openSpool returns a stream into the spool of the file head for a peer
// whose queue is q: the transfer's spool if another of its recipients has
// one open, or a new one.
func (s *Server) openSpool(head FileHead, q *sendQueue) (*spoolStream, error) {
	sp, err := s.spoolFor(head)
	if err != nil {
		return nil, err
	}
	return &spoolStream{
		sp:   sp,
		q:    q,
		head: protocol.AppendFileHead(nil, protocol.ForwardFile, []string{head.Sender}, head.Filename, head.Size),
	}, nil
}

// spoolFor returns the spool of transfer head.ID, with a stream's
// reference taken, making it if need be.
func (s *Server) spoolFor(head FileHead) (*spool, error) {
	s.spoolMu.Lock()
	if sp := s.spools[head.ID]; sp != nil {
		sp.writers++
		sp.hold()
		s.spoolMu.Unlock()
		return sp, nil
	}
	sp := &spool{srv: s, head: head, writers: 1}
	sp.refs.Store(1)
	cfg := &s.cfg
	inMemory := head.Size <= cfg.SpoolMemoryBytes/8 && s.spoolMem+head.Size <= cfg.SpoolMemoryBytes
	switch {
	case inMemory:
		s.spoolMem += head.Size
	case s.spoolDisk+head.Size <= cfg.SpoolMaxBytes:
		s.spoolDisk += head.Size
		sp.disk = true
	default:
		s.spoolMu.Unlock()
		s.metrics.spoolRefused.Inc()
		return nil, ErrSpoolFull
	}
	s.spoolMu.Unlock()
	if inMemory {
		sp.mem = make([]byte, 0, head.Size)
	} else if err := sp.create(); err != nil {
		sp.giveBack()
		s.metrics.spoolFailed.Inc()
		return nil, err
	}
	s.spoolMu.Lock()
	s.spools[head.ID] = sp
	s.spoolMu.Unlock()
	return sp, nil
}

// create makes the spool's file on disk.
func (sp *spool) create() error {
	f, err := os.CreateTemp(sp.srv.cfg.SpoolDir, spoolPattern)
	if err != nil {
		return fmt.Errorf("spooling a file: %w", err)
	}
	sp.f = f
	if removeWhileOpen {
		os.Remove(f.Name()) // the descriptor keeps the content
	} else {
		sp.name = f.Name()
	}
	return nil
}

// hold takes a reference.
func (sp *spool) hold() { sp.refs.Add(1) }

// release drops a reference; the last one frees the spool.
func (sp *spool) release() {
	if sp.refs.Add(-1) == 0 {
		sp.giveBack()
	}
}

// giveBack frees what the spool holds: its file is closed and removed,
// and its bytes go back to the budget.
func (sp *spool) giveBack() {
	if sp.f != nil {
		sp.f.Close()
		if sp.name != "" {
			os.Remove(sp.name)
		}
	}
	sp.mem = nil
	s := sp.srv
	s.spoolMu.Lock()
	if sp.disk {
		s.spoolDisk -= sp.head.Size
	} else {
		s.spoolMem -= sp.head.Size
	}
	s.spoolMu.Unlock()
}

// add appends data to the spool's content.
func (sp *spool) add(data []byte) error {
	if sp.err != nil {
		return sp.err
	}
	if sp.mem != nil {
		sp.mem = append(sp.mem, data...)
	} else if _, err := sp.f.Write(data); err != nil {
		sp.err = fmt.Errorf("spooling a file: %w", err)
		s := sp.srv
		s.metrics.spoolFailed.Inc()
		s.cfg.Logger.Warn("cannot hold a file for its recipients that take whole frames; they will not get it", "sender", sp.head.Sender, "file", sp.head.Filename, "size", sp.head.Size, "err", err)
		return sp.err
	}
	sp.written += int64(len(data))
	return nil
}

// Write implements FileStream. Each recipient's stream is given the same
// chunks in turn; the first to reach a chunk adds it to the spool.
func (st *spoolStream) Write(c Chunk) error {
	sp := st.sp
	end := st.off + int64(len(c.Data))
	switch {
	case end > sp.head.Size:
		return errSpoolOutOfStep
	case st.off == sp.written:
		if err := sp.add(c.Data); err != nil {
			return err
		}
	case end > sp.written:
		return errSpoolOutOfStep
	case sp.err != nil:
		return sp.err
	}
	st.off = end
	return nil
}

// Close implements FileStream: the file is whole, and its forward_file is
// queued for the peer.
func (st *spoolStream) Close() {
	if st.done {
		return
	}
	if st.off == st.sp.head.Size && st.sp.err == nil {
		st.q.pushSpooled(st.head, st.sp) // errQueueClosed: the peer is gone
	}
	st.end()
}

// Abort implements FileStream. Nothing of the file was queued for the
// peer, so the peer is not touched.
func (st *spoolStream) Abort() {
	if !st.done {
		st.end()
	}
}

// end lets go of the stream's reference, and of the transfer's place in
// the server's spools once no stream of it is open.
func (st *spoolStream) end() {
	st.done = true
	sp := st.sp
	s := sp.srv
	s.spoolMu.Lock()
	if sp.writers--; sp.writers == 0 {
		delete(s.spools, sp.head.ID)
	}
	s.spoolMu.Unlock()
	sp.release()
}

// sweepSpools removes spool files that a server of an earlier run left
// in dir (where files open cannot be removed, a crash leaves them; on
// Unix they are removed as they are made, and there is nothing to find).
// A file another server has open is either gone already (Unix) or cannot
// be removed (Windows).
func sweepSpools(dir string, log *slog.Logger) {
	names, _ := filepath.Glob(filepath.Join(dir, spoolPattern))
	for _, name := range names {
		if err := os.Remove(name); err == nil {
			log.Info("removed a spool file left by an earlier run", "file", name)
		}
	}
}

// rateFloor judges a file's sender by the bytes it brings per second the
// server waits for it (time spent waiting for a recipient does not
// count), over windows of window: a window that brings less than min per
// second of it fails. The zero rate judges nobody.
type rateFloor struct {
	min    float64 // bytes per second
	window time.Duration
	waited time.Duration // in the current window
	got    int64         // in the current window
}

// add notes that waiting d brought n bytes, and reports whether a window
// ended below the floor.
func (r *rateFloor) add(d time.Duration, n int64) bool {
	if r.min <= 0 {
		return false
	}
	r.waited += d
	r.got += n
	if r.waited < r.window {
		return false
	}
	slow := float64(r.got) < r.min*r.waited.Seconds()
	r.waited, r.got = 0, 0
	return slow
}
