package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/gochat/chat/internal/protocol"
)

// receiveFile saves a forward_file's content. It returns an error only
// when the stream itself failed; a file that is refused or cannot be saved
// is reported on stderr and skipped.
func (c *client) receiveFile(r *protocol.Reader) error {
	names, filename, err := protocol.ReadFileHead(r, 1, 1)
	if err != nil {
		if isStreamError(err) {
			return err
		}
		c.log.printf("client: refusing file: %v", err)
		return nil // the rest of the payload is skipped by ReadHeader
	}
	sender, size := names[0], r.Remaining()
	own := sender == c.cfg.User
	d := c.startDownload(sender, filename, size)
	if d == nil {
		if own {
			c.gotReply()
		}
		return nil // refused; the rest of the payload is skipped by ReadHeader
	}
	if _, err := io.Copy(d, r); err != nil {
		c.abandon(d)
		return err // the stream failed
	}
	c.finishDownload(d, nil, own) // its saver answers for own
	return nil
}

// maxIncoming is the most chunked files received at once. A server
// streams one file at a time from each sender, so this is far more than
// an honest server sends at once, yet it bounds the temporary files (and
// descriptors) a hostile one can make the client hold open.
const maxIncoming = 64

// diskOps are the file system calls that put a received file in place;
// tests replace them to see the order in which they are made, or to make
// them slow or fail.
type diskOps struct {
	sync    func(f *os.File) error
	rename  func(from, to string) error
	syncDir func(dir string) error
	// writeback starts writing n bytes at off of f to stable storage
	// and, if wait, waits until they are; best effort (see
	// writebackWindow).
	writeback func(f *os.File, off, n int64, wait bool)
}

// realDisk is the file system.
var realDisk = diskOps{
	sync:      (*os.File).Sync,
	rename:    os.Rename,
	syncDir:   syncDir,
	writeback: writeback,
}

// syncDir flushes dir's entries (a rename into it) to stable storage.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// A received file's content goes from the receiver, which reads the
// connection, to a goroutine of the download's own (its saver) that
// writes it, syncs it and renames it into place. The receiver never waits
// for the disk unless saveBudget bytes are queued: the sync of a 1 GiB
// file at its end took 620-690 ms, and chat to the user waited that long
// behind it (issue 19, part 3).
const (
	// saveBudget bounds the content queued for the savers of all the
	// downloads together (buffers of saveBufSize): beyond it the
	// receiver waits for a buffer to be written, and the server paces the
	// file to the disk. 8 MiB is 10 ms of an 800 MB/s transfer; a saver
	// writes to the page cache and waits for no writeback, so it falls
	// behind only when the kernel throttles its writes.
	saveBudget = 8 << 20
	// writebackWindow is how much a saver writes before it tells its
	// flusher, which hands the window to the disk and waits for the one
	// before: the disk writes the file as it arrives, and the final sync
	// has little left to do (3-4.5 ms for 1 GiB, strace) where it wrote
	// the whole file (479 ms, while chat waited behind it).
	// The saver itself once waited for the window before: a disk busy
	// with other writers then held its buffers, and chat waited behind
	// them (p99 77-190 ms on a busy machine).
	writebackWindow = 8 << 20
)

// saveBufSize is the size of the buffers that carry content to a saver:
// a whole file_chunk's payload, read straight into one.
var saveBufSize = int(protocol.Limits{}.MaxPayload(protocol.ToClient, protocol.FileChunk))

// download is a received file being written to a temporary file in the
// download folder, renamed into place only once complete. The receiver
// fills buffers and queues them; the saver goroutine writes them.
type download struct {
	c                *client
	sender, filename string
	size             int64 // as declared
	tmp              *os.File
	p                *progressCounter

	cur []byte // the buffer being filled; owned by the receiver

	q       chan span     // content for the saver; closed by the receiver at the end
	dropped atomic.Bool   // the download was given up: the saver writes nothing more
	failed  error         // why the content is not whole; set before q is closed
	own     bool          // a file to oneself: its line is a reply; set before q is closed
	prev    *download     // the sender's file before, whose line comes first; set before q is closed
	done    chan struct{} // closed when the saver has ended (the line printed, or the file removed)

	// The sender's messages that arrived after the file, printed after
	// its line; guarded by c.heldMu.
	held      []heldLine
	heldBytes int  // the bytes of held
	lined     bool // the file's line (or its failure) and held have been printed
}

// maxHeld bounds the bytes of the lines held behind one file: a sender
// that keeps talking while its file is synced for long (a slow disk) has
// its lines printed past that, out of order, rather than held in memory
// without end.
const maxHeld = 1 << 20

// heldLine is a message line held until a file's line has been printed.
type heldLine struct {
	msg Event
	own bool // from the user itself: a reply (gotReply)
}

