package client

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gochat/chat/internal/protocol"
)

// Sending files. With the file-upload extension a file goes out in
// file_chunk frames between the session's other frames, at most the
// server's window ahead of its last file_ack, so that chat flows while it
// uploads; the server first says who is online (a file to nobody is never
// sent) and at the end who got it. With the plain protocol a file is one
// send_file frame, which holds the connection until its last byte.

const (
	// uploadChunk is the most file bytes in one file_chunk: a message
	// typed meanwhile waits for at most that much on its way out.
	uploadChunk = 128 << 10
	// maxUploads is the most files sent at once, as the server allows.
	maxUploads = 4
)

// upload is a file being sent.
type upload struct {
	id    uint64 // with file-upload: its id on the wire
	name  string // its base name, as its recipients see it
	names []string
	f     *os.File
	size  int64
	plain bool // one send_file frame
	start time.Time

	// Fed by the receiver (file-upload).
	ready  chan readyInfo // file_ready
	result chan []string  // file_result: the users it reached
	acked  atomic.Int64   // the offset of the last file_ack
	ackSig chan struct{}  // signalled on each file_ack

	cancel     chan struct{} // closed to cancel it
	cancelOnce sync.Once
	done       chan struct{} // closed once it has ended
	begun      chan struct{} // with file-upload: closed once its file_ready has come (the server has taken its file_begin)
	lost       chan struct{} // closed, with wmu held, when the connection it went on was lost (reconnect.go)
}

// readyInfo is a file_ready: the recipients online and the window.
type readyInfo struct {
	window int64
	online []string
}

// stop cancels u (again: nothing).
func (u *upload) stop() { u.cancelOnce.Do(func() { close(u.cancel) }) }

// sendFile starts sending the file at path to names. It returns the
// upload if the lines that follow must wait for it: with the plain
// protocol, and with piped input (whose order is kept). A file that
// cannot be sent is reported on stderr, and nil returned.
func (c *client) sendFile(names []string, path string) *upload {
	f, base, size, ok := c.openFile(path)
	if !ok {
		return nil
	}
	u := &upload{
		name: base, names: names, f: f, size: size, plain: !c.uploading, start: time.Now(),
		ready: make(chan readyInfo, 1), result: make(chan []string, 1), ackSig: make(chan struct{}, 1),
		cancel: make(chan struct{}), done: make(chan struct{}), begun: make(chan struct{}),
		lost: make(chan struct{}),
	}
	c.upMu.Lock()
	if len(c.ups) >= maxUploads {
		c.upMu.Unlock()
		f.Close()
		c.log.printf("client: not sending %s: %d files are on their way already; wait for one, or type cancel", path, maxUploads)
		return nil
	}
	c.lastUp++
	u.id = c.lastUp
	c.ups[u.id] = u
	c.upMu.Unlock()
	if u.plain && slices.Contains(names, c.cfg.User) {
		c.expectReply()
	}
	c.upWG.Add(1)
	go c.runUpload(u)
	if u.plain || !c.cfg.Interactive {
		return u
	}
	return nil
}

// openFile opens the file at path (a leading ~/ is the home folder) for
// sending, or says on stderr why it cannot be sent.
func (c *client) openFile(path string) (f *os.File, base string, size int64, ok bool) {
	base = filepath.Base(path)
	if err := protocol.ValidFilename(base); err != nil {
		c.log.printf("client: cannot send %s: its name %s, which file names on the chat cannot (rename it, or link it under another name)", path, filenameProblem(base))
		return nil, "", 0, false
	}
	if p := slashProblem(base); p != "" {
		// Refused as a / is: the recipients' clients refuse it too.
		c.log.printf("client: cannot send %s: its name %s, which file names on the chat cannot (rename it, or link it under another name)", path, p)
		return nil, "", 0, false
	}
	f, err := os.Open(expandHome(path))
	if err != nil {
		c.log.printf("client: cannot read %s: %v", path, err)
		return nil, "", 0, false
	}
	st, err := f.Stat()
	switch {
	case err != nil:
		c.log.printf("client: cannot read %s: %v", path, err)
	case !st.Mode().IsRegular():
		c.log.printf("client: cannot send %s: not a regular file", path)
	case st.Size() > c.cfg.MaxFileSize:
		c.log.printf("client: cannot send %s: %d bytes is more than the limit of %d", path, st.Size(), c.cfg.MaxFileSize)
	default:
		return f, base, st.Size(), true
	}
	f.Close()
	return nil, "", 0, false
}

