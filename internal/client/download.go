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
		d.discard()
		return err // the stream failed
	}
	c.finishDownload(d, nil)
	return nil
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

// finishDownload renames a complete download to <own username>_<filename>
// and prints its line; failed (not nil) or a write failure makes it
// removed instead, with a message on stderr.
func (c *client) finishDownload(d *download, failed error) {
	d.p.finish()
	err := d.fw.err
	if err == nil {
		err = failed
	}
	if err == nil {
		err = d.tmp.Chmod(0o644)
	}
	if cerr := d.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(d.tmp.Name(), filepath.Join(c.cfg.DownloadDir, c.cfg.User+"_"+d.filename))
	}
	if err != nil {
		os.Remove(d.tmp.Name())
		c.log.printf("client: cannot save %q from %s: %v", d.filename, d.sender, err)
		return
	}
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

// dropFiles removes the temporary files of transfers cut short.
func (c *client) dropFiles() {
	for id, in := range c.files {
		if in.d != nil {
			in.d.discard()
		}
		delete(c.files, id)
	}
}

// errNotChunked is the error for file_* frames on a plain session.
var errNotChunked = errors.New("chunked files not negotiated")