// startDownload opens a temporary file for filename from sender and starts
// its saver, or reports on stderr why the file cannot be taken and
// returns nil.
func (c *client) startDownload(sender, filename string, size int64) *download {
	if len(c.cfg.User)+1+len(filename) > 255 {
		c.log.printf("client: refusing file %q from %s: saved name longer than 255 bytes", filename, sender)
		return nil
	}
	if size > c.cfg.MaxIncomingFileSize {
		c.log.printf("client: refusing file %q from %s: %s is more than the %s this client takes (--max-incoming-file-size); skipped, nothing saved",
			filename, sender, FormatSize(size), FormatSize(c.cfg.MaxIncomingFileSize))
		return nil
	}
	if limit := c.maxReceiving(); c.receiving.Load() > limit-size {
		c.log.printf("client: refusing file %q from %s: %s more would make the files being received more than %s; skipped, nothing saved",
			filename, sender, FormatSize(size), FormatSize(limit))
		return nil
	}
	if p := slashProblem(filename); p != "" {
		c.log.printf("client: refusing file %q from %s: its name %s", filename, sender, p)
		return nil
	}
	tmp, err := createTemp(c.cfg.DownloadDir)
	if err != nil {
		c.log.printf("client: cannot save %q from %s: %v", filename, sender, err)
		return nil
	}
	c.receiving.Add(size) // until its saver ends
	d := &download{
		c: c, sender: sender, filename: filename, size: size, tmp: tmp, p: c.progress("recv", filename, size),
		// Never full: every buffer there is fits in it.
		q:    make(chan span, saveBudget/saveBufSize+1),
		done: make(chan struct{}),
	}
	c.saves.Add(1)
	go d.save()
	return d
}

// maxIncomingTotal bounds the sizes declared by the files received at
// once, as a multiple of Config.MaxIncomingFileSize: a hostile server (or
// many senders) can make the client hold at most that much disk in
// temporary files, where 64 files of the largest size were 64 GiB.
const maxIncomingTotal = 4

// maxReceiving returns the most the files being received at once may
// declare together.
func (c *client) maxReceiving() int64 {
	if c.cfg.MaxIncomingFileSize > math.MaxInt64/maxIncomingTotal {
		return math.MaxInt64
	}
	return maxIncomingTotal * c.cfg.MaxIncomingFileSize
}