// expandHome replaces a leading ~ or ~/ of path by the user's home folder.
func expandHome(path string) string {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return path
	}
	return filepath.Join(home, path[1:])
}

// filenameProblem says which part of the filename rule (PROTOCOL.md
// section 3) name breaks, for a name protocol.ValidFilename refuses.
func filenameProblem(name string) string {
	if p := nameProblem(name); p != "" {
		return p
	}
	return fmt.Sprintf("is longer than %d bytes", protocol.MaxFilenameBytes)
}

// isCancel reports whether line is the cancel command.
func isCancel(line string) bool { return strings.TrimFunc(line, unicode.IsSpace) == "cancel" }

// runUpload sends u and reports how it went. It is started by sendFile
// and owned by the session, which waits for it before Run returns; it
// ends when the file has gone (and, with file-upload, the server has said
// who got it), is cancelled, or the connection ends.
func (c *client) runUpload(u *upload) {
	defer c.upWG.Done()
	defer close(u.done)
	defer func() {
		u.f.Close()
		c.upMu.Lock()
		delete(c.ups, u.id)
		c.upMu.Unlock()
	}()
	if u.plain {
		c.plainUpload(u)
	} else {
		c.chunkedUpload(u)
	}
}

// plainUpload sends u as one send_file frame, holding the connection for
// all of it.
func (c *client) plainUpload(u *upload) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.broken.Load() {
		return
	}
	c.w.Write(protocol.AppendFileHead(nil, protocol.SendFile, u.names, u.name, u.size))
	p := c.progress("send", u.name, u.size)
	defer p.finish()
	buf := make([]byte, 64<<10)
	var sent int64
	for sent < u.size {
		n, rerr := io.ReadFull(u.f, buf[:min(int64(len(buf)), u.size-sent)])
		if _, err := c.w.Write(buf[:n]); err != nil {
			c.writeFailed(err)
			return
		}
		sent += int64(n)
		p.Write(buf[:n])
		if rerr != nil {
			// The frame's length is already on its way: fill it so the
			// stream stays in step, and tell the user.
			c.log.printf("client: %s shrank to %d bytes while being sent (%v); the recipients get a damaged copy", u.name, sent, rerr)
			if _, err := io.CopyN(c.w, zeroReader{}, u.size-sent); err != nil {
				c.writeFailed(err)
				return
			}
			break
		}
	}
	if c.flushLocked() == nil && c.cfg.Hooks.Progress != nil {
		c.log.print(Event{Kind: EventSent, Text: fmt.Sprintf("client: sent %s to the server (%s), no receipt (plain protocol)", u.name, summary(u.size, time.Since(u.start)))})
	}
}

