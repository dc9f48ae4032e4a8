package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	if sender == c.cfg.User {
		defer c.gotReply()
	}
	d := c.startDownload(sender, filename, size)
	if d == nil {
		return nil // refused; the rest of the payload is skipped by ReadHeader
	}
	if _, err := io.Copy(d, r); err != nil {
		c.abandon(d)
		return err // the stream failed
	}
	c.finishDownload(d, nil)
	return nil
}

// maxIncoming is the most chunked files received at once. A server
// streams one file at a time from each sender, so this is far more than
// an honest server sends at once, yet it bounds the temporary files (and
// descriptors) a hostile one can make the client hold open.
const maxIncoming = 64

// diskOps are the file system calls that put a received file in place;
// tests replace them to see the order in which they are made.
type diskOps struct {
	sync    func(f *os.File) error
	rename  func(from, to string) error
	syncDir func(dir string) error
}

// realDisk is the file system.
var realDisk = diskOps{
	sync:    (*os.File).Sync,
	rename:  os.Rename,
	syncDir: syncDir,
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

// download is a received file being written to a temporary file in the
// download folder, renamed into place only once complete.
type download struct {
	sender, filename string
	tmp              *os.File
	fw               *failWriter
	p                *progressCounter
}

// startDownload opens a temporary file for filename from sender, or
// reports on stderr why the file cannot be taken and returns nil.
func (c *client) startDownload(sender, filename string, size int64) *download {
	if len(c.cfg.User)+1+len(filename) > 255 {
		c.log.printf("client: refusing file %q from %s: saved name longer than 255 bytes", filename, sender)
		return nil
	}
	tmp, err := os.CreateTemp(c.cfg.DownloadDir, ".chat-recv-*.part")
	if err != nil {
		c.log.printf("client: cannot save %q from %s: %v", filename, sender, err)
		return nil
	}
	return &download{sender: sender, filename: filename, tmp: tmp, fw: &failWriter{w: tmp}, p: c.progress("recv", filename, size)}
}

// Write writes content to the temporary file (remembering, not returning,
// a failure, so the stream can still be read past) and counts progress.
func (d *download) Write(b []byte) (int, error) {
	d.fw.Write(b)
	return d.p.Write(b)
}

// discard ends an incomplete download, leaving nothing behind.
func (d *download) discard() {
	d.p.finish()
	d.tmp.Close()
	os.Remove(d.tmp.Name())
}

// abandon discards a download that the end of the session cut short, and
// says so on stderr.
func (c *client) abandon(d *download) {
	d.discard()
	c.log.printf("client: abandoned %q from %s after %d of %d bytes; nothing saved", d.filename, d.sender, d.p.moved(), d.p.total)
}

// finishDownload puts a complete download in place as
// <own username>_<filename> and prints its line: the content is synced
// before the rename and the folder after it, so that a file reported saved
// survives a crash. failed (not nil) or a write failure makes it removed
// instead, with a message on stderr.
func (c *client) finishDownload(d *download, failed error) {
	d.p.finish()
	err := d.fw.err
	if err == nil {
		err = failed
	}
	if err == nil {
		err = d.tmp.Chmod(0o644)
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
		c.log.printf("client: cannot save %q from %s: %v", d.filename, d.sender, err)
		return
	}
	// Best effort: not every platform can sync a directory, and the file
	// is in place either way.
	c.disk.syncDir(c.cfg.DownloadDir)
	c.out.println("file: " + d.sender + ": " + d.filename)
}

// failWriter writes to w until a write fails, then discards, remembering
// the error, so the rest of a payload can still be read past.
type failWriter struct {
	w   io.Writer
	err error
}

// Write writes b unless an earlier write failed; it always reports success.
func (f *failWriter) Write(b []byte) (int, error) {
	if f.err == nil {
		_, f.err = f.w.Write(b)
	}
	return len(b), nil
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

// fileFrame handles a file_begin, file_chunk, file_end or file_abort frame
// whose payload is p. A frame that breaks the rules is noted on stderr and
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
	case protocol.FileChunk:
		id, data, err := protocol.ParseChunk(p)
		in := c.files[id]
		if err != nil || in == nil {
			c.log.printf("client: ignoring file_chunk for no file (%v)", err)
			return
		}
		in.got += int64(len(data))
		if in.got > in.size && in.d != nil {
			// A hostile server must not fill the disk with a file
			// declared small: drop it at once, skip the rest.
			in.d.discard()
			c.log.printf("client: %s sent more than the %d bytes declared for %q; nothing saved", in.sender, in.size, in.d.filename)
			in.d = nil
		}
		if in.d != nil {
			in.d.Write(data)
		}
	case protocol.FileEnd, protocol.FileAbort:
		id, err := protocol.ParseFileID(p)
		in := c.files[id]
		if err != nil || in == nil {
			c.log.printf("client: ignoring %s for no file (%v)", t, err)
			return
		}
		delete(c.files, id)
		if in.sender == c.cfg.User {
			defer c.gotReply()
		}
		switch {
		case in.d == nil:
		case t == protocol.FileAbort:
			in.d.discard()
			c.log.printf("client: %s stopped sending %q; nothing saved", in.sender, in.d.filename)
		case in.got != in.size:
			c.finishDownload(in.d, fmt.Errorf("got %d bytes of %d", in.got, in.size))
		default:
			c.finishDownload(in.d, nil)
		}
	}
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