// createTemp creates a new temporary file for a download in dir, as
// os.CreateTemp does, but with mode 0666 less the umask, as a file any
// other program saves: os.CreateTemp makes it 0600, and a chmod to 0644
// then ignored the user's umask (issue 23 item 10).
func createTemp(dir string) (*os.File, error) {
	for range 1000 {
		name := filepath.Join(dir, ".chat-recv-"+strconv.FormatUint(rand.Uint64(), 36)+".part")
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, errors.New("no free temporary file name")
}

// span is content queued for a saver: b[off:]. Once it is written, b goes
// back to the free buffers.
type span struct {
	b   []byte
	off int
}

// getBuf returns an empty buffer for content, waiting for one to be
// written if saveBudget bytes are queued. Called by the receiver only.
func (c *client) getBuf() []byte {
	select {
	case b := <-c.freeBufs:
		return b
	default:
	}
	if c.madeBufs < saveBudget/saveBufSize {
		c.madeBufs++
		return make([]byte, 0, saveBufSize)
	}
	return <-c.freeBufs
}

// ReadFrom reads content from r to its end straight into buffers for
// the saver, queues them and counts progress (io.Copy uses it).
func (d *download) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if d.cur == nil {
			d.cur = d.c.getBuf()
		}
		n, err := r.Read(d.cur[len(d.cur):cap(d.cur)])
		d.p.Write(d.cur[len(d.cur) : len(d.cur)+n])
		d.cur = d.cur[:len(d.cur)+n]
		total += int64(n)
		if len(d.cur) == cap(d.cur) {
			d.q <- span{b: d.cur}
			d.cur = nil
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Write is io.Writer for io.Copy; ReadFrom does the work.
func (d *download) Write(b []byte) (int, error) {
	n, err := d.ReadFrom(bytes.NewReader(b))
	return int(n), err
}

// discard ends an incomplete download: the saver stops writing and
// removes the temporary file, and discard waits for it, so that nothing
// is left behind once it returns.
func (d *download) discard() {
	d.p.finish()
	d.dropped.Store(true)
	if d.cur != nil {
		d.c.freeBufs <- d.cur[:0]
		d.cur = nil
	}
	close(d.q)
	<-d.done
}

// abandon discards a download that the end of the session cut short, and
// says so on stderr.
func (c *client) abandon(d *download) {
	d.discard()
	c.log.printf("client: abandoned %q from %s after %d of %d bytes; nothing saved", d.filename, d.sender, d.p.moved(), d.p.total)
}

// finishDownload hands a download whose content has all arrived to its
// saver, which puts it in place as <own username>_<filename> and prints
// its line (see save). failed (not nil) makes it removed instead, with a
// message on stderr. own says the file came from the user itself: its
// line then answers the user's command (gotReply).
func (c *client) finishDownload(d *download, failed error, own bool) {
	d.p.finish()
	if d.cur != nil {
		d.q <- span{b: d.cur}
		d.cur = nil
	}
	d.failed, d.own = failed, own
	if len(c.saving) >= maxIncoming {
		// Forget the senders whose files are all saved, so that files
		// from ever more senders do not grow the map.
		for sender, sd := range c.saving {
			select {
			case <-sd.done:
				delete(c.saving, sender)
			default:
			}
		}
	}
	d.prev = c.saving[d.sender]
	c.saving[d.sender] = d
	close(d.q)
}

// save is the saver of d: it writes the content queued until the queue
// is closed, while its flusher hands what it has written to the disk.
// Then, unless the download was given up or failed, it syncs the file,
// renames it into place and syncs the folder, so that a file reported
// saved survives a crash, and prints its line after the line of the
// sender's file before it, then the sender's lines held behind it. A file
// that cannot be saved is removed, with a message on stderr. Its owner is the receiver, which
// waits for it (c.saves) before the session ends.
func (d *download) save() {
	c := d.c
	defer c.saves.Done()
	defer close(d.done)
	// The flusher, owned by the saver: it ends when written is closed,
	// and the saver waits for it before it closes the file.
	written := make(chan int64, 1)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		d.flush(written)
	}()
	var (
		err       error
		off, told int64 // bytes written; bytes the flusher was told of
	)
	for sp := range d.q {
		if err == nil && !d.dropped.Load() {
			var n int
			n, err = d.tmp.Write(sp.b[sp.off:])
			off += int64(n)
			if off-told >= writebackWindow {
				select {
				case written <- off:
					told = off
				default: // busy with the last window: told at the next write
				}
			}
		}
		c.freeBufs <- sp.b[:0]
	}
	close(written)
	<-flushed
	if d.dropped.Load() {
		d.tmp.Close()
		os.Remove(d.tmp.Name())
		c.receiving.Add(-d.size)
		return
	}
	if err == nil {
		err = d.failed
	}
	if err == nil {
		err = c.disk.sync(d.tmp)
	}
	if cerr := d.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = c.disk.rename(d.tmp.Name(), filepath.Join(c.cfg.DownloadDir, c.cfg.User+"_"+d.filename))
	}
	if err != nil {
		os.Remove(d.tmp.Name())
	} else {
		// Best effort: not every platform can sync a directory, and
		// the file is in place either way.
		c.disk.syncDir(c.cfg.DownloadDir)
	}
	c.receiving.Add(-d.size) // in place or removed: no longer being received
	if d.prev != nil {
		<-d.prev.done // a sender's files' lines in the order the files came
	}
	c.heldMu.Lock()
	defer c.heldMu.Unlock()
	if err != nil {
		c.log.printf("client: cannot save %q from %s: %v", d.filename, d.sender, err)
	} else {
		c.out.print(Event{Kind: EventFile, Sender: d.sender, Text: d.filename})
	}
	if d.own {
		c.gotReply()
	}
	for _, h := range d.held {
		c.out.print(h.msg)
		if h.own {
			c.gotReply()
		}
	}
	d.held, d.lined = nil, true
}

// flush is a saver's flusher: for each offset the saver has written up to,
// it starts writing what is new to the disk and waits for what it started
// the time before. The saver never waits for it: a disk that lags the
// network (others writing to it too) lags in the page cache, as it did
// before, instead of holding up the buffers and so the connection, with
// chat in it.
func (d *download) flush(written <-chan int64) {
	var started, before int64 // the end of the ranges started; the start of the last one
	for off := range written {
		d.c.disk.writeback(d.tmp, started, off-started, false)
		if started > before {
			d.c.disk.writeback(d.tmp, before, started-before, true)
		}
		before, started = started, off
	}
}

// printMsg prints a message's line (an EventMessage), or holds it (see
// heldLine) while a file its sender sent before it is being saved: a
// sender's lines come in the order the sender sent them, and a file's line
// only once the file is saved. Other senders' lines are not held: the
// disk never holds up chat from others. own says the line is a reply to
// the user's own message (gotReply once printed). Called by the receiver.
func (c *client) printMsg(msg Event, own bool) {
	if d := c.saving[msg.Sender]; d != nil {
		c.heldMu.Lock()
		// The bytes of the line: "msg: ", the sender, ": ", the text.
		if n := len("msg: ") + len(msg.Sender) + len(": ") + len(msg.Text); !d.lined && d.heldBytes+n <= maxHeld {
			d.held = append(d.held, heldLine{msg, own})
			d.heldBytes += n
			c.heldMu.Unlock()
			return
		}
		lined := d.lined
		c.heldMu.Unlock()
		if lined {
			delete(c.saving, msg.Sender) // saved, with every file before it
		}
	}
	c.out.print(msg)
	if own {
		c.gotReply()
	}
}