// chunkedUpload sends u in file_chunk frames (file-upload).
func (c *client) chunkedUpload(u *upload) {
	if c.writeUp(u, protocol.AppendUploadBegin(nil, u.id, u.names, u.name, u.size)) != nil {
		return // the connection is lost; the receiver says so
	}
	var r readyInfo
	select {
	case r = <-u.ready:
		close(u.begun)
	case <-u.cancel:
		c.log.printf("client: cancelled %s before any of it was sent", u.name)
		c.abortUpload(u, nil)
		return
	case <-c.ended:
		return
	case <-u.lost:
		return
	}
	if missing := absent(u.names, r.online); len(missing) > 0 {
		what := "goes to the others only"
		if len(r.online) == 0 {
			what = "was not sent"
		}
		c.log.printf("client: not online: %s; %s %s", strings.Join(missing, ", "), u.name, what)
	}
	if len(r.online) == 0 {
		return
	}
	p := c.progress("send", u.name, u.size)
	var sent int64
	// stopped handles an event that ends the upload before all of it is
	// sent: a cancel, an early file_result or the end of the connection.
	stopped := func(delivered []string, early, cancelled bool) {
		p.finish()
		switch {
		case cancelled:
			c.log.printf("client: cancelled %s after %s of %s; nobody got it", u.name, FormatSize(sent), FormatSize(u.size))
			c.abortUpload(u, &r)
		case early:
			c.report(u, r.online, delivered, sent)
		}
	}
	buf := make([]byte, uploadChunk)
	for sent < u.size {
		room := u.acked.Load() + r.window - sent
		next := ready // a chunk may go now, unless something else happened
		if room <= 0 {
			next = u.ackSig // the window is full: wait for an ack
		}
		select {
		case <-next:
		case <-u.cancel:
			stopped(nil, false, true)
			return
		case names := <-u.result:
			stopped(names, true, false)
			return
		case <-c.ended:
			stopped(nil, false, false)
			return
		case <-u.lost:
			stopped(nil, false, false)
			return
		}
		if room <= 0 {
			continue
		}
		n := min(uploadChunk, u.size-sent, room)
		if _, err := io.ReadFull(u.f, buf[:n]); err != nil {
			p.finish()
			c.log.printf("client: cannot read %s after %s of %s (%v); cancelled, nobody got it", u.name, FormatSize(sent), FormatSize(u.size), err)
			c.abortUpload(u, &r)
			return
		}
		if c.writeUp(u, protocol.ChunkHeader(nil, u.id, int(n)), buf[:n]) != nil {
			p.finish()
			return
		}
		sent += n
		p.Write(buf[:n])
	}
	if c.writeUp(u, protocol.AppendFileID(nil, protocol.FileEnd, u.id)) != nil {
		p.finish()
		return
	}
	p.finish()
	cancel := u.cancel
	for {
		select {
		case names := <-u.result:
			c.report(u, r.online, names, sent)
			return
		case <-cancel:
			if c.quitting.Load() {
				c.log.printf("client: %s was sent whole, but the session ends before the server says who got it", u.name)
				return
			}
			c.log.printf("client: too late to cancel %s: all of it is sent", u.name)
			cancel = nil
		case <-c.ended:
			return
		case <-u.lost:
			return
		}
	}
}

// ready is a closed channel: a receive from it never waits.
var ready = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// abortUpload tells the server to drop u and, unless the session is
// ending, waits until the server has let go of it (its file_ready naming
// nobody, or its file_result), so that it no longer counts against the
// uploads allowed at once. r is u's file_ready if it has come.
func (c *client) abortUpload(u *upload, r *readyInfo) {
	if c.writeUp(u, protocol.AppendFileID(nil, protocol.FileAbort, u.id)) != nil || c.quitting.Load() {
		return
	}
	if r == nil {
		select {
		case got := <-u.ready:
			r = &got
		case <-c.ended:
			return
		case <-u.lost:
			return
		}
	}
	if len(r.online) == 0 {
		return
	}
	select {
	case <-u.result:
	case <-c.ended:
	case <-u.lost:
	}
}

// report says how an upload that sent sent bytes went: who of online it
// did not reach, on stderr; and, to a front end that shows transfers
// (Hooks.Progress), who it reached.
func (c *client) report(u *upload, online, delivered []string, sent int64) {
	if missed := absent(online, delivered); len(missed) > 0 {
		how := "they left or were cut off before they had it all"
		if sent < u.size {
			how = fmt.Sprintf("they left or stopped reading; the server gave up after %s of %s", FormatSize(sent), FormatSize(u.size))
		}
		c.log.printf("client: %s did not reach %s (%s)", u.name, strings.Join(missed, ", "), how)
	}
	if len(delivered) > 0 && c.cfg.Hooks.Progress != nil {
		c.log.print(Event{Kind: EventSent, Text: fmt.Sprintf("client: sent %s to %s (%s)", u.name, strings.Join(delivered, ", "), summary(u.size, time.Since(u.start)))})
	}
}