// settle ends the downloads as the session ends: it removes those cut
// short, naming them on stderr, and waits for the others to be saved, so
// that their lines come before the session's last line. Called by the
// receiver.
func (c *client) settle() {
	c.dropFiles()
	c.saves.Wait()
	clear(c.saving)
}

// isStreamError reports whether err is a failure of the stream rather
// than a breach of the protocol's rules.
func isStreamError(err error) bool { return !errors.Is(err, protocol.ErrMalformed) }

// incoming is a file arriving in file_chunk frames.
type incoming struct {
	sender    string
	size, got int64
	d         *download // nil for a refused file, whose chunks are skipped
}

// fileFrame handles a file_begin, file_end or file_abort frame whose
// payload is p (file_chunk: fileChunk). A frame that breaks the rules is noted on stderr and
// ignored.
func (c *client) fileFrame(t protocol.Type, p []byte) {
	switch t {
	case protocol.FileBegin:
		id, sender, filename, size, err := protocol.ParseFileBegin(p)
		if err != nil {
			c.log.printf("client: refusing file: %v", err)
			return
		}
		if _, dup := c.files[id]; dup {
			c.log.printf("client: ignoring repeated file_begin %d", id)
			return
		}
		if len(c.files) >= maxIncoming {
			// Not tracked: its chunks are ignored as those of no file.
			c.log.printf("client: refusing file %q from %s: already receiving %d files", filename, sender, maxIncoming)
			return
		}
		// A refused file is still tracked, to skip its chunks.
		c.files[id] = &incoming{sender: sender, size: size, d: c.startDownload(sender, filename, size)}
	case protocol.FileEnd, protocol.FileAbort:
		id, err := protocol.ParseFileID(p)
		in := c.files[id]
		if err != nil || in == nil {
			c.log.printf("client: ignoring %s for no file (%v)", t, err)
			return
		}
		delete(c.files, id)
		own := in.sender == c.cfg.User
		switch {
		case in.d == nil:
		case t == protocol.FileAbort:
			in.d.discard()
			c.log.printf("client: %s stopped sending %q; nothing saved", in.sender, in.d.filename)
		case in.got != in.size:
			c.finishDownload(in.d, fmt.Errorf("got %d bytes of %d", in.got, in.size), own)
			return // its saver answers for own
		default:
			c.finishDownload(in.d, nil, own)
			return
		}
		if own {
			c.gotReply()
		}
	}
}

// fileChunk reads a file_chunk frame (header h) into a buffer for the
// savers and queues its data for the file's saver. A frame that breaks the
// rules is noted on stderr and skipped.
func (c *client) fileChunk(r *protocol.Reader, h protocol.Header) {
	if h.Length > c.limits.MaxPayload(protocol.ToClient, protocol.FileChunk) {
		c.log.printf("client: ignoring %s of %d bytes", h.Name, h.Length)
		return
	}
	// Straight into the buffer the saver writes: no copy on the way.
	buf := c.getBuf()
	p, err := r.ReadPayload(buf)
	if err != nil {
		c.freeBufs <- buf
		return // the next ReadHeader reports the error
	}
	id, data, err := protocol.ParseChunk(p)
	in := c.files[id]
	if err != nil || in == nil {
		c.freeBufs <- buf
		c.log.printf("client: ignoring file_chunk for no file (%v)", err)
		return
	}
	in.got += int64(len(data))
	if in.got > in.size && in.d != nil {
		// A hostile server must not fill the disk with a file declared
		// small: drop it at once, skip the rest.
		in.d.discard()
		c.log.printf("client: %s sent more than the %d bytes declared for %q; nothing saved", in.sender, in.size, in.d.filename)
		in.d = nil
	}
	if in.d == nil {
		c.freeBufs <- buf
		return
	}
	in.d.p.Write(data)
	in.d.q <- span{b: p, off: len(p) - len(data)}
}

// dropFiles removes the temporary files of transfers the end of the
// session cut short, naming them on stderr.
func (c *client) dropFiles() {
	for id, in := range c.files {
		if in.d != nil {
			c.abandon(in.d)
		}
		delete(c.files, id)
	}
}

// errNotChunked is the error for file_* frames on a plain session.
var errNotChunked = errors.New("chunked files not negotiated")