// absent returns the distinct names, in order, that are not in among.
func absent(names, among []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(among, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// cancelUploads cancels the files being sent in chunks, and says why one
// sent the plain way cannot be. It returns false if no file is being sent.
func (c *client) cancelUploads() bool {
	c.upMu.Lock()
	ups := slices.Collect(maps.Values(c.ups))
	c.upMu.Unlock()
	for _, u := range ups {
		if u.plain {
			c.log.printf("client: the plain protocol cannot stop %s half-sent; quit or Ctrl-C leaves, and nobody gets it", u.name)
			continue
		}
		u.stop()
	}
	return len(ups) > 0
}

// stopUploads ends the uploads under way as the session quits, within
// QuitWait: those in chunks are cancelled (the server drops them), and a
// send_file frame is cut short, which costs the connection.
func (c *client) stopUploads() {
	c.upMu.Lock()
	ups := slices.Collect(maps.Values(c.ups))
	c.upMu.Unlock()
	if len(ups) == 0 {
		return
	}
	deadline := time.Now().Add(c.cfg.QuitWait)
	c.setWriteDeadline(deadline, true) // no write may hold the quit up longer
	var plain []*upload
	for _, u := range ups {
		if u.plain {
			plain = append(plain, u)
		}
		u.stop()
	}
	if len(plain) > 0 {
		// A send_file frame cannot be given up half-sent: its write is
		// cut, which costs the connection (writeFailed). One that has
		// just gone whole (the list above may be stale) fails nothing.
		c.setWriteDeadline(time.Now(), false)
		defer func() {
			if c.broken.Load() {
				for _, u := range plain {
					c.log.printf("client: cut the connection to stop sending %s (plain protocol); nobody gets it", u.name)
				}
			}
		}()
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for _, u := range ups {
		select {
		case <-u.done:
		case <-timer.C:
			return
		}
	}
}

// uploadFrame hands a file_ready, file_ack or file_result frame (type t,
// payload p) to its upload. A frame that breaks the rules, or is for no
// upload, is noted on stderr and ignored.
func (c *client) uploadFrame(t protocol.Type, p []byte) {
	var id uint64
	var err error
	var ready readyInfo
	var off int64
	var names []string
	switch t {
	case protocol.FileReady:
		id, ready.window, ready.online, err = protocol.ParseFileReady(p)
	case protocol.FileAck:
		id, off, err = protocol.ParseFileAck(p)
	default:
		id, names, err = protocol.ParseFileResult(p)
	}
	c.upMu.Lock()
	u, used := c.ups[id], id > 0 && id <= c.lastUp
	c.upMu.Unlock()
	if err == nil && u == nil && used {
		return // on its way before the upload ended (cancelled, say)
	}
	if err != nil || u == nil || u.plain {
		c.log.printf("client: ignoring %s for no file being sent (%v)", t, err)
		return
	}
	switch t {
	case protocol.FileReady:
		select {
		case u.ready <- ready:
		default:
			c.log.printf("client: ignoring repeated %s for %s", t, u.name)
		}
	case protocol.FileAck:
		if off > u.acked.Load() {
			u.acked.Store(off)
			select {
			case u.ackSig <- struct{}{}:
			default:
			}
		}
	default:
		select {
		case u.result <- names:
		default:
			c.log.printf("client: ignoring repeated %s for %s", t, u.name)
		}
	}
}

// writeFailed notes that writing to the connection failed: nothing more
// can be sent. Unless the session is ending, the failure is reported; the
// receiver will find the connection lost.
func (c *client) writeFailed(err error) {
	c.broken.Store(true)
	if !c.quitting.Load() {
		c.log.printf("client: sending failed: %v", err)
	}
}

// summary describes a transfer of size bytes that took took: its size,
// and its time and rate unless it was quick.
func summary(size int64, took time.Duration) string {
	if took < 250*time.Millisecond {
		return FormatSize(size)
	}
	return fmt.Sprintf("%s in %s, %s/s", FormatSize(size), took.Round(100*time.Millisecond), FormatSize(int64(float64(size)/took.Seconds())))
}

// FormatSize formats a byte count with binary units: 512 B, 1.5 KiB,
// 600.0 MiB.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB"} {
		f /= unit
		if f < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f TiB", f/unit)
}
